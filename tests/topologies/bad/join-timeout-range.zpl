# expect: 7: server/join_timeout_ms
model
    kind = synthetic
data
    dataset = synthetic
server
    join_timeout_ms = 86400001
