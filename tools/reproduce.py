#!/usr/bin/env python3
"""reproduce.py: run the paper's experiments (docs/METHOD.md section 6) and write docs/RESULTS.md.

Runs every topology of topologies/paper/ with several seeds, on the IID split and on the
Dirichlet(0.5) label-skew split (the centralised ceiling on one split only: with one client the
split changes nothing), through `hafl run ... --set seed=S --set data/split=SPLIT --set
logger/run_dir=SCRATCH/KEY`. Each finished run leaves SCRATCH/KEY/done.json; a later call skips
those runs (resumable), so an interrupted reproduction continues where it stopped.

Outputs (all regenerated from the run folders on every call):
    docs/data/rounds.csv    one row per (config, split, seed, round): accuracy, start accuracy,
                            losses, bytes; the measured data behind every plot and table
    docs/data/summary.csv   one row per (config, split): final accuracy mean/std/min/max over
                            seeds, rounds and upload bytes to the target accuracy, total bytes
    docs/plots/*.png        gnuplot figures (accuracy vs round, vs cumulative upload bytes,
                            starting accuracy after download for truncate vs freeze)
    docs/RESULTS.md         settings, seeds, the table, the plots and a verdict per claim

Usage: tools/reproduce.py [--hafl PATH] [--seeds N] [--only NAME[,NAME]] [--splits iid,...]
                          [--rounds N] [--set KEY=VALUE]... [--quick] [--scratch DIR]
                          [--out DIR] [--report-only] [--jobs-list] [--check]
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
    ("centralised", "centralised, 10x steps (1 client)", ("iid",), "ceiling"),
    ("centralised-b80", "centralised, batch 80 (1 client)", ("iid",), "ceiling"),
]
LABEL = {c[0]: c[1] for c in CONFIGS}
SPLIT_NAME = {"iid": "IID", "dirichlet": "Dirichlet(0.5)"}

#   Starting accuracy is scored only on the IID split (it costs one extra evaluation per client
#   per round); the Dirichlet runs of these two configs switch it off.
CLIENT_START_SPLITS = ("iid",)

#   --quick: a few tiny rounds per run, to test this script, not to measure anything.
QUICK_SETS = ["server/rounds=2", "clients/local_steps=2", "data/test_limit=40"]

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
    """One hafl run: a config on a split with a seed."""

    def __init__(self, config, split, seed, quick, rounds):
        self.config, self.split, self.seed = config, split, seed
        self.key = "%s-%s-s%d" % (config, split, seed)
        self.sets = ["seed=%d" % seed, "data/split=%s" % split]
        if s_topology_value(config, "evaluator/client_start") == "true" \
                and split not in CLIENT_START_SPLITS:
            self.sets.append("evaluator/client_start=false")
        if quick:
            self.sets += QUICK_SETS
        elif rounds:
            self.sets.append("server/rounds=%d" % rounds)
        self.sets += ["%s=%s" % kv for kv in sorted(OVERRIDES.items())]

    def digest(self):
        """SHA-256 of the topology file: a finished run counts only for the same file."""
        with open(s_topology(self.config), "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()

    def rounds(self):
        for s in self.sets:
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


def s_done(job, folder):
    """True when the job's folder holds a finished run made with exactly these settings."""
    try:
        with open(os.path.join(folder, "done.json"), encoding="utf-8") as f:
            done = json.load(f)
    except (OSError, ValueError):
        return False
    run = s_run_folder(folder)
    return (done.get("sets") == job.sets and done.get("topology") == job.digest()
            and run is not None
            and os.path.exists(os.path.join(run, "final_adapter.bin"))
            and len(s_read_rounds(run)) == job.rounds())


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
    seconds = time.time() - t0
    with open(os.path.join(folder, "done.json"), "w", encoding="utf-8") as f:
        json.dump({"sets": job.sets, "topology": job.digest(), "seconds": round(seconds, 1)},
                  f)
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
    started = time.time()
    costs = {}
    todo = []
    for job in jobs:
        folder = os.path.join(args.scratch, job.key)
        if s_done(job, folder):
            with open(os.path.join(folder, "done.json"), encoding="utf-8") as f:
                costs.setdefault(job.config, []).append(json.load(f).get("seconds", 0.0))
        else:
            todo.append(job)
    print("reproduce: %d runs, %d already complete, %d to run"
          % (len(jobs), len(jobs) - len(todo), len(todo)), flush=True)
    for i, job in enumerate(todo):
        seconds = s_run_job(args, job, os.path.join(args.scratch, job.key), i + 1, len(todo),
                            started, costs)
        eta = s_eta(todo[i + 1:], costs)
        print("    done in %.0f s; elapsed %s, ETA %s" % (
            seconds, s_hms(time.time() - started), s_hms(eta) if eta is not None else "?"),
            flush=True)


