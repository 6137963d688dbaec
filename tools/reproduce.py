#!/usr/bin/env python3
"""reproduce.py: run the paper's experiments (docs/METHOD.md section 6) and write docs/RESULTS.md.

Runs every federated topology of topologies/paper/ (base3M on 20 Newsgroups) with several
seeds, on the IID split and on the Dirichlet(0.5) label-skew split, through `hafl run ... --set
seed=S --set data/split=SPLIT --set logger/run_dir=SCRATCH/KEY`, and scores each run's final
global model on all 7,532 test documents with `hafl eval` (the per-round curves use a fixed
subset, evaluator/max_examples). The centralised reference is tuned first: one run per
learning rate of TUNE_LRS on a validation split carved from the training set
(data/validation), and the (learning rate, epochs) with the best validation accuracy is then
trained on all the training data and scored on the test set; the test set never chooses
anything. Runs go in priority order: the configurations the claims compare (all seeds), then
the reference, then the other baselines. Each finished run leaves a record, RECORDS/KEY/
(done.json with its settings, topology digest and final adapter digest; rounds.csv; final.json;
start.json, the starting accuracies by rank budget): a later call skips the runs that have one
(resumable), so an interrupted reproduction continues where it stopped, and a report can be
written from whatever has finished. The records of full-size runs are docs/data/runs/, part of
the project, so a reproduction can be continued on another machine; --quick, --rounds and --set
runs keep theirs in their scratch folder.

Outputs (all regenerated from the run folders on every call):
    docs/data/runs/KEY/     the record of each finished run (kept, never regenerated)
    docs/data/rounds.csv    one row per (config, split, seed, round): accuracy, start accuracy,
                            losses, bytes; the measured data behind every plot and table
    docs/data/summary.csv   one row per (config, split): final test accuracy (all test
                            documents) mean/std/min/max over seeds, rounds and upload bytes to
                            the target accuracy, total bytes
    docs/plots/*.png        gnuplot figures (accuracy vs round, vs cumulative upload bytes,
                            starting accuracy after download for truncate vs freeze)
    docs/RESULTS.md         settings, seeds, the table, the plots and a verdict per claim

Usage: tools/reproduce.py [--hafl PATH] [--seeds N] [--only NAME[,NAME]] [--splits iid,...]
                          [--rounds N] [--set KEY=VALUE]... [--quick] [--scratch DIR]
                          [--out DIR] [--report-only] [--jobs-list] [--check]
A file named PAUSE in the scratch folder holds the queue between runs until it is removed.
--quick, --rounds and --set keep their runs in their own subfolders of the scratch folder, so
they never replace full-size runs; --set overrides a key of every topology (a larger budget,
say) and the report's settings table shows the overridden values. Python 3 standard library and gnuplot only.
"""

import argparse
import csv
import hashlib
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHANCE = 1.0 / 20

#   One entry per curve: topology file stem, label in plots and tables, splits it runs on,
#   and the figures it belongs to. Order = run order within a seed.
CONFIGS = [
    ("freeze-adaptive", "HAFL freeze + adaptive", ("iid", "dirichlet"), "F1 F2 F3"),
    ("truncate-adaptive", "HAFL truncate + adaptive", ("iid", "dirichlet"), "F1"),
    ("fedavg-r8", "FedAvg r=R=8", ("iid", "dirichlet"), "F2"),
    ("fedavg-r2", "FedAvg r=2", ("iid", "dirichlet"), "F2"),
    ("zeropad", "zeropad (freeze)", ("iid", "dirichlet"), "F2 F3"),
    ("flexlora", "FlexLoRA", ("iid", "dirichlet"), "F2"),
    ("flora", "FLoRA", ("iid", "dirichlet"), "F2"),
    ("freeze-random", "freeze-random + adaptive", ("iid", "dirichlet"), "F2"),
    ("centralised", "centralised reference (1 client, tuned on validation)", ("iid",),
     "ceiling"),
]
#   Run order: the claims' configurations first (every seed), then the centralised reference
#   (tuning, then its test run), then the other baselines, so that a reproduction cut short
#   still has what the verdicts need.
CLAIM_CONFIGS = ("freeze-adaptive", "truncate-adaptive", "fedavg-r8", "fedavg-r2", "zeropad")

#   The centralised reference's tuning: learning rates tried, each for the topology's rounds
#   (one epoch each), scored every epoch on VALIDATION_DOCS training documents held out from
#   training (data/validation; the same draw for every rate). The best (rate, epochs) on
#   validation is then trained on all the training data, seed 1, and scored on the test set.
TUNE_LRS = ("0.002", "0.005")
VALIDATION_DOCS = 1000
LABEL = {c[0]: c[1] for c in CONFIGS}
SPLIT_NAME = {"iid": "IID", "dirichlet": "Dirichlet(0.5)"}

#   Starting accuracy (F1) is scored on both splits: the evaluator scores each distinct model
#   once (under freeze every client starts from the global model, under truncate the clients of
#   one rank budget share a model), so it costs two extra evaluations a round at most.
CLIENT_START_SPLITS = ("iid", "dirichlet")

#   --quick: a few tiny rounds per run, to test this script, not to measure anything.
QUICK_SETS = ["server/rounds=2", "clients/local_steps=2", "data/test_limit=40",
              "evaluator/max_examples=0"]

#   --set KEY=VALUE overrides, applied to every run and read by s_topology_value.
OVERRIDES = {}

CSV_COLUMNS = ["round", "accuracy", "loss", "train_loss", "start_accuracy", "reported",
               "up_bytes", "down_bytes", "cum_up_bytes", "cum_down_bytes", "wall_ms"]


def s_fail(message):
    print("reproduce: " + message, file=sys.stderr)
    sys.exit(1)


def s_topology(name):
    return os.path.join(ROOT, "topologies", "paper", name + ".zpl")


def s_topology_value(name, key):
    """The value of section/key in a paper topology (flat two-level ZPL, 4-space indents),
    or its --set override."""
    if key in OVERRIDES:
        return OVERRIDES[key]
    section, field = key.split("/")
    current = None
    with open(s_topology(name), encoding="utf-8") as f:
        for line in f:
            text = line.split("#", 1)[0].rstrip()
            if not text.strip():
                continue
            if not text.startswith(" "):
                current = text.strip()
            elif current == section and "=" in text:
                k, v = text.split("=", 1)
                if k.strip() == field:
                    return v.strip()
    return None


class Job:
    """One hafl run: a config on a split with a seed; a tuning run when tune_lr is set."""

    def __init__(self, config, split, seed, quick, rounds, tune_lr=None, extra=()):
        self.config, self.split, self.seed, self.tune_lr = config, split, seed, tune_lr
        self.key = "%s-%s-s%d" % (config, split, seed) if tune_lr is None \
            else "%s-tune-lr%s" % (config, tune_lr)
        self.sets = ["seed=%d" % seed, "data/split=%s" % split]
        if s_topology_value(config, "evaluator/client_start") == "true" \
                and split not in CLIENT_START_SPLITS:
            self.sets.append("evaluator/client_start=false")
        if quick:
            self.sets += QUICK_SETS
        elif rounds:
            self.sets.append("server/rounds=%d" % rounds)
        if tune_lr is not None:
            self.sets += ["clients/lr=%s" % tune_lr, "evaluator/max_examples=0",
                          "data/validation=%d" % (40 if quick else VALIDATION_DOCS)]
        self.sets += list(extra)
        self.sets += ["%s=%s" % kv for kv in sorted(OVERRIDES.items())]

    def digest(self):
        """SHA-256 of the topology file: a finished run counts only for the same file."""
        with open(s_topology(self.config), "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()

    def rounds(self):
        for s in reversed(self.sets):
            if s.startswith("server/rounds="):
                return int(s.split("=", 1)[1])
        return int(s_topology_value(self.config, "server/rounds"))


def s_run_folder(folder):
    """The hafl run folder inside a job's run_dir (the newest), or None."""
    if not os.path.isdir(folder):
        return None
    subs = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))
    return os.path.join(folder, subs[-1]) if subs else None


