# expect: 4: model/alpha
model
    kind = synthetic
    alpha = 0
data
    dataset = synthetic
