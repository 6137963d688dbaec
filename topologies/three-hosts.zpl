#   three-hosts: one federation across three machines over tcp. alpha runs the server, the
#   aggregator, the logger and the evaluator; beta and gamma run four clients each. Start it
#   with `hafl node three-hosts.zpl --host NAME` on each machine.
seed = 3
model
    kind = synthetic
    rank = 8
data
    dataset = synthetic
server
    rounds = 5
    deadline_ms = 10000
clients
    count = 8
    ranks = 2,2,4,4,8,8,8,8
    local_steps = 20
    batch = 16
    lr = 0.01
placement
    mode = hosts
    transport = tcp
    base_port = 5670
    hosts
        alpha
            address = 10.77.0.1
            server = true
            evaluator = true
        beta
            address = 10.77.0.2
            clients = 0-3
        gamma
            address = 10.77.0.3
            clients = 4-7
#   In the clear, as the namespaces test on one machine needs it: across real machines, make
#   certificates with `hafl keygen` and set security/curve instead (topologies/README.md).
security
    insecure = true