#   ---------------------------------------------------------------------------------------
#   Collecting and summarising


def s_float(text):
    try:
        v = float(text)
    except (TypeError, ValueError):
        return float("nan")
    return v


def s_collect(args, jobs):
    """({(config, split): {seed: [row dicts]}}, summed run seconds) from the finished runs."""
    data = {}
    seconds = 0.0
    for job in jobs:
        folder = os.path.join(args.scratch, job.key)
        if not s_done(job, folder):
            continue
        with open(os.path.join(folder, "done.json"), encoding="utf-8") as f:
            seconds += json.load(f).get("seconds", 0.0)
        rows = []
        for r in s_read_rounds(s_run_folder(folder)):
            rows.append({k: s_float(r[k]) for k in CSV_COLUMNS})
        data.setdefault((job.config, job.split), {})[job.seed] = rows
    return data, seconds


def s_start_by_rank(args, jobs):
    """{(config, split): {seed: {round: {rank budget: mean starting accuracy}}}} from the
    start-eval events (one per client per round) of runs that scored starting models."""
    out = {}
    for job in jobs:
        folder = os.path.join(args.scratch, job.key)
        if not s_done(job, folder):
            continue
        ranks = [int(r) for r in s_topology_value(job.config, "clients/ranks").split(",")]
        per = {}
        with open(os.path.join(s_run_folder(folder), "events.jsonl"), encoding="utf-8") as f:
            for line in f:
                if '"start-eval"' not in line:
                    continue
                e = json.loads(line)
                if e.get("event") != "start-eval" or e.get("accuracy") is None:
                    continue
                rank = ranks[e["client"]] if len(ranks) > 1 else ranks[0]
                per.setdefault(e["round"], {}).setdefault(rank, []).append(e["accuracy"])
        if per:
            out.setdefault((job.config, job.split), {})[job.seed] = {
                rnd: {rank: statistics.mean(v) for rank, v in by.items()}
                for rnd, by in per.items()}
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


def s_final(rows):
    """A run's final accuracy: the mean of its last three rounds (one reading of 400 test
    documents moves by a point or two from round to round)."""
    return statistics.mean(r["accuracy"] for r in rows[-3:])


def s_target(data, split):
    """The stated target accuracy of a split: halfway from chance to the best federated
    config's mean final accuracy, rounded down to 0.005."""
    best = max((s_mean([s_final(rows) for rows in seeds.values()])
                for (config, sp), seeds in data.items()
                if sp == split and not config.startswith("centralised")),
               default=float("nan"))
    if math.isnan(best) or best <= CHANCE:
        return float("nan")
    return math.floor((CHANCE + (best - CHANCE) / 2) * 200) / 200


def s_summary(data, targets):
    """One dict per (config, split) in CONFIGS order."""
    out = []
    for config, _, splits, _ in CONFIGS:
        for split in splits:
            seeds = data.get((config, split))
            if not seeds:
                continue
            target = targets.get(split, float("nan"))
            finals = [s_final(rows) for rows in seeds.values()]
            reach = [s_first_reach(rows, target) for rows in seeds.values()]
            hit = [r for r in reach if r]
            out.append({
                "config": config, "split": split, "seeds": len(seeds),
                "final_mean": s_mean(finals), "final_std": s_std(finals),
                "final_min": min(finals), "final_max": max(finals),
                "last_mean": s_mean([rows[-1]["accuracy"] for rows in seeds.values()]),
                "best_mean": s_mean([max(r["accuracy"] for r in rows)
                                     for rows in seeds.values()]),
                "target": target, "reached": len(hit),
                "rounds_to_target": s_mean([float(r[0]) for r in hit]),
                "rounds_per_seed": [r[0] if r else None for r in reach],
                "bytes_to_target": s_mean([r[1] for r in hit]),
                "total_up_bytes": s_mean([rows[-1]["cum_up_bytes"] for rows in seeds.values()]),
                "total_down_bytes": s_mean([rows[-1]["cum_down_bytes"]
                                            for rows in seeds.values()]),
                "round_s": s_mean([s_mean([r["wall_ms"] for r in rows]) / 1000
                                   for rows in seeds.values()]),
            })
    return out


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
            "last_mean",
            "best_mean", "target", "reached", "rounds_to_target", "bytes_to_target",
            "total_up_bytes", "total_down_bytes", "round_s"]
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


