# expect: 7: security/curve
model
    kind = synthetic
data
    dataset = synthetic
security
    curve = true
