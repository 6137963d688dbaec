# expect: 10: clients/tiers/large/rank
model
    kind = synthetic
    rank = 4
data
    dataset = synthetic
clients
    tiers
        large
            rank = 8
            share = 1