def s_claim_f1(data, starts):
    lines = []
    verdicts = []
    for split in ("iid", "dirichlet"):
        fz = s_start_drop(data, "freeze-adaptive", split)
        tr = s_start_drop(data, "truncate-adaptive", split)
        if not fz or not tr:
            continue
        fz_m, tr_m = statistics.mean(fz), statistics.mean(tr)
        ok = abs(fz_m) <= 0.005 and tr_m > fz_m + max(s_std(tr), 0.005)
        verdicts.append(ok)
        lines.append(
            "- %s: drop at distribution (global accuracy after round t-1 minus the clients' "
            "mean starting accuracy in round t, rounds 2..end, mean over %d seeds): freeze "
            "**%+.2f points** (per seed %s), truncate **%+.2f points** (per seed %s)."
            % (SPLIT_NAME[split], len(fz), 100 * fz_m,
               ", ".join("%+.2f" % (100 * v) for v in fz), 100 * tr_m,
               ", ".join("%+.2f" % (100 * v) for v in tr)))
        if not ok and all(v > 0 for v in tr) and all(abs(v) <= 0.005 for v in fz):
            lines.append("  The direction is as claimed in every seed (freeze loses nothing, "
                         "truncate loses a little), but truncate's drop is below the threshold "
                         "of the rule below.")
        by_rank = s_rank_drops(data, starts, "truncate-adaptive", split)
        if by_rank:
            lines.append("  Truncate by rank budget (mean over seeds): " + ", ".join(
                "rank %d %+.2f points" % (r, 100 * statistics.mean(v))
                for r, v in sorted(by_rank.items())) + ".")
    if not verdicts:
        return "not measured (no runs with starting accuracy).", []
    verdict = "**supported**" if all(verdicts) else (
        "**partly supported**" if any(verdicts) else "**not supported**")
    return verdict, lines


def s_claim_f2(summary, split):
    hafl, r8, r2 = (s_find(summary, c, split) for c in ("freeze-adaptive", "fedavg-r8",
                                                        "fedavg-r2"))
    if not (hafl and r8 and r2):
        return None, []
    lines = ["- %s (target %s): HAFL final %s with %s uploaded; FedAvg r=8 final %s with %s; "
             "FedAvg r=2 final %s with %s. Upload to reach the target: HAFL %s (%d/%d seeds), "
             "FedAvg r=8 %s (%d/%d), FedAvg r=2 %s (%d/%d)."
             % (SPLIT_NAME[split], s_pct(hafl["target"]), s_pct(hafl["final_mean"]),
                s_mb(hafl["total_up_bytes"]), s_pct(r8["final_mean"]), s_mb(r8["total_up_bytes"]),
                s_pct(r2["final_mean"]), s_mb(r2["total_up_bytes"]),
                s_mb(hafl["bytes_to_target"]), hafl["reached"], hafl["seeds"],
                s_mb(r8["bytes_to_target"]), r8["reached"], r8["seeds"],
                s_mb(r2["bytes_to_target"]), r2["reached"], r2["seeds"])]
    #   Supported when HAFL needs fewer upload bytes than FedAvg at rank R to reach the target
    #   (or reaches it in more seeds) and ends at least as accurate as FedAvg at rank 2.
    def reach_key(s):
        return (s["reached"], -s["bytes_to_target"] if s["reached"] else 0)
    cheaper = hafl["reached"] > 0 and reach_key(hafl) > reach_key(r8)
    better_than_r2 = hafl["final_mean"] >= r2["final_mean"]
    lines.append("  Fewer bytes than FedAvg r=8 to the target: %s; final accuracy at least "
                 "FedAvg r=2's: %s." % ("yes" if cheaper else "no",
                                        "yes" if better_than_r2 else "no"))
    return cheaper and better_than_r2, lines


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
    lines = ["- %s (target %s): adaptive reaches it in %s, zeropad in %s; final accuracy "
             "adaptive %s ± %s, zeropad %s ± %s."
             % (SPLIT_NAME[split], s_pct(ad["target"]), rounds_text(ad), rounds_text(zp),
                s_pct(ad["final_mean"]), s_pct(ad["final_std"]), s_pct(zp["final_mean"]),
                s_pct(zp["final_std"]))]
    #   Supported when adaptive reaches the target in more seeds, or in as many and in fewer
    #   rounds on average.
    if ad["reached"] != zp["reached"]:
        ok = ad["reached"] > zp["reached"]
    else:
        ok = ad["reached"] > 0 and ad["rounds_to_target"] < zp["rounds_to_target"]
    return ok, lines


