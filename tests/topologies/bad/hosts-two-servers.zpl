# expect: 18: placement/hosts/beta/server
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
            server = true
            clients = 0
        beta
            address = 10.0.0.2
            server = true
            clients = 1
