"""The layers of docs/architecture.md, checked: every import of a mailkeep module points to a
package the importing package may use. A new import that runs the wrong way fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import mailkeep

ROOT = Path(mailkeep.__file__).parent

# Package -> the packages it may import (itself always). Listed bottom up.
ALLOWED: dict[str, set[str]] = {
    "core.errors": set(),
    "core.files": set(),
    "core.message": set(),
    "core.fields": {"core.errors"},
    "core.crypto": {"core.errors", "core.files"},
    "core.keys": {"core.errors", "core.crypto"},
    "core.mime": {"core.errors"},
    "core.tls": {"core.errors"},
    "core.backends": set(),
    "core.pgconn": {"core.errors"},
    "core.objects": {"core.errors"},
    "core.masterdb": {"core.errors", "core.files", "core.backends", "core.pgconn"},
    "core.storage": {"core.errors", "core.files", "core.crypto", "core.keys", "core.mime",
                     "core.backends", "core.pgconn", "core.objects"},
    # the configuration documents: files of conf/, or rows of the master database
    "core.confdocs": {"core.backends", "core.files", "core.pgconn", "core.masterdb"},
    "core.admin": {"core.errors", "core.fields", "core.files", "core.crypto", "core.keys",
                   "core.masterdb", "core.tls", "core.backends", "core.confdocs"},
    "core": {"core.errors", "core.files", "core.message", "core.fields", "core.crypto",
             "core.keys", "core.mime", "core.tls", "core.backends", "core.pgconn", "core.objects",
             "core.masterdb", "core.storage", "core.admin", "core.confdocs"},
    "sources": {"core.errors", "core.message", "core.tls"},
    "jobs": {"core"},
    "notify": {"core"},
    "profiles": {"core", "sources", "jobs"},
    "receive": {"core"},
    # the one error table: other layers' classes by name, so that it imports only core.errors
    "error_table": {"core.errors"},
    "functions": {"core", "sources", "jobs", "notify", "profiles", "receive", "error_table"},
    "web": {"core", "jobs", "notify", "profiles", "receive", "functions", "error_table"},
    "cli": {"core", "sources", "jobs", "notify", "profiles", "receive", "functions", "web",
            "client", "error_table"},
    "client": set(),
}
CORE_LEAVES = {"errors", "files", "message", "fields", "crypto", "keys", "tls", "backends",
               "pgconn", "objects", "confdocs"}


def package(module: str) -> str:
    """The layer a module belongs to: core's sub-packages and leaf modules are layers of
    their own; the other core modules are `core`; elsewhere the top package."""
    parts = module.split(".")[1:]  # without "mailkeep"
    if not parts:
        return "mailkeep"
    if parts[0] == "core" and len(parts) > 1:
        if parts[1] in CORE_LEAVES or (ROOT / "core" / parts[1]).is_dir():
            return f"core.{parts[1]}"
        return "core"
    return parts[0]


def may_import(importer: str, imported: str) -> bool:
    if importer == imported or imported == "mailkeep":
        return True
    allowed = ALLOWED[importer]
    # "core" allows every core layer below the core root modules.
    return imported in allowed or (imported.startswith("core.") and "core" in allowed)


def imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mailkeep"):
            names = [node.module]
            # `from mailkeep.core import errors` names a module, not an attribute
            names += [f"{node.module}.{a.name}" for a in node.names
                      if (ROOT.parent / (node.module + "." + a.name).replace(".", "/")
                          ).with_suffix(".py").exists()
                      or (ROOT.parent / (node.module + "." + a.name).replace(".", "/")).is_dir()]
            found += [(node.lineno, n) for n in names[-1:] if len(names) > 1] or [
                (node.lineno, node.module)]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("mailkeep")]
    return found


def test_every_package_has_a_layer() -> None:
    tops = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    tops |= {p.stem for p in ROOT.glob("*.py") if p.stem not in ("__init__", "__main__")}
    assert tops - {"core"} <= set(ALLOWED), tops - set(ALLOWED)


def test_imports_point_down() -> None:
    wrong: list[str] = []
    for path in sorted(ROOT.rglob("*.py")):
        module = "mailkeep." + ".".join(path.relative_to(ROOT).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        importer = package(module)
        if importer in ("mailkeep", "__main__") or module.endswith("__main__"):
            continue
        for line, name in imports(path):
            imported = package(name)
            if not may_import(importer, imported):
                wrong.append(f"{path.relative_to(ROOT.parent)}:{line}: {importer} imports "
                             f"{name} ({imported})")
    assert not wrong, "\n".join(wrong)


def test_sql_lives_in_the_two_repositories() -> None:
    """SQL text (written in capitals here) appears only in core/masterdb (the master
    database) and the store catalog."""
    keywords = ("SELECT ", "INSERT INTO", "UPDATE ", "DELETE FROM", "CREATE TABLE")
    owners = {ROOT / "core" / "masterdb", ROOT / "core" / "storage"}
    catalog_files = {"catalog.py", "catalog_search.py", "catalog_pg.py", "catalog_rows.py"}
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        if path.parent in owners and (path.parent.name == "masterdb"
                                      or path.name in catalog_files):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and any(
                    node.value.lstrip().startswith(k) for k in keywords):
                wrong.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}")
    assert not wrong, wrong
