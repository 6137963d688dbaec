# expect: 8: faults/stragglers/min_ms
model
    kind = synthetic
data
    dataset = synthetic
faults
    stragglers
        min_ms = 500
        max_ms = 50
