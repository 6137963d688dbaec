#   The centralised ceiling: one client holding all the training data trains rank R for as many
#   optimiser steps per round as the ten federated clients together (10 x 15), same test set.
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
    local_steps = 150
    batch = 8
    lr = 0.005
evaluator
    client_start = false
logger
    run_dir = runs
