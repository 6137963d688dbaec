#!/usr/bin/env python3
"""parity.py: hafl's centralised classifier against the PyTorch peer, same recipe, same run.

The check that the classifier is right on a model that can learn: one client holding all the
training data trains LoRA (rank 8, alpha 16, wq/wk/wv/wo) and the mean-pooled head on the first
128 tokens of each document with AdamW (lr 2e-3, no weight decay, batch 16) for the same number
of steps as the peer (cls_peer.py in the shared peers folder, fp32), and both are scored on the
same test documents: the peer's seeded subset, mapped to hafl's document order and handed to
`hafl eval --docs`. Then the training speed of both at that shape (`hafl bench train` against
torch_lora_bench.py, same arguments) and of the peer with bf16 autocast (cls_peer.py --bf16,
timed between its own output lines with a token-sized test set).

hafl trains with seeds 1..N (--seeds, default 3): one seed's reading moves by a few points with
the initialisation and the batch order, so the accuracy verdict is on the mean of the seeds
(each is printed); the peer has no seed option and gives one reading.

Prints every measured figure, then one JSON line with the verdicts:
    accuracy gap |mean of hafl's seeds - peer| <= 1.5 points, speed hafl / fp32 peer >= 5.
Exit 0 when every side ran (whether or not the targets are met), 1 when one failed, 2 on bad
usage. Needs /usr/bin/python3 with python3-torch, python3-sentencepiece, python3-numpy.

usage: tools/parity.py [--hafl build/hafl] [--steps 300] [--test 1000] [--seeds 3]
                       [--skip-bf16] [--part all|accuracy|hafl|speed]
--part splits the check in two (accuracy takes tens of minutes, mostly the peer; speed two):
the speed figures are only meaningful on an otherwise idle machine, the accuracy ones anywhere.
"""

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = os.path.join(ROOT, "..", "shared", "peers")
TOPOLOGY = os.path.join(ROOT, "topologies", "centralised-peer.zpl")


def s_fail(message):
    print("parity: " + message, file=sys.stderr)
    sys.exit(1)


def s_assets():
    """The asset folder the peer reads the archive from: $HAFL_ASSETS, else the shared one."""
    env = os.environ.get("HAFL_ASSETS")
    if env:
        return env
    return os.path.normpath(os.path.join(ROOT, "..", "shared", "assets"))


def s_peer_docs(archive, n_test):
    """Indices, in hafl's test-document order (group, then numeric id), of the test documents
    cls_peer.py scores: it lists the archive's files sorted by name (so ids in string order),
    and takes numpy.random.default_rng(1).permutation(n)[:n_test] of that list."""
    import numpy as np
    names = []
    with tarfile.open(archive) as tf:
        for m in sorted(tf.getmembers(), key=lambda m: m.name):
            if not m.isfile():
                continue
            parts = m.name.split("/")
            if "test" in parts[-3]:
                names.append((parts[-2], parts[-1]))
    ours = sorted(names, key=lambda g_id: (g_id[0], int(g_id[1])))
    index = {name: i for i, name in enumerate(ours)}
    chosen = np.random.default_rng(1).permutation(len(names))[:n_test]
    return [index[names[i]] for i in chosen], len(names)


def s_run(cmd, **kw):
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, **kw)
    if proc.returncode != 0:
        s_fail("%s failed (exit %d):\n%s%s" % (" ".join(cmd), proc.returncode,
                                              proc.stdout[-2000:], proc.stderr[-2000:]))
    return proc.stdout, time.time() - t0


def s_timed_lines(cmd):
    """Runs cmd, returning [(seconds since start, line)] of its stdout as it prints them."""
    t0 = time.time()
    out = []
    #   stderr joins stdout: read separately after it, a chatty stderr could fill its pipe and
    #   stall the peer. Callers look for their lines by content, so warnings do no harm.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=ROOT, env=dict(os.environ, HAFL_ASSETS=s_assets()))
    for line in proc.stdout:
        out.append((time.time() - t0, line.rstrip("\n")))
        print("    peer: " + line.rstrip("\n"), flush=True)
    if proc.wait() != 0:
        s_fail("%s failed:\n%s" % (" ".join(cmd), "\n".join(l for _, l in out[-20:])))
    return out


