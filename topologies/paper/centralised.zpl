#   The centralised reference: one client holding all the training data trains rank R (both
#   cores, batch 16) one epoch per round on the same token window as the federated runs.
#   tools/reproduce.py tunes it: one run per learning rate with data/validation holding out
#   training documents, then the (learning rate, epochs) best on validation is trained on all the
#   training data and scored on the test set. Its per-round curve uses the same test subset.
#   A round is a whole epoch, so its deadline is a day rather than the default ten minutes.
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
    max_tokens = 64
server
    rounds = 3
    deadline_ms = 86400000
    scheme = freeze
    aggregator = adaptive
clients
    count = 1
    ranks = 8
    local_steps = 0
    local_epochs = 1
    batch = 16
    lr = 0.002
    threads = 2
evaluator
    client_start = false
    max_examples = 300
logger
    run_dir = runs
