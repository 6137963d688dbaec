# expect: 7: clients/tiers
model
    kind = synthetic
data
    dataset = synthetic
clients
    tiers
