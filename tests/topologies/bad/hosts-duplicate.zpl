# expect: 15: placement/hosts/alpha
model
    kind = synthetic
data
    dataset = synthetic
clients
    count = 1
placement
    mode = hosts
    transport = tcp
    hosts
        alpha
            address = 10.0.0.1
            server = true
        alpha
            address = 10.0.0.2
            clients = 0
