#   faults: a synthetic federation under stress. 30% of the clients straggle (exponential
#   delays, mean 200 ms), each client drops out of a round with probability 0.2, and clients
#   crash now and then and rejoin two rounds later. Every round must still complete: the
#   server closes a round when every participant has reported, or at the deadline once
#   min_reports uploads are in (one extra deadline if fewer).
seed = 11
model
    kind = synthetic
    rank = 8
data
    dataset = synthetic
    split = dirichlet
    dirichlet_alpha = 0.5
server
    rounds = 10
    deadline_ms = 3000
    min_reports = 3
    heartbeat_ms = 200
    heartbeat_misses = 5
clients
    count = 10
    tiers
        small
            rank = 2
            share = 0.4
        medium
            rank = 4
            share = 0.3
        large
            rank = 8
            share = 0.3
    local_steps = 10
    batch = 16
    lr = 0.01
faults
    stragglers
        share = 0.3
        delay = exponential
        max_ms = 200
    dropout = 0.2
    crash = 0.05
    rejoin_rounds = 2
