# expect: 7: server/scheme
model
    kind = synthetic
data
    dataset = synthetic
server
    scheme = frezee