def s_combine(results):
    results = [r for r in results if r is not None]
    if not results:
        return "**not measured**"
    if all(results):
        return "**supported**"
    return "**partly supported**" if any(results) else "**not supported**"


def s_settings_table(quick, seeds, rounds, splits):
    def v(key):
        return s_topology_value("freeze-adaptive", key)
    rows = [
        ("model", "stories260K, LoRA on wq,wk,wv,wo, R = 8, alpha = 16", "same"),
        ("clients, rank budgets", "10, {2,2,2,4,4,4,8,8,8,8}", "same"),
        ("rounds", "50", "%d (`--rounds %d`)" % (rounds, rounds) if rounds
         else v("server/rounds")),
        ("local training", "1 epoch (~141 steps of batch 8 per client)",
         "%s steps of batch %s per round" % (v("clients/local_steps"), v("clients/batch"))),
        ("learning rate (AdamW, LoRA and head)", "1e-3", v("clients/lr")),
        ("tokens per document", "128", v("data/max_tokens")),
        ("test set", "all 7,532 documents",
         "%s documents drawn at random per seed (the same for every config of a seed)"
         % v("data/test_limit")),
        ("splits", "IID and Dirichlet(0.5)",
         "same" if len(splits) == 2 else " and ".join(SPLIT_NAME[s] for s in splits) + " only"),
        ("seeds", "not stated", ", ".join(map(str, seeds))),
    ]
    out = ["| setting | docs/METHOD.md default | this reproduction |", "|---|---|---|"]
    out += ["| %s | %s | %s |" % r for r in rows]
    if quick:
        out.append("| (--quick) | | " + ", ".join(QUICK_SETS) + " |")
    return "\n".join(out)


