"""The function catalog. Importing this package registers the built-in functions."""

from . import folders, maintenance, server, status, stores, users  # noqa: F401  (registration)
from .registry import REGISTRY, Arg, Function, function, parse_args

__all__ = ["REGISTRY", "Arg", "Function", "function", "parse_args"]
