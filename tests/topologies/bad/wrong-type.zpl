# expect: 7: server/rounds
model
    kind = synthetic
data
    dataset = synthetic
server
    rounds = five
