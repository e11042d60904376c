"""The function catalog. Importing this package registers the built-in functions."""

from mailkeep.functions import (  # noqa: F401  (registration)
    audit,
    compliance,
    databases,
    directory,
    folders,
    heads,
    jobs,
    keys,
    maintenance,
    mfa,
    notification,
    profiles,
    reading,
    retention,
    server,
    settings,
    status,
    stores,
    uploads,
    users,
)
from mailkeep.functions.registry import REGISTRY, Function, function, parse_args

__all__ = ["REGISTRY", "Function", "function", "parse_args"]
