#   FLoRA: stacked uploads merged into the base, fresh adapters each round. F2 baseline.
#   docs/METHOD.md section 6 at the reduced size of docs/RESULTS.md (tools/reproduce.py runs every
#   file here with seeds 1..3, on the IID split and with --set data/split=dirichlet).
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
    scheme = truncate-prefix
    aggregator = flora
clients
    count = 10
    ranks = 2,2,2,4,4,4,8,8,8,8
    local_steps = 15
    batch = 8
    lr = 0.005
evaluator
    client_start = false
logger
    run_dir = runs
