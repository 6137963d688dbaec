# expect: 5: model/rank
model
    rank = 8
    alpha = 16
    rank = 4
