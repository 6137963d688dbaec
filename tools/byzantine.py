#!/usr/bin/env python3
"""byzantine.py: final accuracy under byzantine clients, for each defence, as a markdown table.

Runs `hafl run` on topologies/smoke.zpl (synthetic, 8 clients, seconds per run) and
topologies/quickstart.zpl (base3M on 20 Newsgroups, 10 clients, about 4 minutes per run on
two cores) with a share of the clients byzantine (faults/byzantine, default 0.2: 2 of 8 on
smoke, since round(1.6) = 2, and 2 of 10 on the quickstart), all with one attack (default
`scale` x10: each byzantine client uploads given + 10 (trained - given) for every component
and the head), under
    adaptive                the paper's aggregation, no defence
    median                  coordinate-wise median over the clients that trained each value
    trimmed-mean            trim 0.25 by default (server/trim): a trimmed mean only tolerates
                            attackers up to its trim at each end, and 2 of 8 is 25%
    adaptive + clip         server/clip_norm at about the largest honest delta measured on
                            that topology, so honest uploads are (nearly) never touched:
                            smoke 1 (rank-1 deltas up to 0.86, head deltas up to 1.0),
                            quickstart 2 (rank-1 deltas up to 1.02, heads up to 1.66 in the
                            first rounds)
plus the honest run (no byzantine client, adaptive) as the baseline, with seeds 1..N (--seeds,
default 3). Each run's final accuracy is printed on stderr as it ends; stdout gets one markdown
table of mean +- standard error (sample standard deviation / sqrt(N)) in percent.

usage: tools/byzantine.py [--hafl build/hafl] [--only smoke|quickstart] [--seeds 3]
                          [--share 0.2] [--attack scale|sign-flip|noise] [--scale 10]
                          [--trim 0.25] [--clip-smoke 1] [--clip-quickstart 2]
                          [--set KEY=VALUE]...
--set adds an override to every run (a quick dry run of the quickstart part: --set
server/rounds=1 --set clients/local_steps=2 --set data/test_limit=50).
Exit 0 when every run ended with an accuracy, 1 when one failed, 2 on bad usage. Python 3
standard library only; run folders go to a temporary folder that is removed at the end.
"""

import argparse
import math
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOPOLOGIES = ("smoke", "quickstart")
ACCURACY = re.compile(r"^after round \d+: test accuracy ([0-9.]+)", re.MULTILINE)


def s_configs(args, topology):
    """(label, overrides) of every row, in table order."""
    attacked = [
        "faults/byzantine=%s" % args.share,
        "faults/byzantine_attack=%s" % args.attack,
        "faults/byzantine_scale=%s" % args.scale,
    ]
    clip = args.clip_smoke if topology == "smoke" else args.clip_quickstart
    return [
        ("honest, adaptive", ["server/aggregator=adaptive", "faults/byzantine=0"]),
        ("adaptive", attacked + ["server/aggregator=adaptive"]),
        ("median", attacked + ["server/aggregator=median"]),
        ("trimmed-mean (trim %s)" % args.trim,
         attacked + ["server/aggregator=trimmed-mean", "server/trim=%s" % args.trim]),
        ("adaptive + clip_norm %s" % clip,
         attacked + ["server/aggregator=adaptive", "server/clip_norm=%s" % clip]),
    ]


def s_run(hafl, topology, seed, overrides, run_dir):
    """Final test accuracy of one run, or None with the reason on stderr."""
    command = [hafl, "run", os.path.join(ROOT, "topologies", topology + ".zpl"),
               "--set", "seed=%d" % seed, "--set", "logger/run_dir=%s" % run_dir]
    for o in overrides:
        command += ["--set", o]
    # From the checkout, so that assets beside it (../shared/assets) are found wherever the
    # script is started and whichever build folder the binary is in.
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, cwd=ROOT)
    found = ACCURACY.findall(result.stdout)
    if result.returncode != 0 or not found:
        print("byzantine: %s failed (exit %d): %s" % (" ".join(command), result.returncode,
                                                      result.stderr.strip()[-400:]),
              file=sys.stderr)
        return None
    return float(found[-1])


def s_byzantine_count(hafl, topology, share, extra):
    """How many of the topology's clients a share makes byzantine (hafl_faults.h: nearest,
    halves up), with the client count `hafl check` resolves; None when it cannot say."""
    command = [hafl, "check", os.path.join(ROOT, "topologies", topology + ".zpl")]
    for o in extra:
        command += ["--set", o]
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, cwd=ROOT)
    found = re.search(r"^clients/count = (\d+)$", result.stdout, re.MULTILINE)
    if result.returncode != 0 or not found:
        return None
    n = int(found.group(1))
    return "%d of %d clients" % (min(n, math.floor(float(share) * n * (1 + 1e-6) + 0.5)), n)


def s_mean_se(values):
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, float("nan")
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hafl", default=os.path.join(ROOT, "build", "hafl"))
    parser.add_argument("--only", choices=TOPOLOGIES)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--share", default="0.2")
    parser.add_argument("--attack", default="scale", choices=("scale", "sign-flip", "noise"))
    parser.add_argument("--scale", default="10")
    parser.add_argument("--trim", default="0.25")
    parser.add_argument("--clip-smoke", default="1")
    parser.add_argument("--clip-quickstart", default="2")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="an override added to every run")
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    if not os.access(args.hafl, os.X_OK):
        parser.error("%s is not an executable hafl (build it, or give --hafl)" % args.hafl)
    topologies = [args.only] if args.only else list(TOPOLOGIES)
    table = {}  # (topology, label) -> [accuracy per seed]
    failed = 0
    with tempfile.TemporaryDirectory(prefix="hafl-byzantine-") as run_dir:
        for topology in topologies:
            for label, overrides in s_configs(args, topology):
                for seed in range(1, args.seeds + 1):
                    start = time.time()
                    accuracy = s_run(args.hafl, topology, seed, overrides + args.set, run_dir)
                    if accuracy is None:
                        failed += 1
                        continue
                    table.setdefault((topology, label), []).append(accuracy)
                    print("byzantine: %-10s %-26s seed %d: %.4f (%.0f s)"
                          % (topology, label, seed, accuracy, time.time() - start),
                          file=sys.stderr)
    counts = ", ".join("%s: %s" % (t, s_byzantine_count(args.hafl, t, args.share, args.set))
                       for t in topologies)
    print("Final test accuracy (%%), mean ± SE over seeds 1..%d; a share of %s of the clients "
          "byzantine (%s), attack `%s` x%s."
          % (args.seeds, args.share, counts, args.attack, args.scale))
    print()
    print("| aggregation | " + " | ".join("%s.zpl" % t for t in topologies) + " |")
    print("|---|" + "---|" * len(topologies))
    labels = [label for label, _ in s_configs(args, topologies[0])]
    for row, label in enumerate(labels):
        cells = []
        for topology in topologies:
            key = (topology, s_configs(args, topology)[row][0])
            values = table.get(key, [])
            if not values:
                cells.append("failed")
                continue
            mean, se = s_mean_se(values)
            cells.append("%.1f ± %.1f" % (100 * mean, 100 * se) if len(values) > 1
                         else "%.1f" % (100 * mean))
            if len(values) < args.seeds:
                cells[-1] += " (%d of %d seeds)" % (len(values), args.seeds)
        # The clip row's label names the smoke value; say both when both are shown.
        if label.startswith("adaptive + clip_norm") and len(topologies) == 2:
            label = "adaptive + clip_norm (%s / %s)" % (args.clip_smoke, args.clip_quickstart)
        print("| %s | %s |" % (label, " | ".join(cells)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
