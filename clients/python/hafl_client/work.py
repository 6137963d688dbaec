"""What a user's trainer receives for one round (RoundWork) and what it returns (TrainResult).

RoundWork is the ROUND message put in terms of the model: the layout WELCOME gave (matrices,
rank R, scale = alpha / R, head shape), each component's role, the starting factors of every
component in the model (frozen and trainable, with their global importance scores), the merged
terms accumulated so far, the head and the optimiser settings. The adapted weight of matrix m
is then

    W_m = W0_m + sum_j mb_j ma_j^T + scale * sum_{k present} b_k a_k^T

with the merged terms (mb_j, ma_j) already scaled, and a component present when its role is
frozen (used, not trained) or trainable (used and trained). A trainer returns, in a
TrainResult, the trainable components it trained (new b_k, a_k and its local importance score
S_k), the whole head, the mean training loss of its last local epoch and the optimiser steps
it took; check() refuses anything the server would drop, before it is sent.
"""

import math
from array import array
from dataclasses import dataclass
from typing import Dict, Iterable, List, Tuple

from . import errors, protocol, tensors
from .messages import Head, MatrixInfo, Rank1


@dataclass
class RoundWork:
    round: int
    deadline_ms: int     # time the client has from receipt of the ROUND
    local_epochs: int    # used when local_steps is 0
    local_steps: int     # optimiser steps; 0 means use local_epochs
    batch: int
    lr: float
    seed: int            # this client's batch-order seed for this round
    straggle_ms: int     # the fault model's extra delay (the client holds its upload this long)
    fresh_optimizer: bool
    scale: float
    rank: int
    matrices: List[MatrixInfo]
    roles: bytes                              # role of (m, k) at byte m * rank + k
    components: Dict[Tuple[int, int], Rank1]  # every component whose role is not absent
    merged: List[List[Rank1]]                 # per matrix, the merged terms in order
    head: Head

    def role(self, m, k):
        return self.roles[m * self.rank + k]

    def trainable(self):
        """(m, k) of the components to train, in (matrix, k) order."""
        return [(m, k) for m in range(len(self.matrices)) for k in range(self.rank)
                if self.role(m, k) == protocol.ROLE_TRAINABLE]

    def frozen(self):
        return [(m, k) for m in range(len(self.matrices)) for k in range(self.rank)
                if self.role(m, k) == protocol.ROLE_FROZEN]


@dataclass
class TrainResult:
    components: Iterable[Rank1]  # trained components: trainable ones only, each at most once
    head: object                 # a Head, or rows x cols floats in row-major order
    train_loss: float
    steps: int = 0


def check(result, work):
    """The components (list of Rank1 in (matrix, k) order, float32 arrays) and Head of a
    TrainResult, or EncodeError naming what the server would refuse: a component that is not
    trainable this round, given twice, or of the wrong shape; a head of another shape; a
    non-finite value or loss."""
    E = errors.EncodeError
    if not isinstance(result, TrainResult):
        raise E(errors.EFIELDTYPE, "result", f"the trainer returned {type(result).__name__}, "
                "not a TrainResult")
    out = {}
    for i, term in enumerate(result.components):
        path = f"result.component[{i}]"
        if not isinstance(term, Rank1):
            raise E(errors.EFIELDTYPE, path, f"{type(term).__name__} is not a Rank1")
        m, k = term.matrix, term.k
        if not (isinstance(m, int) and isinstance(k, int) and 0 <= m < len(work.matrices)
                and 0 <= k < work.rank):
            raise E(errors.ERANGE, path, f"({m}, {k}) is not a component of the layout")
        if work.role(m, k) != protocol.ROLE_TRAINABLE:
            raise E(errors.ERANGE, path, f"component ({m}, {k}) is not trainable this round")
        if (m, k) in out:
            raise E(errors.ERANGE, path, f"component ({m}, {k}) given twice")
        info = work.matrices[m]
        b = tensors.as_floats(term.b, path + ".b")
        a = tensors.as_floats(term.a, path + ".a")
        if len(b) != info.d_out or len(a) != info.d_in:
            raise E(errors.ELENGTH, path, f"{len(b)} x {len(a)}, matrix {info.name} is "
                    f"{info.d_out} x {info.d_in}")
        score = float(term.score)
        if not math.isfinite(score) or abs(score) > protocol.FLT_MAX:
            raise E(errors.ENONFINITE, path + ".score", f"{score} is not a finite float32")
        out[(m, k)] = Rank1(m, k, score, b, a)
    rows, cols = work.head.rows, work.head.cols
    data = result.head.data if isinstance(result.head, Head) else result.head
    data = tensors.as_floats(data if data is not None else array("f"), "result.head")
    if isinstance(result.head, Head) and (result.head.rows, result.head.cols) != (rows, cols):
        raise E(errors.ELENGTH, "result.head", f"{result.head.rows} x {result.head.cols}, the "
                f"layout's head is {rows} x {cols}")
    if len(data) != rows * cols:
        raise E(errors.ELENGTH, "result.head", f"{len(data)} floats, the layout's head is "
                f"{rows} x {cols}")
    loss = float(result.train_loss)
    if not math.isfinite(loss) or abs(loss) > protocol.FLT_MAX:
        raise E(errors.ENONFINITE, "result.train_loss", f"{loss} is not a finite float32")
    steps = result.steps
    if type(steps) is bool or not isinstance(steps, int) or not 0 <= steps < 2**32:
        raise E(errors.ERANGE, "result.steps", f"{steps!r} is not a uint32")
    return [out[key] for key in sorted(out)], Head(rows, cols, data)
