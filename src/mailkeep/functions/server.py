"""Server functions: what a monitoring sensor asks first."""

from __future__ import annotations

import socket
from typing import Any

from mailkeep import __version__
from mailkeep.functions.call import Call
from mailkeep.functions.registry import function


@function("GetServerInfo", "Version and machine name of the server.",
          '{"version": str, "machineName": str}', changes=False)
def get_server_info(call: Call) -> dict[str, Any]:
    return {"version": __version__, "machineName": socket.gethostname()}
