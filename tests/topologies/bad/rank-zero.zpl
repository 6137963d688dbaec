# expect: 8: clients/ranks
model
    kind = synthetic
data
    dataset = synthetic
clients
    count = 3
    ranks = 2,0,4
