"""The synthetic task's base digest and shard sizes (tasks/hafl_synth_task.c, model/kind =
synthetic), computed from the topology's settings alone, so that a Python client can join a
synthetic federation without a captured HELLO. PROTOCOL.md section 5 (HELLO, base_digest)
gives the bytes this hashes; the frozen weights W0 come from the SYNTH stream and the iid
split from the SPLIT stream of rng.py.

Only the iid split is implemented: a dirichlet split needs the teacher's labels of every
training example, that is the whole synthetic data set, and is refused with ValueError.
"""

import hashlib
import math
import struct
from array import array

from .rng import STREAM_SPLIT, STREAM_SYNTH, Rng

_TAG = b"hafl-synthetic-task-v1\0"


def _f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def iid_shards(train_size, clients, seed):
    """The example indices of each client, ascending: a seeded shuffle of 0..n-1 cut into
    consecutive shards, the first n % K one example larger."""
    if clients < 1 or train_size < clients:
        raise ValueError(f"{clients} clients need at least as many training samples "
                         f"(train_size {train_size})")
    order = list(range(train_size))
    Rng(seed, STREAM_SPLIT, 0).shuffle(order)
    base, extra = divmod(train_size, clients)
    shards, pos = [], 0
    for k in range(clients):
        size = base + (1 if k < extra else 0)
        shards.append(sorted(order[pos:pos + size]))
        pos += size
    return shards


def shard_size(train_size, clients, client):
    """n_samples of a client: its shard's size under either split rule's iid case."""
    base, extra = divmod(train_size, clients)
    return base + (1 if client < extra else 0)


def base_digest(seed, dim, classes, rank, alpha, train_size, test_size, clients,
                split="iid"):
    """The 32-byte base digest of a synthetic topology (model/dim, model/classes, model/rank,
    model/alpha, data/train_size, data/test_size, clients/count, data/split, seed)."""
    if split != "iid":
        raise ValueError(f"data/split {split}: only the iid split's digest can be computed "
                         "without the synthetic data set")
    teacher_rank = max(1, rank // 2)
    # alpha / R in float32: the double quotient of two float32 values rounds to the same float32
    # as a float32 division would.
    scale = _f32(_f32(alpha) / rank)
    h = hashlib.sha256()
    h.update(_TAG)
    h.update(struct.pack("<IIII", dim, classes, rank, teacher_rank))
    h.update(struct.pack("<f", scale))
    h.update(struct.pack("<Q", seed))
    rng = Rng(seed, STREAM_SYNTH, 0)
    std = 1.0 / math.sqrt(dim)
    w0 = array("f", (std * rng.normal() for _ in range(dim * dim)))
    h.update(struct.pack(f"<{dim * dim}f", *w0))
    h.update(struct.pack("<III", train_size, test_size, clients))
    h.update(split.encode().ljust(16, b"\0"))
    for shard in iid_shards(train_size, clients, seed):
        h.update(struct.pack(f"<I{len(shard)}I", len(shard), *shard))
    return h.digest()
