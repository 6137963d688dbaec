#   HAFL: freeze scheme (full rank R sent, top-r_i trainable) with adaptive aggregation. F1, F2, F3.
#   docs/METHOD.md section 6 on base3M at the reduced size of docs/RESULTS.md (tools/reproduce.py
#   runs every file here with seeds 1..3, on the IID split and with --set data/split=dirichlet).
seed = 1
model
    kind = llama
    checkpoint = base3M.bin
    tokenizer = tok4096.bin
    collapse_spaces = true
    targets = wq,wk,wv,wo
    rank = 8
    alpha = 16
data
    dataset = 20news
    path = 20news-bydate.tar.gz
    split = iid
    dirichlet_alpha = 0.5
    max_tokens = 64
server
    rounds = 12
    scheme = freeze
    aggregator = adaptive
clients
    count = 10
    ranks = 2,2,2,4,4,4,8,8,8,8
    local_steps = 20
    batch = 8
    lr = 0.005
evaluator
    client_start = true
    max_examples = 300
logger
    run_dir = runs
