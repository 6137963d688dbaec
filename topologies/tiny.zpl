#   tiny: the main job's shape on the tiny stories260K model, for fast tests (the tests
#   shrink it further with overrides). Ten in-process clients with heterogeneous LoRA rank
#   budgets fine-tune stories260K on 20 Newsgroups with HAFL's freeze scheme and adaptive
#   aggregation. About two minutes on two cores:
#   32 tokens a document, 20 local steps a round, and a seeded random 1000 of the 7,532 test
#   documents (data/test_limit, a seeded draw across every class). Ends near 10% accuracy
#   (chance is 5%): this model is too small to learn the task; topologies/quickstart.zpl runs
#   base3M, which can.
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
    max_tokens = 32
    test_limit = 1000
server
    rounds = 12
    scheme = freeze
    aggregator = adaptive
    deadline_ms = 600000
clients
    count = 10
    ranks = 2,2,2,4,4,4,8,8,8,8
    local_steps = 20
    batch = 8
    lr = 0.005
logger
    run_dir = runs
placement
    mode = inproc
