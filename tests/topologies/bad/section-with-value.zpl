# expect: 2: model
model = big
    kind = synthetic
