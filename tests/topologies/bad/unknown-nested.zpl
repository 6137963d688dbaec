# expect: 5: model/rnak
model
    kind = synthetic
    rank = 8
    rnak = 4
data
    dataset = synthetic
