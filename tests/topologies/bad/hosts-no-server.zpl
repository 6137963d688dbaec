# expect: 11: placement/hosts
model
    kind = synthetic
data
    dataset = synthetic
clients
    count = 2
placement
    mode = hosts
    transport = tcp
    hosts
        alpha
            address = 10.0.0.1
            clients = 0-1
