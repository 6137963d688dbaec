# expect: 3: (syntax)
model
        rank = 8
