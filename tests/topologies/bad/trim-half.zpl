# expect: 7: server/trim
model
    kind = synthetic
data
    dataset = synthetic
server
    trim = 0.5
    aggregator = trimmed-mean
