"""Error-notification mail: compose it (`compose`) and send it over SMTP (`send`).

`config` holds where and how to send; this package's `send` and `compose` do the sending.
"""

from mailkeep.notify.compose import ENCODINGS, check_encodable, compose
from mailkeep.notify.send import (
    AuthMech,
    Outgoing,
    Pop3Target,
    PopBeforeSmtp,
    SendError,
    SmtpTarget,
    TlsMode,
    send,
)

__all__ = [
    "ENCODINGS",
    "AuthMech",
    "Outgoing",
    "Pop3Target",
    "PopBeforeSmtp",
    "SendError",
    "SmtpTarget",
    "TlsMode",
    "check_encodable",
    "compose",
    "send",
]
