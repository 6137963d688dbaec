# expect: 10: server/min_reports
model
    kind = synthetic
data
    dataset = synthetic
clients
    count = 8
server
    participants = 4
    min_reports = 5
