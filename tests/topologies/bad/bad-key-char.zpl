# expect: 3: model/ra
model
    ra:nk = 8