def s_peer_accuracy(lines):
    for _, line in reversed(lines):
        m = re.search(r"test acc ([0-9.]+)", line)
        if m:
            return float(m.group(1))
    s_fail("the peer printed no final accuracy")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--hafl", default=os.path.join(ROOT, "build", "hafl"))
    p.add_argument("--steps", type=int, default=300, help="optimiser steps (default 300)")
    p.add_argument("--test", type=int, default=1000, help="test documents (default 1000)")
    p.add_argument("--seeds", type=int, default=3,
                   help="hafl runs, seeds 1..N; the verdict is on their mean (default 3)")
    p.add_argument("--python", default="/usr/bin/python3", help="the peer's interpreter")
    p.add_argument("--skip-bf16", action="store_true", help="do not time the bf16 peer")
    p.add_argument("--scratch", default=os.path.join(ROOT, "runs", "parity"))
    p.add_argument("--part", choices=("all", "accuracy", "hafl", "speed"), default="all",
                   help="hafl: only hafl's side of the accuracy check (the peer's takes tens of "
                        "minutes; compare with its figure from an earlier run of the same steps)")
    args = p.parse_args()
    if args.steps < 1 or not 1 <= args.test <= 7532:
        print("parity: --steps >= 1 and --test in 1..7532", file=sys.stderr)
        return 2
    if args.seeds < 1:
        print("parity: --seeds must be at least 1", file=sys.stderr)
        return 2
    cls_peer = os.path.join(PEERS, "cls_peer.py")
    bench_peer = os.path.join(PEERS, "torch_lora_bench.py")
    for f in (args.hafl, cls_peer, bench_peer):
        if not os.path.exists(f):
            s_fail("%s not found" % f)
    assets = s_assets()
    archive = os.path.join(assets, "20news-bydate.tar.gz")
    model = os.path.join(assets, "base3M.bin")
    spm_model = os.path.join(assets, "tok4096.model")
    batch, seq = 16, 128
    os.makedirs(args.scratch, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="parity-", dir=args.scratch)

    result = {"steps": args.steps, "batch": batch, "seq": seq}
    if args.part in ("all", "accuracy", "hafl"):
        result.update(s_accuracy(args, scratch, archive, model, spm_model, cls_peer, batch, seq,
                                 with_peer=args.part != "hafl"))
    if args.part in ("all", "speed"):
        result.update(s_speed(args, model, spm_model, cls_peer, bench_peer, batch, seq))
    print(json.dumps(result), flush=True)
    return 0


def s_accuracy(args, scratch, archive, model, spm_model, cls_peer, batch, seq, with_peer=True):
    docs, n_test_docs = s_peer_docs(archive, args.test)
    docs_file = os.path.join(scratch, "peer-test-docs.txt")
    with open(docs_file, "w") as f:
        f.write("# cls_peer.py's %d test documents (of %d), in hafl's document order\n"
                % (len(docs), n_test_docs))
        f.writelines("%d\n" % d for d in docs)

    #   1. hafl, centralised, the peer's recipe; scored on the peer's documents, once per seed
    #   (a single seed's reading moves by a few points with the initialisation and the batch
    #   order; the verdict is on the mean).
    readings, hafl_run_s, train_ms = [], 0.0, 0
    for seed in range(1, args.seeds + 1):
        print("parity: hafl, %d steps of batch %d, %d tokens, seed %d"
              % (args.steps, batch, seq, seed), flush=True)
        sets = ["clients/local_steps=%d" % args.steps, "logger/run_dir=" + scratch,
                "seed=%d" % seed]
        cmd = [args.hafl, "run", TOPOLOGY]
        for s in sets:
            cmd += ["--set", s]
        out, run_s = s_run(cmd)
        hafl_run_s += run_s
        run_dir = [line.split(None, 1)[1] for line in out.splitlines()
                   if line.startswith("folder ")]
        if not run_dir:
            s_fail("hafl run printed no run folder")
        #   A round that closed without the client's report leaves an untrained adapter behind
        #   a successful exit: refuse it rather than score it.
        with open(os.path.join(run_dir[0], "rounds.csv")) as f:
            rows = list(csv.DictReader(f))
        if not rows or any(int(r["reported"]) < 1 for r in rows):
            s_fail("hafl run %s: a round closed without the client's report (deadline?): %s"
                   % (run_dir[0], rows))
        with open(os.path.join(run_dir[0], "events.jsonl")) as f:
            for line in f:
                e = json.loads(line)
                if e.get("event") == "client-round" and e.get("state") == "reported":
                    train_ms += e.get("train_ms", 0)
        cmd = [args.hafl, "eval", TOPOLOGY, os.path.join(run_dir[0], "final_adapter.bin"),
               "--docs", docs_file]
        for s in sets:
            cmd += ["--set", s]
        out, _ = s_run(cmd)
        reading = json.loads(out.strip().splitlines()[-1])
        readings.append(reading["accuracy"])
        print("    hafl seed %d: accuracy %.4f on %d documents, loss %.4f; run %.0f s"
              % (seed, reading["accuracy"], reading["examples"], reading["loss"], run_s),
              flush=True)
    ours = {"accuracy": sum(readings) / len(readings)}

    if not with_peer:
        return {"test_documents": len(docs), "hafl_accuracy": round(ours["accuracy"], 4),
                "hafl_accuracy_by_seed": [round(r, 4) for r in readings],
                "hafl_run_s": round(hafl_run_s, 1), "hafl_train_s": round(train_ms / 1000, 1)}
    #   2. the peer, fp32, same recipe and documents.
    print("parity: cls_peer.py fp32, same recipe", flush=True)
    peer_lines = s_timed_lines([args.python, cls_peer, model, spm_model, str(args.steps),
                                "--seq", str(seq), "--batch", str(batch), "--lr", "2e-3",
                                "--rank", "8", "--test", str(args.test),
                                "--eval-every", str(args.steps)])
    peer_acc = s_peer_accuracy(peer_lines)
    gap = abs(ours["accuracy"] - peer_acc)
    return {"test_documents": len(docs), "hafl_accuracy": round(ours["accuracy"], 4),
            "hafl_accuracy_by_seed": [round(r, 4) for r in readings],
            "peer_fp32_accuracy": peer_acc, "gap_points": round(100 * gap, 2),
            "parity_ok": gap <= 0.015, "hafl_run_s": round(hafl_run_s, 1),
            "hafl_train_s": round(train_ms / 1000, 1),
            "peer_fp32_run_s": round(peer_lines[-1][0], 1) if peer_lines else None}


