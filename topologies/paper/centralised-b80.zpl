#   The centralised ceiling, large-batch form: one client holding all the training data trains
#   rank R on as many samples per round as the ten federated clients together, in batches of
#   80 (the ten clients' batches of 8 side by side): 15 steps a round, same test set.
#   docs/METHOD.md section 6 at the reduced size of docs/RESULTS.md (tools/reproduce.py runs every
#   file here with seeds 1..3, on one split: with one client the split makes no difference).
seed = 1
model
    kind = llama
    checkpoint = stories260K.bin
    tokenizer = tok512.bin
    targets = wq,wk,wv,wo
    rank = 8
    alpha = 16
data
    dataset = 20news
    path = 20news-bydate.tar.gz
    split = iid
    dirichlet_alpha = 0.5
    max_tokens = 32
    test_limit = 400
server
    rounds = 12
    scheme = freeze
    aggregator = adaptive
clients
    count = 1
    ranks = 8
    local_steps = 15
    batch = 80
    lr = 0.005
evaluator
    client_start = false
logger
    run_dir = runs
