# expect: 11: security/server_cert
model
    kind = synthetic
data
    dataset = synthetic
placement
    mode = processes
    transport = tcp
security
    curve = true
    server_cert = no-such-dir/server.key_secret
