"""The messages of the hafl protocol as plain Python objects, one class per type of
PROTOCOL.md section 5, with the field names and order of its tables.

Tensors (rank-1 factors, heads) are array('f'); digests and sessions are bytes. A decoded
message also carries `minor`, the sender's minor version. The codec (codec.py) turns these
objects into frames and back; nothing here checks ranges, the codec does, both ways.
"""

from array import array
from dataclasses import dataclass, field
from typing import List, Optional, Tuple, Union

from . import protocol


@dataclass
class Rank1:
    """One rank-1 term b a^T of adapted matrix `matrix`: a component (k < R) or a merged term
    (k informational). b has d_out floats, a has d_in."""
    matrix: int
    k: int
    score: float
    b: array
    a: array


@dataclass
class Head:
    """The classification head, row-major [rows][cols]; 0 x 0 means none in this message."""
    rows: int = 0
    cols: int = 0
    data: array = field(default_factory=lambda: array("f"))


@dataclass
class MatrixInfo:
    name: str
    d_out: int
    d_in: int


@dataclass
class Hello:
    TYPE = protocol.HELLO
    client_index: int
    name: str
    rank_budget: int
    n_samples: int
    base_digest: bytes
    rejoin: bool = False
    session: bytes = b""
    minor: int = protocol.MINOR


@dataclass
class Welcome:
    TYPE = protocol.WELCOME
    client_index: int
    run_id: str
    heartbeat_ms: int
    rank: int
    scale: float
    head_rows: int
    head_cols: int
    matrices: List[MatrixInfo]
    session: Optional[bytes] = None  # None from a 2.0 server
    minor: int = protocol.MINOR


@dataclass
class Reject:
    TYPE = protocol.REJECT
    reason: int
    text: str
    minor: int = protocol.MINOR


@dataclass
class Round:
    TYPE = protocol.ROUND
    round: int
    deadline_ms: int
    local_epochs: int
    local_steps: int
    batch: int
    lr: float
    seed: int
    straggle_ms: int
    fresh_optimizer: bool
    n_matrices: int
    rank: int
    roles: bytes
    reset_merged: bool
    components: List[Rank1] = field(default_factory=list)
    merged: List[Rank1] = field(default_factory=list)
    head: Head = field(default_factory=Head)
    minor: int = protocol.MINOR


@dataclass
class Update:
    TYPE = protocol.UPDATE
    round: int
    client_index: int
    n_samples: int
    train_loss: float
    steps: int
    wall_ms: int
    components: List[Rank1] = field(default_factory=list)
    head: Head = field(default_factory=Head)
    minor: int = protocol.MINOR


@dataclass
class EvalRequest:
    TYPE = protocol.EVAL_REQUEST
    round: int
    tag: int
    components: List[Rank1] = field(default_factory=list)
    merged: List[Rank1] = field(default_factory=list)
    head: Head = field(default_factory=Head)
    minor: int = protocol.MINOR


@dataclass
class EvalResult:
    TYPE = protocol.EVAL_RESULT
    round: int
    tag: int
    accuracy: float
    loss: float
    n_examples: int
    wall_ms: int
    minor: int = protocol.MINOR


FieldValue = Union[bool, int, float, str]


@dataclass
class LogEvent:
    TYPE = protocol.LOG_EVENT
    time_us: int
    run_id: str
    round: int
    actor: str
    event: str
    fields: List[Tuple[str, FieldValue]] = field(default_factory=list)
    minor: int = protocol.MINOR


@dataclass
class Control:
    TYPE = protocol.CONTROL
    command: str
    argv: List[str] = field(default_factory=list)
    minor: int = protocol.MINOR


@dataclass
class ControlReply:
    TYPE = protocol.CONTROL_REPLY
    ok: bool
    json: str
    minor: int = protocol.MINOR


@dataclass
class Heartbeat:
    TYPE = protocol.HEARTBEAT
    client_index: int
    seq: int
    time_us: int
    minor: int = protocol.MINOR


CLASSES = {cls.TYPE: cls for cls in (Hello, Welcome, Reject, Round, Update, EvalRequest,
                                      EvalResult, LogEvent, Control, ControlReply, Heartbeat)}
