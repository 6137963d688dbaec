#   centralised-peer: the recipe of the PyTorch peer (cls_peer.py), for the parity check of
#   tools/parity.py. One client holds all 11,314 training documents and trains LoRA rank 8,
#   alpha 16 on wq,wk,wv,wo of base3M and the mean-pooled head on the first 128 tokens (BOS
#   included) with AdamW at 2e-3, no weight decay, batch 16, on both cores; one round of
#   local_steps steps (tools/parity.py sets them to the peer's). The per-round evaluation is off:
#   tools/parity.py scores the final adapter on the peer's own test documents with hafl eval.
#   The round's deadline is a day: the one round is the whole training, however slow the machine.
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
    max_tokens = 128
server
    rounds = 1
    deadline_ms = 86400000
    scheme = freeze
    aggregator = adaptive
clients
    count = 1
    ranks = 8
    local_steps = 300
    batch = 16
    lr = 0.002
    weight_decay = 0
    threads = 2
evaluator
    enabled = false
logger
    run_dir = runs
