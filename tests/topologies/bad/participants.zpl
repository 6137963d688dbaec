# expect: 9: server/participants
model
    kind = synthetic
data
    dataset = synthetic
clients
    count = 4
server
    participants = 5
