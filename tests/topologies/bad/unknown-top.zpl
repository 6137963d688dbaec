# expect: 4: modle
# A misspelt top-level section.
seed = 1
modle
    rank = 8
