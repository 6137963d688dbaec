# expect: 7: evaluator/enabled
model
    kind = synthetic
data
    dataset = synthetic
evaluator
    enabled = maybe
