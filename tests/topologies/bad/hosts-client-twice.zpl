# expect: 20: placement/hosts/gamma/clients
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
        beta
            address = 10.0.0.2
            clients = 0-2
        gamma
            address = 10.0.0.3
            clients = 2-3
