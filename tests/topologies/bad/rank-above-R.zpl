# expect: 9: clients/ranks
model
    kind = synthetic
    rank = 8
data
    dataset = synthetic
clients
    count = 4
    ranks = 2,4,8,16
