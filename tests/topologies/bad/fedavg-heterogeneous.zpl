# expect: 7: server/aggregator
model
    kind = synthetic
data
    dataset = synthetic
server
    aggregator = fedavg
clients
    count = 3
    ranks = 2,4,8
