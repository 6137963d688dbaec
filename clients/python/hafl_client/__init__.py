"""hafl_client: a client of the hafl federation protocol in Python, written from
messages/PROTOCOL.md. Client joins a federation and trains with a user-supplied function
(RoundWork in, TrainResult out); codec encodes and decodes every message of the protocol
strictly; synthetic computes the base digest of a synthetic topology.
"""

from . import codec, errors, protocol, synthetic
from .client import Client, Outcome
from .errors import DecodeError, EncodeError
from .messages import (Control, ControlReply, EvalRequest, EvalResult, Head, Heartbeat, Hello,
                       LogEvent, MatrixInfo, Rank1, Reject, Round, Update, Welcome)
from .work import RoundWork, TrainResult

__all__ = [
    "Client", "Outcome", "RoundWork", "TrainResult", "codec", "errors", "protocol", "synthetic",
    "DecodeError", "EncodeError", "Control", "ControlReply", "EvalRequest", "EvalResult", "Head",
    "Heartbeat", "Hello", "LogEvent", "MatrixInfo", "Rank1", "Reject", "Round", "Update",
    "Welcome",
]
