"""The function catalog. Importing this package registers the built-in functions."""

from . import (  # noqa: F401  (registration)
    folders,
    jobs,
    maintenance,
    notification,
    profiles,
    server,
    status,
    stores,
    users,
)
from .registry import REGISTRY, Arg, Function, function, parse_args

__all__ = ["REGISTRY", "Arg", "Function", "function", "parse_args"]
