# expect: 15: placement/hosts/alpha/clients
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
            clients = 0-4
