# expect: 9: logger/pull
model
    kind = synthetic
data
    dataset = synthetic
server
    endpoint = "ipc://hafl-server"
logger
    pull = "ipc://hafl-server"
