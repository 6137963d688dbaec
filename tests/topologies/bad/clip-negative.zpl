# expect: 8: server/clip_norm
model
    kind = synthetic
data
    dataset = synthetic
server
    aggregator = adaptive
    clip_norm = -1
