# expect: 7: server/aggregator
model
    kind = synthetic
data
    dataset = synthetic
server
    aggregator = krum
