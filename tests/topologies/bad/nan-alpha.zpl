# expect: 4: model/alpha
model
    kind = synthetic
    alpha = nan
data
    dataset = synthetic
