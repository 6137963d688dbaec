# expect: 4: model/targets
model
    kind = synthetic
    targets = wq,wv,wq
data
    dataset = synthetic
