# expect: 7: faults/byzantine_scale
model
    kind = synthetic
data
    dataset = synthetic
faults
    byzantine_scale = 0
    byzantine = 0.25
