# expect: 2: seed
seed = 3
    extra = 1
