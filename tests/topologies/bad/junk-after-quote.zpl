# expect: 3: model/targets
model
    targets = "wq,wk" wv
