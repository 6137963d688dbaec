# expect: 8: clients/tiers/only/share
model
    kind = synthetic
data
    dataset = synthetic
clients
    tiers
        only
            rank = 2
