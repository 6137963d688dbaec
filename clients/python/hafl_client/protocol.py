"""The constants of the hafl wire protocol (messages/PROTOCOL.md): versions, message types,
REJECT reasons, component roles and the limits of section 6.

Everything here is copied from the specification, not computed, so that a reader can check
each value against PROTOCOL.md line by line.
"""

MAJOR = 2
MINOR = 1

# Message types (PROTOCOL.md section 5).
HELLO = 1
WELCOME = 2
REJECT = 3
ROUND = 4
UPDATE = 5
EVAL_REQUEST = 6
EVAL_RESULT = 7
LOG_EVENT = 8
CONTROL = 9
CONTROL_REPLY = 10
HEARTBEAT = 11

TYPE_NAMES = {
    HELLO: "HELLO", WELCOME: "WELCOME", REJECT: "REJECT", ROUND: "ROUND", UPDATE: "UPDATE",
    EVAL_REQUEST: "EVAL_REQUEST", EVAL_RESULT: "EVAL_RESULT", LOG_EVENT: "LOG_EVENT",
    CONTROL: "CONTROL", CONTROL_REPLY: "CONTROL_REPLY", HEARTBEAT: "HEARTBEAT",
}

# REJECT reasons; the last one each minor defines bounds what a peer of that minor may send.
REJECT_VERSION = 1
REJECT_BASE_DIGEST = 2
REJECT_INDEX = 3
REJECT_RANK = 4
REJECT_FULL = 5
REJECT_AUTH = 6
REJECT_SESSION = 7
REJECT_REPLACED = 8
REJECT_LAST = {0: REJECT_AUTH, 1: REJECT_REPLACED}

REJECT_NAMES = {
    REJECT_VERSION: "VERSION", REJECT_BASE_DIGEST: "BASE_DIGEST", REJECT_INDEX: "INDEX",
    REJECT_RANK: "RANK", REJECT_FULL: "FULL", REJECT_AUTH: "AUTH", REJECT_SESSION: "SESSION",
    REJECT_REPLACED: "REPLACED",
}

# ROUND roles, one byte per (matrix, k) at m * R + k.
ROLE_ABSENT = 0
ROLE_FROZEN = 1
ROLE_TRAINABLE = 2

# The evaluator's place, and the index the server puts in its own HEARTBEATs.
EVALUATOR_INDEX = 2**32 - 2
SERVER_INDEX = 2**32 - 1

SESSION_BYTES = 32
DIGEST_BYTES = 32

# Limits (PROTOCOL.md section 6).
MAX_BYTES = 2**30
MAX_HEADER = 2**22
MAX_DIM = 65536
MAX_RANK = 256
MAX_MATRICES = 4096
MAX_COMPONENTS = 262144
MAX_HEAD = 2**22
MAX_NAME = 64
MAX_TEXT = 1024
MAX_JSON = 2**20
MAX_FIELDS = 64
MAX_ARGS = 16
MAX_PAD = 7
MAX_DEPTH = 32

# The reference encoder's fixed layouts (section 4): bytes around the float payloads.
RANK1_OVERHEAD = 32
HEAD_OVERHEAD = 16

FLT_MAX = 3.4028234663852886e38
FLT_MIN = 1.1754943508222875e-38


def frame_cap(matrices, head_rows, head_cols):
    """The largest frame a hafl actor accepts for this layout (its ZMQ_MAXMSGSIZE): the header
    cap, the largest rank-1 frame or the head frame, whichever is largest, plus 4096 bytes.
    matrices is a list of (name, d_out, d_in)."""
    cap = MAX_HEADER
    for _, d_out, d_in in matrices:
        cap = max(cap, RANK1_OVERHEAD + 4 * (d_out + d_in))
    cap = max(cap, HEAD_OVERHEAD + 4 * head_rows * head_cols)
    return cap + 4096


# The largest legitimate frame under any layout: a head of MAX_HEAD floats, plus the margin.
FRAME_CAP_ANY_LAYOUT = HEAD_OVERHEAD + 4 * MAX_HEAD + 4096
