# expect: 7: clients/count
model
    kind = synthetic
data
    dataset = synthetic
clients
    count = -3