def s_speed(args, model, spm_model, cls_peer, bench_peer, batch, seq):
    #   3. speed at the recipe's shape, same arguments, one after the other.
    common = ["--rank", "8", "--batch", str(batch), "--seq", str(seq), "--threads", "2",
              "--steps", "10", "--warmup", "2"]
    out, _ = s_run([args.hafl, "bench", "train", "--checkpoint", "base3M.bin"] + common)
    hafl_bench = json.loads(out.strip().splitlines()[-1])
    out, _ = s_run([args.python, bench_peer, "--checkpoint", model] + common)
    peer_bench = json.loads(out.strip().splitlines()[-1])
    print("    hafl bench train: %.1f tokens/s; torch_lora_bench fp32: %.1f tokens/s"
          % (hafl_bench["tokens_per_s"], peer_bench["tokens_per_s"]), flush=True)

    #   4. the bf16 peer's training speed: 40 steps between its start line and its last line,
    #   with 8 test documents so its two evaluations cost next to nothing.
    bf16_tps = None
    if not args.skip_bf16:
        print("parity: cls_peer.py --bf16, timing 40 steps", flush=True)
        lines = s_timed_lines([args.python, cls_peer, model, spm_model, "40", "--seq", str(seq),
                               "--batch", str(batch), "--lr", "2e-3", "--test", "8",
                               "--eval-every", "40", "--bf16"])
        start = [t for t, line in lines if "start acc" in line]
        end = [t for t, line in lines if line.startswith("step 40 ")]
        if start and end:
            bf16_tps = 40 * batch * seq / (end[0] - start[0])

    speed = hafl_bench["tokens_per_s"] / peer_bench["tokens_per_s"]
    return {
        "hafl_tokens_per_s": hafl_bench["tokens_per_s"],
        "peer_fp32_tokens_per_s": round(peer_bench["tokens_per_s"], 1),
        "peer_bf16_tokens_per_s": round(bf16_tps, 1) if bf16_tps else None,
        "speed_ratio_fp32": round(speed, 2), "speed_ok": speed >= 5.0,
        "speed_ratio_bf16": round(hafl_bench["tokens_per_s"] / bf16_tps, 2) if bf16_tps else None,
        "hafl_sgemm_gflops": hafl_bench.get("sgemm_gflops"), "hafl_mfu": hafl_bench.get("mfu"),
    }


if __name__ == "__main__":
    sys.exit(main())