def s_results_md(args, data, starts, summary, targets, plots, wall):
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                            capture_output=True).stdout.strip() or "unknown"
    seeds = sorted({seed for v in data.values() for seed in v})
    n_runs = sum(len(v) for v in data.values())
    md = ["# Results: the paper's experiments on 20 Newsgroups", ""]
    md.append("Generated by `tools/reproduce.py` from %d runs of `hafl run` (report written at "
              "commit %s, %s, %d cores; the runs took %s of wall time in all, one after "
              "another). Every number below is measured; the raw per-round data is in "
              "[`data/rounds.csv`](data/rounds.csv) and the table in "
              "[`data/summary.csv`](data/summary.csv)."
              % (n_runs, commit, time.strftime("%Y-%m-%d", time.gmtime()), os.cpu_count() or 0,
                 s_hms(wall)))
    md += ["", "## Settings", ""]
    if OVERRIDES:
        md.append("These %d runs use the topologies of [`topologies/paper/`](%s) with a larger "
                  "budget than the main reproduction, given to every run as %s (the table "
                  "below shows the values used); %severy run `--set seed=S`."
                  % (n_runs, os.path.relpath(os.path.join(ROOT, "topologies", "paper"),
                                             args.out),
                     ", ".join("`--set %s=%s`" % kv for kv in sorted(OVERRIDES.items())),
                     "the Dirichlet runs add `--set data/split=dirichlet`, "
                     if any(sp == "dirichlet" for _, sp in data) else ""))
    else:
        md.append("The reproduction runs at a reduced size, chosen so that all %d runs fit a "
                  "90-minute budget on a shared 2-core machine. Topologies: "
                  "[`topologies/paper/`](../topologies/paper/); the Dirichlet runs add "
                  "`--set data/split=dirichlet`, every run `--set seed=S`."
                  % n_runs)
    splits_run = [sp for sp in ("iid", "dirichlet") if any(x == sp for _, x in data)]
    test_docs = int(s_topology_value("freeze-adaptive", "data/test_limit"))
    finals = [row["final_mean"] for row in summary if not math.isnan(row["final_mean"])]
    typical = statistics.mean(finals) if finals else CHANCE   # for the standard error
    md += ["", s_settings_table(args.quick, seeds, args.rounds, splits_run), ""]
    md.append("Seeds: %s. The seed drives the data split, the adapter initialisation, the "
              "batches and the test subset. Chance accuracy is 5%% (20 classes). Starting "
              "accuracy after download (F1) is scored on the IID split only, where it costs an "
              "extra evaluation per client per round." % ", ".join(map(str, seeds)))
    md += ["", "Schemes: freeze-adaptive, zeropad and FedAvg r=8 use `freeze`; truncate-adaptive "
           "`truncate`; FedAvg r=2, FlexLoRA and FLoRA `truncate-prefix` (each client holds its "
           "first r_i components, which is what those methods assume); freeze-random "
           "`freeze-random`. Two centralised references, each one client with all the training "
           "data at rank 8: with ten times the local steps per round (as many optimiser steps "
           "as the ten clients together, batch 8), and with batches of 80 and the same %s steps "
           "(as many samples per step as the ten clients together)."
           % s_topology_value("freeze-adaptive", "clients/local_steps"), ""]
    md.append("At this size every configuration trains for a small fraction of the paper's "
              "budget (%s rounds of %s steps against 50 epochs), so accuracies stay far below "
              "what the full setting reaches; the comparisons below are between configurations "
              "at equal local compute and equal seeds, not against the paper's absolute numbers."
              % (args.rounds or s_topology_value("freeze-adaptive", "server/rounds"),
                 s_topology_value("freeze-adaptive", "clients/local_steps")))
    md += ["", "## Table", ""]
    md.append("Target accuracy (stated rule): halfway from chance to the best federated "
              "configuration's mean final accuracy on that split, rounded down to 0.5 points: "
              + ", ".join("%s %s" % (SPLIT_NAME[s], s_pct(t)) for s, t in sorted(targets.items()))
              + ". Rounds and upload to target are means over the seeds that reached it "
              "(reached = how many). Final accuracy is the mean of a run's last three rounds "
              "(mean, spread and range over the seeds); last round and best round are means "
              "over seeds of that single reading. Upload bytes count everything the clients "
              "sent (factors, head, scores, control), summed over clients and rounds.")
    md += ["", "| config | split | final accuracy, mean ± std (min..max) | last round | "
           "best round | "
           "rounds to target (reached) | upload to target | total upload | s per round |",
           "|---|---|---|---|---|---|---|---|---|"]
    for s in summary:
        md.append("| %s | %s | %s ± %s (%s..%s) | %s | %s | %s (%d/%d) | %s | %s | %.1f |" % (
            LABEL[s["config"]], SPLIT_NAME[s["split"]], s_pct(s["final_mean"]),
            s_pct(s["final_std"]), s_pct(s["final_min"]), s_pct(s["final_max"]),
            s_pct(s["last_mean"]), s_pct(s["best_mean"]),
            "%.1f" % s["rounds_to_target"] if s["reached"] else "—", s["reached"], s["seeds"],
            s_mb(s["bytes_to_target"]) if s["reached"] else "—", s_mb(s["total_up_bytes"]),
            s["round_s"]))
    md += ["", "## The paper's claims", ""]
    scope = "" if len(splits_run) == 2 else " (on %s only: the other split was not run)" \
        % " and ".join(SPLIT_NAME[sp] for sp in splits_run)
    f1_verdict, f1_lines = s_claim_f1(data, starts)
    md.append("**F1 — freeze shows no accuracy drop at distribution, truncate does:** "
              + f1_verdict)
    md += [""] + f1_lines + [""]
    f2 = [s_claim_f2(summary, sp) for sp in ("iid", "dirichlet")]
    md.append("**F2 — for the bytes uploaded, freeze + adaptive beats FedAvg at rank R (fewer "
              "bytes to the same accuracy) and at rank min(r_i) (higher accuracy):** "
              + s_combine([r[0] for r in f2]) + scope)
    md += [""] + [line for r in f2 for line in r[1]] + [""]
    f3 = [s_claim_f3(summary, sp) for sp in ("iid", "dirichlet")]
    md.append("**F3 — adaptive aggregation reaches the target accuracy in fewer rounds than "
              "zero-padding, same clients and scheme:** " + s_combine([r[0] for r in f3])
              + scope)
    md += [""] + [line for r in f3 for line in r[1]] + [""]
    md.append("Verdict rules (the script applies them; the numbers above let a reader apply "
              "others): F1 is supported on a split when freeze's "
              "mean drop is within ±0.5 points and truncate's exceeds it by more than its spread "
              "over seeds (at least 0.5 points). F2 is supported on a split when HAFL reaches "
              "the target in more seeds than FedAvg r=8, or in as many with fewer upload bytes, "
              "and its final accuracy is at least FedAvg r=2's. F3 is supported on a split when "
              "adaptive reaches the target in more seeds than zeropad, or in as many and in "
              "fewer rounds on average. %s With %s test documents one accuracy reading near "
              "%.0f%% has a standard error of about %.1f points, so differences of a point or "
              "two are within noise."
              % ("A claim is supported when it holds on both splits, partly when on one."
                 if len(splits_run) == 2 else
                 "Only %s was run here, so a verdict speaks for that split alone."
                 % " and ".join(SPLIT_NAME[sp] for sp in splits_run),
                 test_docs, 100 * typical, 100 * math.sqrt(typical * (1 - typical) / test_docs)))
    md += ["", "## Plots", ""]
    for p in plots:
        md.append("![%s](plots/%s)" % (os.path.basename(p)[:-4], os.path.basename(p)))
        md.append("")
    flags = " --rounds %d" % args.rounds if args.rounds else ""
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
           "```", ""]
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
    args.results = os.path.join(args.out, "RESULTS.md")

    jobs = []
    for seed in range(1, args.seeds + 1):   # seed-major: a cut-short run keeps whole seeds
        for config, _, config_splits, _ in CONFIGS:
            if only and config not in only:
                continue
            for split in config_splits:
                if split in splits or (len(config_splits) == 1 and config_splits[0] in splits):
                    jobs.append(Job(config, split, seed, args.quick, args.rounds))
    scaled = [k for k in ("clients/local_steps", "clients/batch") if k in OVERRIDES]
    if scaled and any(j.config.startswith("centralised") for j in jobs):
        s_fail("--set %s would also replace the centralised references' own value (they scale "
               "it to match ten clients); leave them out with --only" % scaled[0])
    if args.jobs_list:
        for j in jobs:
            print(j.key, " ".join("--set " + s for s in j.sets))
        return 0
    if args.check:
        return s_check(args, jobs)
    if not args.report_only:
        if not os.access(args.hafl, os.X_OK):
            s_fail("no hafl binary at %s (build it, or pass --hafl PATH)" % args.hafl)
        if shutil.which("gnuplot") is None:
            s_fail("gnuplot is not installed (tools/bootstrap.sh installs it)")
        os.makedirs(args.scratch, exist_ok=True)
        s_run_all(args, jobs)
    data, wall = s_collect(args, jobs)
    if not data:
        s_fail("no finished runs in %s" % args.scratch)
    targets = {split: s_target(data, split) for split in ("iid", "dirichlet")
               if any(sp == split for _, sp in data)}
    summary = s_summary(data, targets)
    s_write_csvs(data, summary, os.path.join(args.out, "data"))
    starts = s_start_by_rank(args, jobs)
    plots = s_plots(data, starts, targets, args.scratch, os.path.join(args.out, "plots"))
    s_results_md(args, data, starts, summary, targets, plots, wall)
    print("reproduce: wrote %s, %s and %d plots" % (args.results,
                                                    os.path.join(args.out, "data"), len(plots)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
