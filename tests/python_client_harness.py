"""Shared pieces of the Python client tests (tests/python_client.cmake): finding the client
library and the hafl binary, a block of free tcp ports, `hafl node` processes of the test
topology (tests/topologies/python-client.zpl), CURVE certificates from `hafl keygen`, reading a
run's events, and failing.

Every test exits 0 when it passes, 1 when it fails (after printing every failure) and 77
(ctest's skip) when python3-zmq or python3-msgpack is missing.
"""

import importlib
import json
import os
import random
import socket
import subprocess
import sys
import time

SOURCE = os.environ.get("HAFL_SOURCE_DIR")
HAFL = os.environ.get("HAFL_BINARY")
if not SOURCE or not HAFL:
    print("run through ctest (HAFL_SOURCE_DIR and HAFL_BINARY are not set)")
    sys.exit(2)
sys.path.insert(0, os.path.join(SOURCE, "clients", "python"))
try:
    for module in ("zmq", "msgpack"):
        importlib.import_module(module)
except ImportError as exc:
    print(f"SKIP: {exc} (install the Debian packages python3-zmq and python3-msgpack)")
    sys.exit(77)

TOPOLOGY = os.path.join(SOURCE, "tests", "topologies", "python-client.zpl")
# The topology's values that the base digest and shard sizes depend on.
SEED, DIM, CLASSES, RANK, ALPHA = 5, 32, 4, 8, 16
TRAIN, TEST, CLIENTS = 1024, 256, 4
RANKS = [2, 4, 8, 8]
PYTHON_INDEX = 3


class Failures:
    """Collects failed checks so a test reports all of them, then exits 1 if there were any."""

    def __init__(self, name):
        self.name = name
        self.failed = []

    def check(self, ok, what):
        if ok:
            print(f"ok: {what}")
        else:
            print(f"FAIL: {what}")
            self.failed.append(what)
        return ok

    def finish(self):
        if self.failed:
            print(f"{self.name}: {len(self.failed)} check(s) failed")
            sys.exit(1)
        print(f"{self.name}: every check passed")
        sys.exit(0)


def free_base_port():
    """The first of four consecutive tcp ports free on every interface, in 4000 .. 19999: below
    the kernel's ephemeral range (where outgoing connections take their ports) and the range the
    other bus tests draw from (20000 and up), so that parallel tests do not collide."""
    rng = random.Random(os.getpid() ^ time.time_ns())
    for _ in range(200):
        base = rng.randrange(1000, 5000) * 4
        held = []
        try:
            for port in range(base, base + 4):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                held.append(s)
                s.bind(("0.0.0.0", port))
            return base
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise RuntimeError("no block of four free tcp ports in 4000 .. 19999")


class Node:
    """One `hafl node TOPOLOGY --host NAME` process with its output in files under work."""

    def __init__(self, host, base, work, sets=()):
        os.makedirs(work, exist_ok=True)
        self.host = host
        self.out_path = os.path.join(work, f"{host}.out")
        self.err_path = os.path.join(work, f"{host}.err")
        args = [HAFL, "node", TOPOLOGY, "--host", host,
                "--set", f"placement/base_port={base}",
                "--set", f"logger/run_dir={os.path.join(work, 'runs')}"]
        for s in sets:
            args += ["--set", s]
        self.proc = subprocess.Popen(args, stdout=open(self.out_path, "w"),
                                     stderr=open(self.err_path, "w"))

    def wait(self, timeout):
        """The exit status, or None (and the process killed) when it outlives timeout."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def output(self):
        with open(self.out_path) as f:
            out = f.read()
        with open(self.err_path) as f:
            return out + f.read()

    def digest(self):
        for line in self.output().splitlines():
            if line.startswith("final adapter sha256 "):
                return line.split()[-1]
        return None

    def run_folder(self):
        for line in self.output().splitlines():
            if line.startswith("run folder "):
                return line[len("run folder "):]
        return None


def events(run_folder):
    """Every event of a run folder's events.jsonl, as dicts."""
    with open(os.path.join(run_folder, "events.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def raw_lines(run_folder):
    with open(os.path.join(run_folder, "events.jsonl")) as f:
        return f.read().splitlines()


def base_digest(clients=CLIENTS):
    """The test topology's base digest, with clients/count = clients."""
    from hafl_client import synthetic
    return synthetic.base_digest(SEED, DIM, CLASSES, RANK, ALPHA, TRAIN, TEST, clients)


def shard_size(index, clients=CLIENTS):
    from hafl_client import synthetic
    return synthetic.shard_size(TRAIN, clients, index)


def keygen(directory, clients):
    """`hafl keygen DIRECTORY --clients N`: DIRECTORY/server.cert(_secret), the allow-list
    DIRECTORY/clients/client-K.cert (bound to index K) and evaluator.cert, and the secret
    certificates DIRECTORY/client-K.cert_secret and evaluator.cert_secret. Returns the --set
    lines of the security section it prints (one certificate per client, {index})."""
    os.makedirs(os.path.dirname(os.path.abspath(directory)), exist_ok=True)
    out = subprocess.run([HAFL, "keygen", directory, "--clients", str(clients)],
                         capture_output=True, text=True, check=True).stdout
    sets, section = [], None
    for line in out.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            section = line.strip()
        elif section == "security" and "=" in line:
            key, value = (part.strip() for part in line.split("=", 1))
            value = value.strip('"')
            sets.append(f"security/{key}={value}")
    return sets


def read_cert(path):
    """A zcert (ZPL) certificate's Z85 keys as bytes: {"public": ..., "secret": ... or None,
    "meta": {...}}. Strict: the `curve` section's public key must be there, every key 40
    characters, and a secret key must derive the public one."""
    import zmq
    keys, meta, section = {}, {}, None
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if not line[0].isspace():
                section = line.strip()
                continue
            key, sep, value = line.strip().partition("=")
            value = value.strip()
            if not sep or len(value) < 2 or value[0] != '"' or value[-1] != '"':
                raise ValueError(f"{path}:{number}: not `name = \"value\"`: {line!r}")
            (keys if section == "curve" else meta)[key.strip()] = value[1:-1]
    public, secret = keys.get("public-key"), keys.get("secret-key")
    if public is None or len(public) != 40 or (secret is not None and len(secret) != 40):
        raise ValueError(f"{path}: no 40-character Z85 public key (or a bad secret key)")
    if secret is not None and zmq.curve_public(secret.encode()) != public.encode():
        raise ValueError(f"{path}: the secret key does not derive the public key")
    return {"public": public.encode(), "secret": secret and secret.encode(), "meta": meta}
