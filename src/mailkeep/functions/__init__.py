"""The function catalog. Importing this package registers the built-in functions."""

from . import server, stores, users  # noqa: F401  (registration happens on import)
from .registry import REGISTRY, Arg, Function, function, parse_args

__all__ = ["REGISTRY", "Arg", "Function", "function", "parse_args"]
