"""mailkeep: a self-hosted email archive server."""

__version__ = "0.1.0"
