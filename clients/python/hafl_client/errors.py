"""Why a message was refused: one error code of PROTOCOL.md section 7, the dotted path of the
field (`update.component[3].a`, `header.major`) and a one-line text with the values involved.

The decoder raises DecodeError for the first violation it meets, in the order the bytes
arrive, as the reference decoder does; the encoder raises EncodeError for a message that no
conforming peer would accept, so nothing malformed ever leaves this library.
"""

ENOFRAMES = "ENOFRAMES"
ETRUNCATED = "ETRUNCATED"
ETRAILING = "ETRAILING"
EVERSION = "EVERSION"
EUNKNOWN = "EUNKNOWN"
EFIELDTYPE = "EFIELDTYPE"
ERANGE = "ERANGE"
ECAP = "ECAP"
ELENGTH = "ELENGTH"
ENONFINITE = "ENONFINITE"
EARITY = "EARITY"
ENOMEM = "ENOMEM"
ESTRING = "ESTRING"

CODES = (ENOFRAMES, ETRUNCATED, ETRAILING, EVERSION, EUNKNOWN, EFIELDTYPE, ERANGE, ECAP,
         ELENGTH, ENONFINITE, EARITY, ENOMEM, ESTRING)


class ProtocolError(Exception):
    """A violation of the specification: code, field path and text."""

    def __init__(self, code, field, text):
        super().__init__(f"{code}: {field}: {text}")
        self.code = code
        self.field = field
        self.text = text


class DecodeError(ProtocolError):
    """A received message that must be counted, logged and dropped. For EVERSION, `type` is
    the header's message type when it could be read (a HELLO of another major is answered
    REJECT VERSION by a server), else None."""

    def __init__(self, code, field, text, type=None):
        super().__init__(code, field, text)
        self.type = type


class EncodeError(ProtocolError):
    """A message this library refuses to send because a peer would refuse it."""
