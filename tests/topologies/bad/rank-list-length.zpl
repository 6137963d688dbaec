# expect: 8: clients/ranks
model
    kind = synthetic
data
    dataset = synthetic
clients
    count = 4
    ranks = 2,4,8
