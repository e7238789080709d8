"""The versions we declare are the versions we say and test.

README's "Supported versions" table gives the same minimums as pyproject.toml; the floor
session of ``noxfile.py`` (``make test-matrix``) runs on the declared minimum Python and
fails when a user-facing dependency does not resolve to exactly its declared minimum.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
USER_EXTRAS = [name for name in PROJECT["optional-dependencies"] if name != "dev"]


def minimum(specifier: str) -> Version:
    (floor,) = [Version(s.version) for s in SpecifierSet(specifier) if s.operator == ">="]
    return floor


def declared() -> dict[str, tuple[Version, str]]:
    """``name -> (minimum, extra)`` for Python, the core and every user extra."""
    out = {"python": (minimum(PROJECT["requires-python"]), "")}
    for extra in ["", *USER_EXTRAS]:
        lines = PROJECT["optional-dependencies"][extra] if extra else PROJECT["dependencies"]
        for req in map(Requirement, lines):
            out.setdefault(req.name.lower(), (minimum(str(req.specifier)), extra))
    return out


def readme_table() -> dict[str, tuple[Version, str]]:
    """The rows of README's "Supported versions" table: ``name -> (minimum, extra)``."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Supported versions", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] in ("Package", "---"):
            continue
        names = re.findall(r"`([^`]+)`", cells[0]) or [n.strip() for n in cells[0].split(",")]
        for name in names:
            rows[name.lower()] = (Version(cells[1]), cells[2].strip("`"))
    return rows


def test_the_readme_table_gives_the_declared_minimums() -> None:
    table, want = readme_table(), declared()
    assert table, "README.md has no Supported versions table"
    for name, row in table.items():
        assert name in want, f"README lists {name}, which pyproject.toml does not declare"
        assert row == want[name], f"{name}: README says {row}, pyproject.toml {want[name]}"
    core = {name for name, (_v, extra) in want.items() if not extra}
    must = core | ({"dask", "distributed"} & want.keys())
    assert must <= table.keys(), f"README's table lacks {sorted(must - table.keys())}"


@functools.cache  # nox keeps one registry of sessions: load the file once
def _noxfile() -> ModuleType:
    spec = importlib.util.spec_from_file_location("noxfile_under_test", ROOT / "noxfile.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_noxfile() -> ModuleType:
    pytest.importorskip("nox")
    return _noxfile()


def test_the_floor_session_runs_the_minimum_python() -> None:
    noxfile = load_noxfile()
    assert Version(noxfile.FLOOR_PYTHON) == minimum(PROJECT["requires-python"])


def test_the_floor_check_fails_when_a_minimum_cannot_be_reached(tmp_path: Path) -> None:
    noxfile = load_noxfile()
    pins = {name: str(v) for name, (v, _extra) in declared().items() if name != "python"}
    path = tmp_path / "floor.txt"
    path.write_text("".join(f"{n}=={v}\n" for n, v in pins.items()), encoding="utf-8")
    noxfile.check_floors(path)  # every declared minimum resolved: passes
    pins["pandas"] = "2.0.3"
    path.write_text("".join(f"{n}=={v}\n" for n, v in pins.items()), encoding="utf-8")
    with pytest.raises(SystemExit, match=r"pandas: declared >=2\.0, lowest installable 2\.0\.3"):
        noxfile.check_floors(path)
