"""The house rules ruff cannot check: sizes of modules and classes, and private names.

    python tools/check_layout.py [PACKAGE_DIR]

* no module over MAX_MODULE_LINES lines;
* no class over MAX_CLASS_LINES lines;
* modules use each other's public names only: no ``from x import _name`` from
  another module of the package, and no ``module._name`` on a package module
  imported under a name, and no ``obj._name`` where this module defines no
  ``_name`` (another module's private attribute); dunder names such as
  ``__version__`` are public, and ``sys._getframe``-style names of the
  standard library are allowed by ALLOWED.

Function complexity is ruff's rule C901 (``max-complexity`` in pyproject.toml).
Prints one line per breach and exits 1 if there is any.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

MAX_MODULE_LINES = 400
MAX_CLASS_LINES = 250
ALLOWED = frozenset(
    {"_exit", "_getframe", "_asdict", "_replace", "_fields", "_make", "_meta", "_SubParsersAction"}
)
"""Private-looking names that are public API: os._exit, sys._getframe, namedtuple
methods, dask collections' ``_meta`` (the documented empty frame of a collection)
and argparse._SubParsersAction (the type of ``add_subparsers()``, for annotations)."""


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _absolute(node: ast.ImportFrom, here: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = here.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _breaches(path: Path, root: Path, modules: set[str]) -> Iterator[str]:
    source = path.read_text(encoding="utf-8")
    lines = len(source.splitlines())
    if lines > MAX_MODULE_LINES:
        yield f"{path}: module of {lines} lines (most: {MAX_MODULE_LINES})"
    tree = ast.parse(source, filename=str(path))
    yield from _big_classes(path, tree)
    aliases: set[str] = set()  # local names bound to modules of the package
    yield from _private_imports(path, root, tree, modules, aliases)
    yield from _private_attributes(path, tree, aliases)


def _big_classes(path: Path, tree: ast.Module) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            size = (node.end_lineno or node.lineno) - node.lineno + 1
            if size > MAX_CLASS_LINES:
                most = MAX_CLASS_LINES
                yield f"{path}:{node.lineno}: class {node.name} of {size} lines (most: {most})"


def _private_imports(
    path: Path, root: Path, tree: ast.Module, modules: set[str], aliases: set[str]
) -> Iterator[str]:
    """``from x import _name`` across modules; fills ``aliases`` with imported modules."""
    here = _module_name(path, root)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source_module = _absolute(node, here, path.name == "__init__.py")
            if source_module.split(".")[0] != root.name or source_module == here:
                continue
            for alias in node.names:
                if f"{source_module}.{alias.name}" in modules:
                    aliases.add(alias.asname or alias.name)
                elif _private(alias.name):
                    yield f"{path}:{node.lineno}: imports private {source_module}.{alias.name}"
        elif isinstance(node, ast.Import):
            aliases.update(a.asname for a in node.names if a.name in modules and a.asname)


def _private_attributes(path: Path, tree: ast.Module, aliases: set[str]) -> Iterator[str]:
    """``module._name`` on an imported package module, or another module's ``obj._name``."""
    own = _defined_here(tree)
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and _private(node.attr)):
            continue
        if isinstance(node.value, ast.Name) and node.value.id in aliases:
            yield f"{path}:{node.lineno}: uses private {node.value.id}.{node.attr}"
        elif node.attr not in own and node.attr not in ALLOWED:
            yield f"{path}:{node.lineno}: uses another module's private attribute .{node.attr}"


def _defined_here(tree: ast.Module) -> set[str]:
    """Names this module defines: functions, classes, assigned names and attributes."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return names


def main(argv: list[str]) -> int:
    root = Path(argv[0] if argv else "cf_transcribe_pandas").resolve()
    files = sorted(root.rglob("*.py"))
    modules = {_module_name(f, root) for f in files}
    found = [line for f in files for line in _breaches(f, root, modules)]
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
