# expect: 0: data/dataset
model
    kind = synthetic
