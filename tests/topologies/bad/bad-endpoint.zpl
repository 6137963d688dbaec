# expect: 7: server/control
model
    kind = synthetic
data
    dataset = synthetic
server
    control = "udp://host:1"
