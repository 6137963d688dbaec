# expect: 7: placement/hosts
model
    kind = synthetic
data
    dataset = synthetic
placement
    hosts
        alpha
            address = 10.0.0.1
