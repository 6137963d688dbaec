#   byzantine: a federation that attacks itself. topologies/smoke.zpl (synthetic model, eight
#   clients with rank budgets 1..8, stragglers and dropouts, five rounds, seconds) with a
#   quarter of its clients byzantine: 2 of the 8, drawn once for the run from the seed, train
#   honestly and then upload given + 10 x (what they trained - given) for every component and
#   the head. Median aggregation keeps the model where the honest smoke run takes it (93%
#   against 93%); `--set server/aggregator=adaptive` collapses (54%), and
#   `--set server/aggregator=adaptive --set server/clip_norm=1` bounds every client's deltas
#   instead (91%).
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
    aggregator = median
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
    byzantine = 0.25
    byzantine_attack = scale
    byzantine_scale = 10
placement
    mode = inproc
