# expect: 12: placement/hosts/alpha/address
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
            server = true
            clients = 0
