# expect: 4: model/checkpoint
model
    kind = llama
    checkpoint = no-such-model.bin