def s_read_rounds(run):
    with open(os.path.join(run, "rounds.csv"), newline="") as f:
        return list(csv.DictReader(f))


def s_read_final(folder):
    """The final model's accuracy on every test document ({accuracy, loss, examples}), None
    when it was not scored (tuning runs score validation documents only)."""
    try:
        with open(os.path.join(folder, "final.json"), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def s_record(args, job):
    """The folder holding a job's record (see the module comment)."""
    return os.path.join(args.records, job.key)


def s_read_done(args, job):
    try:
        with open(os.path.join(s_record(args, job), "done.json"), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def s_done(args, job):
    """True when the job has a record of a finished run made with exactly these settings and
    this topology file (and, but for tuning runs, its final model scored on the test set)."""
    done = s_read_done(args, job)
    record = s_record(args, job)
    try:
        rounds = s_read_rounds(record)
    except OSError:
        return False
    return (done is not None and done.get("sets") == job.sets
            and done.get("topology") == job.digest() and len(rounds) == job.rounds()
            and (job.tune_lr is not None or s_read_final(record) is not None))


def s_start_events(run, ranks):
    """{round: {rank budget: mean starting accuracy}} from a run's start-eval events (one per
    client per round, when the run scored starting models), keyed by strings as JSON keeps
    them."""
    per = {}
    with open(os.path.join(run, "events.jsonl"), encoding="utf-8") as f:
        for line in f:
            if '"start-eval"' not in line:
                continue
            e = json.loads(line)
            if e.get("event") != "start-eval" or e.get("accuracy") is None:
                continue
            rank = ranks[e["client"]] if len(ranks) > 1 else ranks[0]
            per.setdefault(str(e["round"]), {}).setdefault(str(rank), []).append(e["accuracy"])
    return {rnd: {rank: statistics.mean(v) for rank, v in by.items()}
            for rnd, by in per.items()}


def s_write_record(args, job, folder, seconds, final):
    """Copy what the report needs out of a finished run folder into the job's record; the
    record's done.json is written last, so a record without it does not count."""
    record = s_record(args, job)
    if os.path.isdir(record):
        shutil.rmtree(record)
    os.makedirs(record)
    run = s_run_folder(folder)
    shutil.copyfile(os.path.join(run, "rounds.csv"), os.path.join(record, "rounds.csv"))
    if final is not None:
        with open(os.path.join(record, "final.json"), "w", encoding="utf-8") as f:
            json.dump(final, f)
    ranks = [int(r) for r in s_topology_value(job.config, "clients/ranks").split(",")]
    start = s_start_events(run, ranks)
    if start:
        with open(os.path.join(record, "start.json"), "w", encoding="utf-8") as f:
            json.dump(start, f, sort_keys=True)
    with open(os.path.join(run, "final_adapter.bin"), "rb") as f:
        adapter = hashlib.sha256(f.read()).hexdigest()
    with open(os.path.join(record, "done.json"), "w", encoding="utf-8") as f:
        json.dump({"sets": job.sets, "topology": job.digest(), "seconds": round(seconds, 1),
                   "final_adapter_sha256": adapter}, f, indent=1)
        f.write("\n")


def s_hms(seconds):
    seconds = int(max(0, seconds))
    return "%d:%02d:%02d" % (seconds // 3600, seconds // 60 % 60, seconds % 60)


def s_run_job(args, job, folder, index, total, started, costs):
    """Run one job with progress; returns its wall seconds. Exits on a failed run."""
    if os.path.isdir(folder):
        shutil.rmtree(folder)   # an unfinished earlier attempt: start it again
    os.makedirs(folder)
    cmd = [args.hafl, "run", s_topology(job.config)]
    for s in job.sets + ["logger/run_dir=" + folder]:
        cmd += ["--set", s]
    t0 = time.time()
    print("[%d/%d] %s (elapsed %s)" % (index, total, job.key, s_hms(t0 - started)), flush=True)
    log_path = os.path.join(folder, "hafl.log")
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, cwd=ROOT)
        for line in proc.stdout:
            log.write(line)
            if line.startswith("round "):
                print("    %s %s" % (job.key, " ".join(line.split()[:4])), flush=True)
        rc = proc.wait()
    if rc != 0:
        with open(log_path, encoding="utf-8") as f:
            tail = f.read()[-2000:]
        s_fail("%s failed (exit %d): %s\n%s" % (job.key, rc, " ".join(cmd), tail))
    #   A round that closed with no report (its deadline passed) leaves the model untrained
    #   behind exit 0; such a run measures nothing and is refused, not reported.
    empty = [r["round"] for r in s_read_rounds(s_run_folder(folder)) if int(r["reported"]) < 1]
    if empty:
        s_fail("%s: round(s) %s closed with no client report (server/deadline_ms too short for "
               "this machine?); see %s" % (job.key, ",".join(empty), log_path))
    if job.tune_lr is None:
        #   The final global model on every test document (test_limit 0 keeps them all; the
        #   runs themselves score a fixed subset each round).
        cmd = [args.hafl, "eval", s_topology(job.config),
               os.path.join(s_run_folder(folder), "final_adapter.bin")]
        for s in job.sets + ["data/test_limit=%s" % ("40" if args.quick else "0")]:
            cmd += ["--set", s]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            s_fail("%s: scoring the final model failed (exit %d): %s\n%s"
                   % (job.key, proc.returncode, " ".join(cmd), proc.stderr[-2000:]))
        final = json.loads(proc.stdout.strip().splitlines()[-1])
        #   The record keeps what the run measured, not where this machine kept its files.
        final.pop("adapter", None)
        print("    %s final model on %d test documents: accuracy %.4f"
              % (job.key, final["examples"], final["accuracy"]), flush=True)
    else:
        final = None
    seconds = time.time() - t0
    s_write_record(args, job, folder, seconds, final)
    costs.setdefault(job.config, []).append(seconds)
    return seconds


def s_eta(pending, costs):
    """Seconds left: each pending job at its config's mean so far (else the overall mean)."""
    every = [c for v in costs.values() for c in v]
    if not every:
        return None
    overall = statistics.mean(every)
    return sum(statistics.mean(costs[j.config]) if j.config in costs else overall
               for j in pending)


def s_run_all(args, jobs):
    """Runs the jobs not yet done, in order. A job may be a callable returning more jobs (the
    centralised test runs, which exist only once the tuning runs have finished)."""
    started = time.time()
    costs = {}
    todo = []
    for job in jobs:
        if callable(job):
            todo.append(job)
            continue
        if s_done(args, job):
            costs.setdefault(job.config, []).append(s_read_done(args, job).get("seconds", 0.0))
        else:
            todo.append(job)
    print("reproduce: %d runs planned, %d already complete"
          % (len([j for j in jobs if not callable(j)]),
             len([j for j in jobs if not callable(j)]) - len([j for j in todo
                                                              if not callable(j)])),
          flush=True)
    index = 0
    pause = os.path.join(args.scratch, "PAUSE")
    while todo:
        if os.path.exists(pause):
            #   Between runs, a PAUSE file in the scratch folder holds the queue (to measure
            #   speed on an idle machine, say) until it is removed.
            print("reproduce: paused while %s exists" % pause, flush=True)
            while os.path.exists(pause):
                time.sleep(5)
            print("reproduce: resumed", flush=True)
        job = todo.pop(0)
        if callable(job):
            todo = [j for j in job() if not s_done(args, j)] + todo
            continue
        index += 1
        seconds = s_run_job(args, job, os.path.join(args.scratch, job.key), index,
                            index + len([j for j in todo if not callable(j)]), started, costs)
        eta = s_eta([j for j in todo if not callable(j)], costs)
        print("    done in %.0f s; elapsed %s, ETA %s" % (
            seconds, s_hms(time.time() - started), s_hms(eta) if eta is not None else "?"),
            flush=True)


def s_tuning(args, tune_jobs):
    """The centralised reference's choice from its finished tuning runs: (lr, epochs,
    {lr: [validation accuracy per epoch]}), or None until every tuning run has finished. Ties
    go to the smaller learning rate and the fewer epochs."""
    table = {}
    for job in tune_jobs:
        if not s_done(args, job):
            return None
        table[job.tune_lr] = [s_float(r["accuracy"])
                              for r in s_read_rounds(s_record(args, job))]
    best = None
    for lr in sorted(table, key=float):
        for epoch, acc in enumerate(table[lr], 1):
            if best is None or acc > best[2]:
                best = (lr, epoch, acc)
    return (best[0], best[1], table) if best else None


def s_central_jobs(args, tune_jobs, seeds):
    """The centralised test runs at the tuned (lr, epochs), or nothing if tuning is missing."""
    choice = s_tuning(args, tune_jobs)
    if choice is None:
        return []
    lr, epochs, _ = choice
    return [Job("centralised", "iid", seed, args.quick, 0,
                extra=("clients/lr=%s" % lr, "server/rounds=%d" % epochs))
            for seed in seeds]


#   ---------------------------------------------------------------------------------------
#   Collecting and summarising


def s_float(text):
    try:
        v = float(text)
    except (TypeError, ValueError):
        return float("nan")
    return v


def s_collect(args, jobs):
    """({(config, split): {seed: [row dicts]}}, {(config, split): {seed: final test accuracy}},
    summed run seconds) from the finished runs; tuning runs count only in the seconds."""
    data, finals = {}, {}
    seconds = 0.0
    for job in jobs:
        if not s_done(args, job):
            continue
        folder = s_record(args, job)
        seconds += s_read_done(args, job).get("seconds", 0.0)
        if job.tune_lr is not None:
            continue
        rows = []
        for r in s_read_rounds(folder):
            rows.append({k: s_float(r[k]) for k in CSV_COLUMNS})
        data.setdefault((job.config, job.split), {})[job.seed] = rows
        finals.setdefault((job.config, job.split), {})[job.seed] = \
            s_read_final(folder)["accuracy"]
    return data, finals, seconds


def s_start_by_rank(args, jobs):
    """{(config, split): {seed: {round: {rank budget: mean starting accuracy}}}} from the
    records of runs that scored starting models."""
    out = {}
    for job in jobs:
        if not s_done(args, job):
            continue
        try:
            with open(os.path.join(s_record(args, job), "start.json"), encoding="utf-8") as f:
                per = json.load(f)
        except OSError:
            continue
        out.setdefault((job.config, job.split), {})[job.seed] = {
            int(rnd): {int(rank): acc for rank, acc in by.items()} for rnd, by in per.items()}
    return out


def s_mean(values):
    values = [v for v in values if not math.isnan(v)]
    return statistics.mean(values) if values else float("nan")


def s_std(values):
    values = [v for v in values if not math.isnan(v)]
    return statistics.stdev(values) if len(values) > 1 else 0.0


def s_first_reach(rows, target):
    """(round, cumulative upload bytes) of the first round at or above target, or None."""
    for r in rows:
        if r["accuracy"] >= target:
            return int(r["round"]), r["cum_up_bytes"]
    return None


def s_target(finals, split):
    """The stated target accuracy of a split: halfway from chance to the best federated
    config's mean final test accuracy, rounded down to 0.005."""
    best = max((s_mean(list(seeds.values())) for (config, sp), seeds in finals.items()
                if sp == split and not config.startswith("centralised")),
               default=float("nan"))
    if math.isnan(best) or best <= CHANCE:
        return float("nan")
    return math.floor((CHANCE + (best - CHANCE) / 2) * 200) / 200


def s_summary(data, finals, targets):
    """One dict per (config, split) in CONFIGS order."""
    out = []
    for config, _, splits, _ in CONFIGS:
        for split in splits:
            seeds = data.get((config, split))
            if not seeds:
                continue
            target = targets.get(split, float("nan"))
            fin = [finals[(config, split)][seed] for seed in seeds]
            reach = [s_first_reach(rows, target) for rows in seeds.values()]
            hit = [r for r in reach if r]
            out.append({
                "config": config, "split": split, "seeds": len(seeds),
                "final_mean": s_mean(fin), "final_std": s_std(fin),
                "final_min": min(fin), "final_max": max(fin),
                "final_se": s_se_mean(fin),
                "subset_last_mean": s_mean([rows[-1]["accuracy"] for rows in seeds.values()]),
                "target": target, "reached": len(hit),
                "rounds_to_target": s_mean([float(r[0]) for r in hit]),
                "rounds_per_seed": [r[0] if r else None for r in reach],
                "bytes_to_target": s_mean([r[1] for r in hit]),
                "total_up_bytes": s_mean([rows[-1]["cum_up_bytes"] for rows in seeds.values()]),
                "total_down_bytes": s_mean([rows[-1]["cum_down_bytes"]
                                            for rows in seeds.values()]),
                "round_s": s_mean([s_mean([r["wall_ms"] for r in rows]) / 1000
                                   for rows in seeds.values()]),
                "finals": fin,
            })
    return out


#   ---------------------------------------------------------------------------------------
#   Noise: when two numbers differ
#
#   The rule, fixed before any base3M number was seen. A configuration's final accuracy is
#   one reading per seed of its final global model on all TEST_DOCS test documents. The
#   variance of one reading is taken as the larger of (a) the variance over its seeds and (b)
#   the binomial variance p(1 - p) / TEST_DOCS of a single reading, since three seeds can agree
#   by luck more closely than one test set can measure. The standard error of a mean over n
#   seeds is sqrt(variance / n); of a difference of two means, the root of the sum of squares.
#   A difference is *resolved* when it exceeds twice its standard error, otherwise it is
#   *within noise*; a verdict rests only on resolved differences.

TEST_DOCS = 7532
RESOLVE = 2.0


def s_var(values):
    """The variance of one reading (rule above)."""
    p = s_mean(values)
    binomial = p * (1 - p) / TEST_DOCS if not math.isnan(p) else 0.0
    return max(s_std(values) ** 2, binomial)


def s_se_mean(values):
    return math.sqrt(s_var(values) / len(values)) if values else float("nan")


def s_compare(a, b):
    """(difference a - b of the means, its standard error, 'higher'|'lower'|'noise')."""
    d = s_mean(a) - s_mean(b)
    se = math.sqrt(s_var(a) / len(a) + s_var(b) / len(b))
    return d, se, ("noise" if abs(d) <= RESOLVE * se else "higher" if d > 0 else "lower")


def s_write_csvs(data, summary, outdir):
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "rounds.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["config", "split", "seed"] + CSV_COLUMNS)
        for config, _, splits, _ in CONFIGS:
            for split in splits:
                for seed, rows in sorted(data.get((config, split), {}).items()):
                    for r in rows:
                        w.writerow([config, split, seed] + [s_fmt_cell(r[k]) for k in CSV_COLUMNS])
    keys = ["config", "split", "seeds", "final_mean", "final_std", "final_min", "final_max",
            "final_se", "subset_last_mean", "target", "reached", "rounds_to_target",
            "bytes_to_target", "total_up_bytes", "total_down_bytes", "round_s"]
    with open(os.path.join(outdir, "summary.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(keys)
        for s in summary:
            w.writerow([s_fmt_cell(s[k]) for k in keys])


def s_fmt_cell(v):
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return ("%d" % v) if v == int(v) and abs(v) >= 1 else ("%.4f" % v)
    return str(v)


#   ---------------------------------------------------------------------------------------
#   Plots (gnuplot reads per-curve data files written to the scratch folder)


def s_curve(seeds, xkey, ykey):
    """Per round: mean x, mean y, min y, max y over seeds (rounds all seeds have)."""
    n = min(len(rows) for rows in seeds.values())
    out = []
    for i in range(n):
        ys = [rows[i][ykey] for rows in seeds.values()]
        ys = [y for y in ys if not math.isnan(y)]
        if not ys:
            continue
        out.append((s_mean([rows[i][xkey] for rows in seeds.values()]),
                    statistics.mean(ys), min(ys), max(ys)))
    return out


def s_write_curve(path, points):
    with open(path, "w") as f:
        for p in points:
            f.write(" ".join("%.6g" % v for v in p) + "\n")


def s_gnuplot(script):
    proc = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    if proc.returncode != 0:
        s_fail("gnuplot failed: " + proc.stderr.strip())


GP_HEAD = """set terminal pngcairo size 960,640 font "sans,11"
set output "%s"
set title "%s"
set xlabel "%s"
set ylabel "%s"
set key below
set grid
set colorsequence podo
"""


def s_plot(made, path, title, xlabel, curves, extra):
    """Draws curves (datafile with columns x mean min max, label, style; a yerrorlines style
    shows min..max) into path and appends path to made."""
    parts = []
    for datafile, label, style in curves:
        using = "1:2:3:4" if "yerror" in style else "1:2"
        parts.append('"%s" using %s with %s title "%s"' % (datafile, using, style, label))
    s_gnuplot(GP_HEAD % (path, title, xlabel, "test accuracy") + extra + "plot "
              + ", \\\n  ".join(parts) + "\n")
    made.append(path)


def s_rank_curve(by_seed, rank):
    """(round, mean, min, max) over seeds of the starting accuracy of one rank budget."""
    rounds = sorted(set.intersection(*(set(v) for v in by_seed.values())))
    out = []
    for rnd in rounds:
        ys = [v[rnd][rank] for v in by_seed.values() if rank in v[rnd]]
        if ys:
            out.append((rnd, statistics.mean(ys), min(ys), max(ys)))
    return out


def s_plots(data, starts, targets, scratch, plotdir):
    os.makedirs(plotdir, exist_ok=True)
    tmp = os.path.join(scratch, "plotdata")
    os.makedirs(tmp, exist_ok=True)
    made = []
    for split in ("iid", "dirichlet"):
        name = SPLIT_NAME[split]
        target = targets.get(split, float("nan"))
        line = 'set arrow from graph 0, first %g to graph 1, first %g nohead dt %d lc "%s"\n'
        chance = line % (CHANCE, CHANCE, 3, "gray")
        if not math.isnan(target):
            chance += line % (target, target, 2, "red")
        #   accuracy vs round: every config (the ceiling on the IID split's test set too)
        curves, bytes_curves = [], []
        for config, label, splits, _ in CONFIGS:
            seeds = data.get((config, split if split in splits else splits[0]))
            if not seeds:
                continue
            f = os.path.join(tmp, "%s-%s-round.dat" % (config, split))
            s_write_curve(f, s_curve(seeds, "round", "accuracy"))
            style = "linespoints lw 2 dt 2" if config.startswith("centralised") \
                else "linespoints lw 2"
            curves.append((f, label, style))
            if not config.startswith("centralised") and split in splits:
                fb = os.path.join(tmp, "%s-%s-bytes.dat" % (config, split))
                s_write_curve(fb, [(x / 1e6, y, lo, hi) for x, y, lo, hi
                                   in s_curve(seeds, "cum_up_bytes", "accuracy")])
                bytes_curves.append((fb, label, "linespoints lw 2"))
        if curves:
            s_plot(made, os.path.join(plotdir, "accuracy_vs_round_%s.png" % split),
                   "Test accuracy per round, %s split (mean of seeds; gray: chance, red: "
                   "target)" % name, "round", curves, chance)
        if bytes_curves:
            s_plot(made, os.path.join(plotdir, "accuracy_vs_upload_%s.png" % split),
                   "F2: accuracy vs cumulative upload, %s split (mean of seeds)" % name,
                   "cumulative upload (MB, all clients)", bytes_curves, chance)
        #   F1: global accuracy and the starting accuracy after download, truncate vs freeze
        f1 = []
        for config in ("freeze-adaptive", "truncate-adaptive"):
            seeds = data.get((config, split))
            if not seeds:
                continue
            #   the starting models of round t+1 are downloads of the global model of round t:
            #   drawn at x = t, the two curves meet when nothing is lost at distribution
            start = [(x - 1, y, lo, hi) for x, y, lo, hi
                     in s_curve(seeds, "round", "start_accuracy")]
            if not start:
                continue
            fg = os.path.join(tmp, "%s-%s-global.dat" % (config, split))
            fs = os.path.join(tmp, "%s-%s-start.dat" % (config, split))
            s_write_curve(fg, s_curve(seeds, "round", "accuracy"))
            s_write_curve(fs, start)
            f1.append((fg, LABEL[config] + ": global model", "linespoints lw 2"))
            f1.append((fs, LABEL[config] + ": clients' models after download (mean)",
                       "linespoints lw 2 dt 2"))
        for rank in (2, 4):
            by_seed = starts.get(("truncate-adaptive", split))
            if by_seed:
                fr = os.path.join(tmp, "truncate-%s-start-r%d.dat" % (split, rank))
                s_write_curve(fr, [(x - 1, y, lo, hi) for x, y, lo, hi
                                   in s_rank_curve(by_seed, rank)])
                f1.append((fr, "truncate: rank-%d clients' models after download" % rank,
                           "linespoints lw 1 dt 3"))
        if f1:
            s_plot(made, os.path.join(plotdir, "start_accuracy_%s.png" % split),
                   "F1: accuracy right after download vs global, %s split" % name,
                   "round t (dashed: the clients' models right after downloading the global "
                   "model of round t; 0 = initial)", f1, chance)
        #   F3: zeropad vs adaptive with the spread over seeds
        f3 = [(os.path.join(tmp, "%s-%s-round.dat" % (config, split)),
               LABEL[config] + " (min..max over seeds)", "yerrorlines lw 2")
              for config in ("freeze-adaptive", "zeropad") if data.get((config, split))]
        if f3:
            s_plot(made, os.path.join(plotdir, "zeropad_vs_adaptive_%s.png" % split),
                   "F3: zeropad vs adaptive, same clients and scheme, %s split" % name, "round",
                   f3, chance)
    return made


#   ---------------------------------------------------------------------------------------
#   docs/RESULTS.md


def s_pct(v):
    return "n/a" if v is None or math.isnan(v) else "%.1f%%" % (100 * v)


def s_mb(v):
    return "n/a" if v is None or math.isnan(v) else "%.2f MB" % (v / 1e6)


def s_find(summary, config, split):
    for s in summary:
        if s["config"] == config and s["split"] == split:
            return s
    return None


def s_start_drop(data, config, split):
    """Per seed: mean over rounds >= 2 of (global accuracy after round t-1) minus (clients'
    mean starting accuracy in round t). Returns the list over seeds."""
    drops = []
    for rows in data.get((config, split), {}).values():
        d = [rows[i - 1]["accuracy"] - rows[i]["start_accuracy"] for i in range(1, len(rows))
             if not math.isnan(rows[i]["start_accuracy"])]
        if d:
            drops.append(statistics.mean(d))
    return drops


def s_rank_drops(data, starts, config, split):
    """{rank: [per-seed mean over rounds >= 2 of global(t-1) - rank's start(t)]}."""
    out = {}
    for seed, by_round in starts.get((config, split), {}).items():
        rows = data[(config, split)][seed]
        per = {}
        for i in range(1, len(rows)):
            for rank, acc in by_round.get(i + 1, {}).items():
                per.setdefault(rank, []).append(rows[i - 1]["accuracy"] - acc)
        for rank, d in per.items():
            out.setdefault(rank, []).append(statistics.mean(d))
    return out


#   Verdicts (rules fixed with the noise rule above, before any base3M number was seen).
#   Each is given per split as supported / not supported / within noise, and a claim overall as
#   the common verdict of its splits, or "mixed" naming each.
#   F1: supported when freeze's mean drop at distribution is within +-0.5 points and
#       truncate's drop exceeds freeze's by at least 0.5 points and by more than twice the
#       standard error of the per-seed differences; not supported when freeze drops by more
#       than 0.5 points or truncate's excess is resolved below 0.5 points; else within noise.
#   F2: supported when HAFL is cheaper than FedAvg r=8 to the target (reached in more seeds,
#       or in as many and with fewer upload bytes) and its final accuracy is resolved higher
#       than FedAvg r=2's; not supported when it is not cheaper or FedAvg r=2 is resolved
#       higher; else within noise.
#   F3: supported when adaptive reaches the target in more seeds than zeropad, or in as many
#       and at least one round sooner on average, and its final accuracy is not resolved lower;
#       not supported when zeropad is that much faster or resolved more accurate; else within
#       noise.
F1_MARGIN = 0.005


def s_drop_diff_se(tr, fz):
    """Standard error of the mean per-seed difference truncate - freeze (floored at 0.1
    points: three seeds can agree by luck)."""
    diffs = [t - f for t, f in zip(tr, fz)]
    if len(diffs) < 2:
        return float("nan")
    return max(statistics.stdev(diffs) / math.sqrt(len(diffs)), 0.001)


def s_claim_f1(data, starts):
    lines, verdicts = [], {}
    for split in ("iid", "dirichlet"):
        fz = s_start_drop(data, "freeze-adaptive", split)
        tr = s_start_drop(data, "truncate-adaptive", split)
        if not fz or not tr or len(fz) != len(tr):
            continue
        fz_m, tr_m = statistics.mean(fz), statistics.mean(tr)
        excess = tr_m - fz_m
        se = s_drop_diff_se(tr, fz)
        if abs(fz_m) > F1_MARGIN or (not math.isnan(se) and excess + RESOLVE * se < F1_MARGIN):
            v = "not supported"
        elif excess >= F1_MARGIN and not math.isnan(se) and excess > RESOLVE * se:
            v = "supported"
        else:
            v = "within noise"
        verdicts[split] = v
        lines.append(
            "- %s: %s. Drop at distribution (global accuracy after round t-1 minus the clients' "
            "mean starting accuracy in round t, same test subset, rounds 2..end, mean over %d "
            "seeds): freeze **%+.2f points** (per seed %s), truncate **%+.2f points** (per seed "
            "%s); truncate's excess %+.2f points, standard error %.2f."
            % (SPLIT_NAME[split], v, len(fz), 100 * fz_m,
               ", ".join("%+.2f" % (100 * v_) for v_ in fz), 100 * tr_m,
               ", ".join("%+.2f" % (100 * v_) for v_ in tr), 100 * excess,
               100 * se if not math.isnan(se) else float("nan")))
        by_rank = s_rank_drops(data, starts, "truncate-adaptive", split)
        if by_rank:
            lines.append("  Truncate by rank budget (mean over seeds): " + ", ".join(
                "rank %d %+.2f points" % (r, 100 * statistics.mean(v_))
                for r, v_ in sorted(by_rank.items())) + ".")
    return verdicts, lines


def s_cheaper(a, b):
    """'yes' when a reaches the target in more seeds than b, or as many (>= 1) with fewer
    upload bytes; 'no' otherwise."""
    if a["reached"] != b["reached"]:
        return "yes" if a["reached"] > b["reached"] else "no"
    if a["reached"] == 0:
        return "no"
    return "yes" if a["bytes_to_target"] < b["bytes_to_target"] else "no"


def s_diff_text(name_a, a, name_b, b):
    d, se, how = s_compare(a["finals"], b["finals"])
    return "%s %s vs %s %s: %+.2f points, standard error %.2f (%s)" % (
        name_a, s_pct(a["final_mean"]), name_b, s_pct(b["final_mean"]), 100 * d, 100 * se,
        "resolved" if how != "noise" else "within noise"), how


def s_verdict(against, supports):
    """A split's verdict: the opposite measured (resolved) wins, then support, else noise."""
    if against:
        return "not supported"
    return "supported" if supports else "within noise"


def s_claim_f2(summary, split):
    hafl, r8, r2 = (s_find(summary, c, split) for c in ("freeze-adaptive", "fedavg-r8",
                                                        "fedavg-r2"))
    if not (hafl and r8 and r2):
        return None, []
    cheaper = s_cheaper(hafl, r8)
    text, how = s_diff_text("HAFL", hafl, "FedAvg r=2", r2)
    v = s_verdict(against=cheaper == "no" or how == "lower", supports=how == "higher")
    lines = ["- %s: %s. Upload to reach the target (%s): HAFL %s (%d/%d seeds), FedAvg r=8 %s "
             "(%d/%d), FedAvg r=2 %s (%d/%d); HAFL cheaper than FedAvg r=8: %s. Total upload: "
             "HAFL %s, FedAvg r=8 %s, FedAvg r=2 %s. Final accuracy on all test documents: %s."
             % (SPLIT_NAME[split], v, s_pct(hafl["target"]),
                s_mb(hafl["bytes_to_target"]), hafl["reached"], hafl["seeds"],
                s_mb(r8["bytes_to_target"]), r8["reached"], r8["seeds"],
                s_mb(r2["bytes_to_target"]), r2["reached"], r2["seeds"], cheaper,
                s_mb(hafl["total_up_bytes"]), s_mb(r8["total_up_bytes"]),
                s_mb(r2["total_up_bytes"]), text)]
    return v, lines


def s_claim_f3(summary, split):
    ad, zp = s_find(summary, "freeze-adaptive", split), s_find(summary, "zeropad", split)
    if not (ad and zp):
        return None, []
    def rounds_text(s):
        if not s["reached"]:
            return "never (0/%d seeds)" % s["seeds"]
        return "%.1f rounds (%d/%d seeds; per seed %s)" % (
            s["rounds_to_target"], s["reached"], s["seeds"],
            ", ".join("never" if r is None else str(r) for r in s["rounds_per_seed"]))
    if ad["reached"] != zp["reached"]:
        speed = "faster" if ad["reached"] > zp["reached"] else "slower"
    elif ad["reached"] == 0:
        speed = "tie"
    elif ad["rounds_to_target"] <= zp["rounds_to_target"] - 1:
        speed = "faster"
    elif zp["rounds_to_target"] <= ad["rounds_to_target"] - 1:
        speed = "slower"
    else:
        speed = "tie"
    text, how = s_diff_text("adaptive", ad, "zeropad", zp)
    v = s_verdict(against=speed == "slower" or how == "lower", supports=speed == "faster")
    lines = ["- %s: %s. Target %s: adaptive reaches it in %s, zeropad in %s (adaptive %s). "
             "Final accuracy on all test documents: %s."
             % (SPLIT_NAME[split], v, s_pct(ad["target"]), rounds_text(ad), rounds_text(zp),
                {"faster": "at least a round sooner or in more seeds",
                 "slower": "at least a round later or in fewer seeds",
                 "tie": "within a round of it"}[speed], text)]
    return v, lines


def s_combine(verdicts):
    """Overall verdict from {split: verdict}."""
    if not verdicts:
        return "**not measured**"
    kinds = set(verdicts.values())
    if len(kinds) == 1:
        return "**%s**" % kinds.pop()
    return "**mixed** (" + "; ".join("%s: %s" % (SPLIT_NAME[sp], v)
                                     for sp, v in sorted(verdicts.items())) + ")"


def s_settings_table(quick, seeds, rounds, splits):
    def v(key):
        return s_topology_value("freeze-adaptive", key)
    rows = [
        ("model", "stories260K, LoRA on wq,wk,wv,wo, R = 8, alpha = 16",
         "base3M (3.4M parameters, 4096-piece vocabulary), LoRA on %s, R = %s, alpha = %s"
         % (v("model/targets"), v("model/rank"), v("model/alpha"))),
        ("clients, rank budgets", "10, {2,2,2,4,4,4,8,8,8,8}", "same"),
        ("rounds", "50", "%d (`--rounds %d`)" % (rounds, rounds) if rounds
         else v("server/rounds")),
        ("local training", "1 epoch (~141 steps of batch 8 per client)",
         "%s steps of batch %s per round" % (v("clients/local_steps"), v("clients/batch"))),
        ("learning rate (AdamW, LoRA and head)", "1e-3", v("clients/lr")),
        ("tokens per document", "128", v("data/max_tokens")),
        ("spaces before encoding", "not stated",
         "collapsed as SentencePiece does" if v("model/collapse_spaces") == "true" else
         "as in the text (llama2.c's encoder; `model/collapse_spaces` off)"),
        ("test set", "all 7,532 documents",
         "final model: all 7,532 documents (`hafl eval`); per-round curves: %s documents "
         "spread over the test set, the same for every run" % v("evaluator/max_examples")),
        ("splits", "IID and Dirichlet(0.5)",
         "same" if len(splits) == 2 else " and ".join(SPLIT_NAME[s] for s in splits) + " only"),
        ("seeds", "not stated", ", ".join(map(str, seeds))),
    ]
    out = ["| setting | docs/METHOD.md default | this reproduction |", "|---|---|---|"]
    out += ["| %s | %s | %s |" % r for r in rows]
    if quick:
        out.append("| (--quick) | | " + ", ".join(QUICK_SETS) + " |")
    return "\n".join(out)


def s_bag_of_words(args):
    """The bag-of-words line for context: TF-IDF and a linear SVM (scikit-learn) on the same
    text window as the model (the first max_tokens - 1 pieces of each cleaned document, BOS
    aside, decoded back to text with the SentencePiece original of the tokenizer), C chosen on
    VALIDATION_DOCS training documents held out (a seeded draw of the reference's validation
    size; numpy's, not hafl's), then trained on all training documents and scored on all test
    documents. None (with a note) when a package is missing."""
    try:
        import tarfile
        import numpy as np
        import sentencepiece as spm
        from sklearn.datasets._twenty_newsgroups import (strip_newsgroup_footer,
                                                         strip_newsgroup_header,
                                                         strip_newsgroup_quoting)
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.svm import LinearSVC
    except ImportError as e:
        print("reproduce: bag-of-words line skipped: %s" % e, file=sys.stderr)
        return None
    assets = os.environ.get("HAFL_ASSETS") or os.path.join(ROOT, "..", "shared", "assets")
    archive = os.path.join(assets, "20news-bydate.tar.gz")
    tok = os.path.join(assets, "tok4096.model")
    if not (os.path.exists(archive) and os.path.exists(tok)):
        print("reproduce: bag-of-words line skipped: no %s or %s" % (archive, tok),
              file=sys.stderr)
        return None
    window = int(s_topology_value("freeze-adaptive", "data/max_tokens")) - 1
    sp = spm.SentencePieceProcessor(model_file=tok)
    docs = {"train": [], "test": []}
    with tarfile.open(archive) as tf:
        members = [m for m in tf.getmembers() if m.isfile()]
        #   hafl's document order: by group, then numeric id (the validation draw indexes it)
        members.sort(key=lambda m: (m.name.split("/")[-3], m.name.split("/")[-2],
                                    int(m.name.split("/")[-1])))
        groups = sorted({m.name.split("/")[-2] for m in members})
        for m in members:
            parts = m.name.split("/")
            text = tf.extractfile(m).read().decode("latin-1")
            text = strip_newsgroup_quoting(strip_newsgroup_footer(strip_newsgroup_header(text)))
            part = "train" if "train" in parts[-3] else "test"
            docs[part].append((sp.decode(sp.encode(text)[:window]), groups.index(parts[-2])))
    def fit(train, C):
        vec = TfidfVectorizer(sublinear_tf=True, min_df=2)
        X = vec.fit_transform([t for t, _ in train])
        return vec, LinearSVC(C=C).fit(X, [y for _, y in train])
    def score(model, test):
        vec, clf = model
        pred = clf.predict(vec.transform([t for t, _ in test]))
        return float(np.mean(pred == np.array([y for _, y in test])))
    rng = np.random.default_rng(1)
    held = set(rng.permutation(len(docs["train"]))[:VALIDATION_DOCS].tolist())
    fit_part = [d for i, d in enumerate(docs["train"]) if i not in held]
    val_part = [d for i, d in enumerate(docs["train"]) if i in held]
    grid = (0.1, 0.3, 1.0, 3.0)
    val = {C: score(fit(fit_part, C), val_part) for C in grid}
    best = max(grid, key=lambda C: (val[C], -C))
    return {"window": window, "C": best, "validation": val,
            "test": score(fit(docs["train"], best), docs["test"])}


def s_results_md(args, data, finals, starts, summary, targets, plots, wall, tuning, bow,
                 n_planned):
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                            capture_output=True).stdout.strip() or "unknown"
    seeds = sorted({seed for v in data.values() for seed in v})
    n_runs = sum(len(v) for v in data.values())
    md = ["# Results: the paper's experiments on 20 Newsgroups, base3M", ""]
    md.append("Generated by `tools/reproduce.py` from %d runs of `hafl run`%s (report written "
              "at commit %s, %s, %d cores; the runs took %s of wall time in all, one after "
              "another). Every number below is measured; the raw per-round data is in "
              "[`data/rounds.csv`](data/rounds.csv) and the table in "
              "[`data/summary.csv`](data/summary.csv)."
              % (n_runs, " and %d tuning runs" % len(tuning[2]) if tuning else "", commit,
                 time.strftime("%Y-%m-%d", time.gmtime()), os.cpu_count() or 0, s_hms(wall)))
    if n_runs < n_planned:
        md += ["", "**Incomplete:** %d of the %d planned runs have finished; the rest are "
               "missing from the table and the verdicts below, which speak only for the runs "
               "listed. `tools/reproduce.py` resumes where it stopped." % (n_runs, n_planned)]
    md += ["", "## Settings", ""]
    if OVERRIDES:
        md.append("These runs use the topologies of [`topologies/paper/`](%s) with %s "
                  "(the table below shows the values used)."
                  % (os.path.relpath(os.path.join(ROOT, "topologies", "paper"), args.out),
                     ", ".join("`--set %s=%s`" % kv for kv in sorted(OVERRIDES.items()))))
    else:
        md.append("Topologies: [`topologies/paper/`](../topologies/paper/); the Dirichlet runs "
                  "add `--set data/split=dirichlet`, every run `--set seed=S`. The budget is "
                  "reduced from the paper's so that the whole set fits three hours on two "
                  "cores.")
    splits_run = [sp for sp in ("iid", "dirichlet") if any(x == sp for _, x in data)]
    md += ["", s_settings_table(args.quick, seeds, args.rounds, splits_run), ""]
    md.append("Seeds: %s. The seed drives the data split, the adapter initialisation and the "
              "batches; the test documents are the same for every run. Chance accuracy is 5%% "
              "(20 classes)." % ", ".join(map(str, seeds)))
    md += ["", "Schemes: freeze-adaptive, zeropad and FedAvg r=8 use `freeze`; truncate-adaptive "
           "`truncate`; FedAvg r=2, FlexLoRA and FLoRA `truncate-prefix` (each client holds its "
           "first r_i components, which is what those methods assume); freeze-random "
           "`freeze-random`.", ""]
    md += ["## References (context, not claims)", ""]
    if tuning:
        lr, epochs, table = tuning
        md.append("Centralised reference: one client with all the training data at rank 8, "
                  "batch %s on both cores, %s epochs at most. Its learning rate and number of "
                  "epochs were chosen on %d training documents held out as a validation split "
                  "(`data/validation`), never on the test set; validation accuracy per epoch: "
                  % (s_topology_value("centralised", "clients/batch"),
                     s_topology_value("centralised", "server/rounds"), VALIDATION_DOCS)
                  + "; ".join("lr %s: %s" % (k, ", ".join(s_pct(a) for a in v))
                              for k, v in sorted(table.items(), key=lambda kv: float(kv[0])))
                  + ". Chosen: lr %s for %d epochs%s; trained with it on all %s training "
                  "documents (seed 1) and scored on the test set: **%s**."
                  % (lr, epochs,
                     " (the last epoch tried: validation accuracy was still rising, so this is "
                     "not yet converged)" if epochs == int(s_topology_value(
                         "centralised", "server/rounds")) else "",
                     "11,314", s_pct(s_mean(list(finals.get(("centralised", "iid"),
                                                            {}).values())))))
    else:
        md.append("Centralised reference: not run.")
    if bow:
        md += ["", "Bag of words, for context: TF-IDF and a linear SVM (scikit-learn) on the same "
               "text window (the first %d pieces of each cleaned document, decoded back to "
               "text), C = %s chosen on %d held-out training documents (%s), reaches **%s** on "
               "all test documents. It is the level a model that reads this window well could "
               "reach; it is not a claim about hafl."
               % (bow["window"], bow["C"], VALIDATION_DOCS, ", ".join("C %s: %s" % (c, s_pct(a))
                                                      for c, a in sorted(bow["validation"].items())),
                  s_pct(bow["test"]))]
    md += ["", "## Table", ""]
    md.append("Final accuracy: the final global model on all 7,532 test documents, mean over "
              "seeds ± its standard error (rule below), with the range over seeds. Target "
              "accuracy (stated rule): halfway from chance to the best federated "
              "configuration's mean final accuracy on that split, rounded down to 0.5 points: "
              + ", ".join("%s %s" % (SPLIT_NAME[s], s_pct(t)) for s, t in sorted(targets.items()))
              + ". Rounds and upload to target are read off the per-round curves (fixed test "
              "subset) and averaged over the seeds that reached it (reached = how many). Upload "
              "bytes count everything the clients sent (factors, head, scores, control), summed "
              "over clients and rounds.")
    md += ["", "| config | split | final accuracy (all test docs), mean ± SE (min..max) | "
           "last round on the subset | rounds to target (reached) | upload to target | "
           "total upload | s per round |",
           "|---|---|---|---|---|---|---|---|"]
    for s in summary:
        md.append("| %s | %s | %s ± %s (%s..%s) | %s | %s (%d/%d) | %s | %s | %.1f |" % (
            LABEL[s["config"]], SPLIT_NAME[s["split"]], s_pct(s["final_mean"]),
            s_pct(s["final_se"]), s_pct(s["final_min"]), s_pct(s["final_max"]),
            s_pct(s["subset_last_mean"]),
            "%.1f" % s["rounds_to_target"] if s["reached"] else "—", s["reached"], s["seeds"],
            s_mb(s["bytes_to_target"]) if s["reached"] else "—", s_mb(s["total_up_bytes"]),
            s["round_s"]))
    md += ["", "## The paper's claims", ""]
    md.append("Rules (fixed before any base3M number was seen; the script applies them). "
              "Noise: one reading of a final accuracy has the larger of its variance over seeds "
              "and the binomial variance p(1-p)/7532 of one test-set reading; a difference of "
              "two means is *resolved* when it exceeds twice its standard error, otherwise it is "
              "*within noise*. F1 is supported on a split when freeze's mean drop at "
              "distribution is within ±0.5 points and truncate's drop exceeds freeze's by at "
              "least 0.5 points and by more than twice the standard error of the per-seed "
              "differences. F2 is supported on a split when HAFL reaches the target in more "
              "seeds than FedAvg r=8, or in as many with fewer upload bytes, and its final "
              "accuracy is resolved higher than FedAvg r=2's. F3 is supported on a split when "
              "adaptive reaches the target in more seeds than zeropad, or in as many and at "
              "least one round sooner on average, and its final accuracy is not resolved lower. "
              "Each is *not supported* when the opposite is measured (resolved), and *within "
              "noise* otherwise. A claim's verdict is the common verdict of its splits, or "
              "mixed.")
    md.append("")
    f1_verdicts, f1_lines = s_claim_f1(data, starts)
    md.append("**F1 — freeze shows no accuracy drop at distribution, truncate does:** "
              + s_combine(f1_verdicts))
    md += [""] + f1_lines + [""]
    f2 = {sp: s_claim_f2(summary, sp) for sp in ("iid", "dirichlet")}
    md.append("**F2 — for the bytes uploaded, freeze + adaptive beats FedAvg at rank R (fewer "
              "bytes to the same accuracy) and at rank min(r_i) (higher accuracy):** "
              + s_combine({sp: r[0] for sp, r in f2.items() if r[0]}))
    md += [""] + [line for r in f2.values() for line in r[1]] + [""]
    f3 = {sp: s_claim_f3(summary, sp) for sp in ("iid", "dirichlet")}
    md.append("**F3 — adaptive aggregation reaches the target accuracy in fewer rounds than "
              "zero-padding, same clients and scheme:** "
              + s_combine({sp: r[0] for sp, r in f3.items() if r[0]}))
    md += [""] + [line for r in f3.values() for line in r[1]] + [""]
    md += ["## Plots", ""]
    for p in plots:
        md.append("![%s](plots/%s)" % (os.path.basename(p)[:-4], os.path.basename(p)))
        md.append("")
    md += ["## Appendix: stories260K", "",
           "The same experiments on stories260K (a 260K-parameter model with a 512-piece "
           "vocabulary trained on children's stories) ended at 10-16% for every method, on the "
           "line that random frozen features reach: that model cannot learn this task, so those "
           "runs could not tell the methods apart. They are kept, with their settings and "
           "verdicts, in [appendix-tiny-model/RESULTS.md](appendix-tiny-model/RESULTS.md).", ""]
    flags = " --rounds %d" % args.rounds if args.rounds else ""
    if args.quick:
        flags += " --quick"
    if args.seeds != 3:
        flags += " --seeds %d" % args.seeds
    if args.only:
        flags += " --only " + args.only
    if args.splits != "iid,dirichlet":
        flags += " --splits " + args.splits
    flags += "".join(" --set %s=%s" % kv for kv in sorted(OVERRIDES.items()))
    if os.path.abspath(args.out) != os.path.join(ROOT, "docs"):
        flags += " --out " + os.path.relpath(os.path.abspath(args.out), ROOT)
    md += ["## Regenerating", "", "```sh",
           "cmake -S . -B build && cmake --build build --target hafl -j2",
           "tools/reproduce.py%s                 # all runs (resumes), then this file and "
           "the plots" % flags,
           "tools/reproduce.py%s --report-only   # only rebuild this file from finished runs"
           % flags,
           "```", "",
           "Each finished run leaves its record in [`data/runs/`](data/runs/) (settings, topology "
           "digest, final adapter digest, per-round rows, final accuracy), which is what this "
           "report is built from and what a later call resumes from, on any machine. Accuracy "
           "does not depend on the machine; the last bits of each digest and the seconds per "
           "round do: these runs used OpenBLAS's AVX-512 kernels (`OPENBLAS_CORETYPE` unset, "
           "hafl chooses them) on two cores that were also building and testing hafl, so the "
           "seconds are upper bounds.", ""]
    with open(args.results, "w", encoding="utf-8") as f:
        f.write("\n".join(md))


#   ---------------------------------------------------------------------------------------


def s_check(args, jobs):
    """`hafl check` on every job's topology with its overrides; 0 when all are valid."""
    failed = 0
    for job in jobs:
        cmd = [args.hafl, "check", s_topology(job.config)]
        for s in job.sets:
            cmd += ["--set", s]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            failed += 1
            print("FAIL %s: %s" % (job.key, proc.stderr.strip()), file=sys.stderr)
    print("reproduce: %d of %d run settings valid" % (len(jobs) - failed, len(jobs)))
    return 1 if failed else 0


def main():
    p = argparse.ArgumentParser(description="Run the paper's experiments and write "
                                "docs/RESULTS.md with its CSVs and plots.")
    p.add_argument("--hafl", default=os.path.join(ROOT, "build", "hafl"),
                   help="the hafl binary (default: build/hafl)")
    p.add_argument("--seeds", type=int, default=3, help="seeds 1..N (default 3)")
    p.add_argument("--only", default="", help="comma list of configs to run (default: all)")
    p.add_argument("--splits", default="iid,dirichlet", help="comma list of splits")
    p.add_argument("--rounds", type=int, default=0,
                   help="override server/rounds of every topology (default: the files')")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of every topology (repeatable)")
    p.add_argument("--quick", action="store_true",
                   help="tiny runs to test this script (%s)" % " ".join(QUICK_SETS))
    p.add_argument("--scratch", default=os.path.join(ROOT, "runs", "reproduce"),
                   help="folder for the run folders (default: runs/reproduce)")
    p.add_argument("--out", default=os.path.join(ROOT, "docs"),
                   help="folder receiving RESULTS.md, data/ and plots/ (default: docs)")
    p.add_argument("--report-only", action="store_true",
                   help="run nothing; rebuild the report from the finished runs")
    p.add_argument("--jobs-list", action="store_true", help="print the runs and exit")
    p.add_argument("--no-bow", action="store_true",
                   help="leave the bag-of-words context line out of the report")
    p.add_argument("--check", action="store_true",
                   help="validate every run's topology and overrides with `hafl check`; exit")
    args = p.parse_args()

    names = [c[0] for c in CONFIGS]
    only = [n for n in args.only.split(",") if n]
    for n in only:
        if n not in names:
            s_fail("--only: unknown config '%s' (one of: %s)" % (n, ",".join(names)))
    splits = [s for s in args.splits.split(",") if s]
    for s in splits:
        if s not in SPLIT_NAME:
            s_fail("--splits: unknown split '%s' (iid, dirichlet)" % s)
    if args.seeds < 1:
        s_fail("--seeds must be at least 1")
    if args.rounds < 0:
        s_fail("--rounds must be positive")
    for item in args.set:
        key, eq, value = item.partition("=")
        if not eq or key.count("/") != 1 or not value or key in ("seed", "data/split"):
            s_fail("--set %s: expected SECTION/KEY=VALUE (seed and data/split are the "
                   "script's own)" % item)
        OVERRIDES[key] = value
    if args.quick:   # other settings, other run folders: never overwrite full-size runs
        args.scratch = os.path.join(args.scratch, "quick")
    elif args.rounds:
        args.scratch = os.path.join(args.scratch, "rounds-%d" % args.rounds)
    if OVERRIDES:
        tag = hashlib.sha256(" ".join(sorted(args.set)).encode()).hexdigest()[:10]
        args.scratch = os.path.join(args.scratch, "set-" + tag)
    args.scratch = os.path.abspath(args.scratch)
    full_size = not (args.quick or args.rounds or OVERRIDES)
    args.records = os.path.abspath(os.path.join(args.out, "data", "runs")) if full_size \
        else os.path.join(args.scratch, "records")
    args.results = os.path.join(args.out, "RESULTS.md")

    seeds = list(range(1, args.seeds + 1))
    def wanted(config):
        return not only or config in only
    def federated(configs):
        out = []
        for seed in seeds:   # seed-major: a cut-short phase keeps whole seeds
            for config, _, config_splits, _ in CONFIGS:
                if config in configs and wanted(config):
                    out += [Job(config, split, seed, args.quick, args.rounds)
                            for split in config_splits if split in splits]
        return out
    claims = federated(CLAIM_CONFIGS)
    tune = [Job("centralised", "iid", 1, args.quick, args.rounds, tune_lr=lr)
            for lr in TUNE_LRS] if wanted("centralised") else []
    others = federated([c[0] for c in CONFIGS
                        if c[0] not in CLAIM_CONFIGS and c[0] != "centralised"])
    #   The centralised reference trains on one seed: it is a ceiling for context, and its
    #   epochs cost as much as several federated runs.
    central_seeds = [1]
    jobs = claims + tune + ([lambda: s_central_jobs(args, tune, central_seeds)] if tune else []) \
        + others
    all_jobs = claims + tune + s_central_jobs(args, tune, central_seeds) + others
    scaled = [k for k in ("clients/local_steps", "clients/batch", "clients/lr",
                          "server/rounds") if k in OVERRIDES]
    if scaled and tune:
        s_fail("--set %s would also replace the centralised reference's own (tuned) value; "
               "leave it out with --only" % scaled[0])
    if args.jobs_list:
        for j in all_jobs:
            print(j.key, " ".join("--set " + s for s in j.sets))
        if tune and not s_tuning(args, tune):
            print("(the centralised test run follows once its tuning runs have finished)")
        return 0
    if args.check:
        #   The tuning runs stand for the centralised test run's settings too (same file; the
        #   test run only changes clients/lr and server/rounds to tuned values).
        return s_check(args, all_jobs)
    if not args.report_only:
        if not os.access(args.hafl, os.X_OK):
            s_fail("no hafl binary at %s (build it, or pass --hafl PATH)" % args.hafl)
        if shutil.which("gnuplot") is None:
            s_fail("gnuplot is not installed (tools/bootstrap.sh installs it)")
        os.makedirs(args.scratch, exist_ok=True)
        s_run_all(args, jobs)
    all_jobs = claims + tune + s_central_jobs(args, tune, central_seeds) + others
    data, finals, wall = s_collect(args, all_jobs)
    if not data:
        s_fail("no finished runs recorded in %s" % args.records)
    tuning = s_tuning(args, tune) if tune else None
    targets = {split: s_target(finals, split) for split in ("iid", "dirichlet")
               if any(sp == split for _, sp in data)}
    summary = s_summary(data, finals, targets)
    s_write_csvs(data, summary, os.path.join(args.out, "data"))
    starts = s_start_by_rank(args, all_jobs)
    plots = s_plots(data, starts, targets, args.scratch, os.path.join(args.out, "plots"))
    bow = None if args.quick or args.no_bow else s_bag_of_words(args)
    s_results_md(args, data, finals, starts, summary, targets, plots, wall, tuning, bow,
                 len([j for j in all_jobs if j.tune_lr is None]))
    print("reproduce: wrote %s, %s and %d plots" % (args.results,
                                                    os.path.join(args.out, "data"), len(plots)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
