"""python_client_federation: a federation over tcp on 127.0.0.1 in which one client is the
Python client (clients/python/hafl_client).

tests/topologies/python-client.zpl runs as `hafl node` processes for its hosts `server`
(server, aggregator, logger, evaluator) and `fleet` (clients 0-2); the Python client plays
client 3, the host `solo`, with a simple deterministic trainer (each trainable b_k moves by a
fixed step). Once, in the first round from the fourth on that it is sent, its trainer asks
for a rejoin: the client drops its connection mid-round, as a crashed process would, and
rejoins on a new one with its session. Checks:
- every process and the Python client end cleanly, the client on REJECT FULL;
- from events.jsonl: client 3 is counted in every round it was not dropped by the fault
  model, except the round it crashed in (`crashed`) and the rounds it sat out after its
  rejoin (through the `client-rejoined` event's `down_until`), and its old connection was
  replaced (`peer-replaced`); rounds.csv has a row for every round;
- the rounds the client uploaded are exactly the rounds it was counted in;
- every message the C server sent it (WELCOMEs, ROUNDs, HEARTBEATs, REJECT) decodes and
  re-encodes with the Python codec to exactly the bytes the C encoder wrote.
"""

import csv
import os
import shutil
import tempfile
import threading
from array import array

import python_client_harness as H

from hafl_client import Client, Rank1, TrainResult, codec, protocol

T = H.Failures("python_client_federation")


def main():
    base = H.free_base_port()
    work = tempfile.mkdtemp(prefix="hafl-pyclient-federation-")
    received = []
    trained = []
    state = {"rejoin_round": None}

    def on_frames(direction, frames):
        if direction == "in":
            received.append(frames)

    def train(work_):
        trained.append(work_.round)
        if state["rejoin_round"] is None and work_.round >= 4:
            state["rejoin_round"] = work_.round
            client.rejoin()
        step = 0.001 * work_.round
        comps = [Rank1(m, k, 1.0 + k, array("f", (x + step for x in work_.components[(m, k)].b)),
                       work_.components[(m, k)].a) for m, k in work_.trainable()]
        return TrainResult(comps, work_.head, 1.0 / work_.round, work_.local_steps)

    client = Client(f"tcp://127.0.0.1:{base}", H.PYTHON_INDEX, H.RANKS[H.PYTHON_INDEX],
                    H.shard_size(H.PYTHON_INDEX), H.base_digest(), train, name="python-3",
                    on_frames=on_frames)
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(result=client.run()), daemon=True)
    server = H.Node("server", base, work)
    fleet = H.Node("fleet", base, work)
    thread.start()
    try:
        status = server.wait(50)
        fleet_status = fleet.wait(10)
        thread.join(10)
    finally:
        client.stop()
        server.stop()
        fleet.stop()
    T.check(status == 0, f"the server node ends with status 0 ({status}): "
            f"{server.output().strip()[-300:]}")
    T.check(fleet_status == 0, f"the fleet node ends with status 0 ({fleet_status})")
    result = outcome.get("result")
    if not T.check(result is not None, "the Python client's run() returned"):
        T.finish()
    T.check(result.ended and result.reject == protocol.REJECT_FULL,
            f"the Python client ended on REJECT FULL ({result})")
    T.check(result.malformed == 0 and result.unexpected == 0,
            "the Python client refused nothing the server sent")
    folder = server.run_folder()
    if not T.check(folder is not None, "the server printed its run folder"):
        T.finish()
    evs = H.events(folder)
    rounds = {e["round"]: e for e in evs if e["event"] == "round-end"}
    T.check(sorted(rounds) == list(range(1, 9)), f"rounds 1-8 ended ({sorted(rounds)})")
    mine = str(H.PYTHON_INDEX)
    states = {e["round"]: e["state"] for e in evs
              if e["event"] == "client-round" and e["client"] == H.PYTHON_INDEX}
    rejoined = [e for e in evs if e["event"] == "client-rejoined" and
                e["client"] == H.PYTHON_INDEX]
    replaced = [e for e in evs if e["event"] == "peer-replaced" and
                e["place"] == f"client {H.PYTHON_INDEX}"]
    crash = state["rejoin_round"]
    T.check(crash is not None, f"the trainer asked for a rejoin in round {crash}")
    T.check(len(rejoined) == 1 and len(replaced) == 1,
            f"one rejoin with the session, replacing the live connection ({len(rejoined)} "
            f"client-rejoined, {len(replaced)} peer-replaced)")
    down_until = rejoined[0]["down_until"] if rejoined else 0
    counted_rounds, dropped_rounds = [], []
    for r in sorted(rounds):
        counted = rounds[r]["counted"].split(",") if rounds[r]["counted"] else []
        dropped = rounds[r]["dropped"].split(",") if rounds[r]["dropped"] else []
        if mine in dropped:
            dropped_rounds.append(r)
            T.check(mine not in counted, f"round {r}: dropped by the fault model, not counted")
        elif r == crash:
            T.check(states.get(r) == "crashed" and mine not in counted,
                    f"round {r}: crashed by its rejoin ({states.get(r)})")
        elif crash is not None and crash < r <= down_until:
            # Not a participant: no client-round event, or one of state idle when traffic
            # (its heartbeats) fell into the round.
            T.check(states.get(r, "idle") == "idle" and mine not in counted,
                    f"round {r}: sits out after its rejoin (down_until {down_until}, state "
                    f"{states.get(r)})")
        else:
            T.check(mine in counted and states.get(r) == "reported",
                    f"round {r}: client {mine} counted ({rounds[r]['counted']}, "
                    f"state {states.get(r)})")
            counted_rounds.append(r)
    T.check(len(counted_rounds) >= 3 and dropped_rounds,
            f"the run exercises both: counted in rounds {counted_rounds}, dropped in "
            f"{dropped_rounds}")
    T.check(sorted(result.uploaded) == counted_rounds,
            f"it uploaded in exactly the rounds it was counted in ({result.uploaded})")
    with open(os.path.join(folder, "rounds.csv")) as f:
        rows = list(csv.DictReader(f))
    T.check([int(r["round"]) for r in rows] == list(range(1, 9)), "rounds.csv has rounds 1-8")
    kinds = {}
    same = True
    for frames in received:
        msg = codec.decode(frames)
        kinds[type(msg).__name__] = kinds.get(type(msg).__name__, 0) + 1
        if codec.encode(msg) != frames:
            same = False
            print(f"differs: {type(msg).__name__}")
    T.check(same and kinds.get("Round", 0) >= 5 and kinds.get("Welcome") == 2,
            f"every message of the C server re-encodes to its bytes ({kinds})")
    if not T.failed:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"files kept in {work}")
    T.finish()


if __name__ == "__main__":
    main()
