# expect: 10: placement/transport
model
    kind = synthetic
data
    dataset = synthetic
clients
    count = 1
placement
    mode = hosts
    transport = ipc
    hosts
        alpha
            address = 10.0.0.1
            server = true
            clients = 0
