# expect: 4: model/targets
model
    kind = synthetic
    targets = wq,wx
data
    dataset = synthetic
