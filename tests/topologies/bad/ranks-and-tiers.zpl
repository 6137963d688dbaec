# expect: 9: clients/tiers
model
    kind = synthetic
data
    dataset = synthetic
clients
    count = 2
    ranks = 2,2
    tiers
        all
            rank = 2
            share = 1
