# expect: 7: clients/tiers
model
    kind = synthetic
data
    dataset = synthetic
clients
    tiers
        small
            rank = 2
            share = 0.5
        large
            rank = 8
            share = 0.3
