# expect: 11: placement/hosts
model
    kind = synthetic
data
    dataset = synthetic
clients
    count = 4
placement
    mode = hosts
    transport = tcp
    hosts
        alpha
            address = 10.0.0.1
            server = true
            clients = 0-2
