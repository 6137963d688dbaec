# expect: 8: server/join_timeout_ms
model
    kind = synthetic
data
    dataset = synthetic
server
    deadline_ms = 5000
    join_timeout_ms = 30s
