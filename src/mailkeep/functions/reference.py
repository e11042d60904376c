"""The function reference in docs/, generated from the catalog (`make docs` writes it; a test
fails when the checked-in copy differs)."""

from __future__ import annotations

import json
import sys

from mailkeep.functions.registry import REGISTRY, Function

HEADER = """# Administration API function reference

Generated from the function catalog (`make docs`); do not edit by hand. Every function is
called as `POST /api/invoke/<Name>` with form-encoded arguments, or from the shell as
`mailkeep call <Name> name=value ...`. Types are those get-metadata lists: `string`, `number`,
`bool` (`true`/`false`) and `json`; a list is a comma-separated string. An argument that is not
nullable is required, but for those the original added in later versions: they are
optional, with the behaviour of the versions before them as their default.
"""


def _function(fn: Function) -> str:
    lines = [f"## {fn.name}", "", fn.description, ""]
    flags = [f"console roles: {', '.join(fn.roles)}"]
    if fn.long_running:
        flags.append("long-running (answers with a token; follow it with get-status)")
    if not fn.changes:
        flags.append("read-only")
    lines += ["; ".join(flags), ""]
    if fn.args:
        lines += ["| argument | type | nullable | description |", "| --- | --- | --- | --- |"]
        for a in fn.args:
            desc = a.description + (f" One of: {', '.join(a.choices)}." if a.choices else "")
            if a.default is not None:
                desc += f" Optional (added in a later version of the original); default " \
                        f"{json.dumps(a.default)}."
            kind = a.api_type + (" (list)" if a.kind == "list" else "")
            optional = "yes" if a.nullable or a.default is not None else "no"
            lines.append(f"| `{a.name}` | {kind} | {optional} | {desc} |")
        lines.append("")
    lines += [f"Result: `{fn.result}`", ""]
    return "\n".join(lines)


def render() -> str:
    return HEADER + "\n" + "\n".join(_function(fn) for fn in REGISTRY)


if __name__ == "__main__":
    sys.stdout.write(render())
