# expect: 4: model/rank
model
    kind = synthetic
    rank = 300
data
    dataset = synthetic
