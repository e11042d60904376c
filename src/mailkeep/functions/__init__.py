"""The function catalog. Importing this package registers the built-in functions."""

from . import folders, server, status, stores, users  # noqa: F401  (registration on import)
from .registry import REGISTRY, Arg, Function, function, parse_args

__all__ = ["REGISTRY", "Arg", "Function", "function", "parse_args"]
