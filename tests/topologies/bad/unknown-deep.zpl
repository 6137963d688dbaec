# expect: 8: faults/stragglers/shar
model
    kind = synthetic
data
    dataset = synthetic
faults
    stragglers
        shar = 0.3
