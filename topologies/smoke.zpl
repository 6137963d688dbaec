#   smoke: the fast end-to-end check of the actor bus. Eight clients with mixed rank budgets
#   train the synthetic model for five rounds; a quarter of them straggle by a few milliseconds
#   and each may drop out of a round. Finishes in seconds.
seed = 7
model
    kind = synthetic
    rank = 8
    alpha = 16
    dim = 32
    classes = 4
data
    dataset = synthetic
    split = iid
    train_size = 2048
    test_size = 512
server
    rounds = 5
    deadline_ms = 5000
    min_reports = 4
    scheme = freeze
    aggregator = adaptive
clients
    count = 8
    ranks = 1,2,2,4,4,8,8,8
    local_steps = 20
    batch = 16
    lr = 0.01
faults
    stragglers
        share = 0.25
        delay = uniform
        min_ms = 5
        max_ms = 50
    dropout = 0.1
placement
    mode = inproc
