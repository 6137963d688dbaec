# expect: 8: faults/byzantine_attack
model
    kind = synthetic
data
    dataset = synthetic
faults
    byzantine = 0.25
    byzantine_attack = flip
