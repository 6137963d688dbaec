# expect: 7: faults/dropout
model
    kind = synthetic
data
    dataset = synthetic
faults
    dropout = 1.5
