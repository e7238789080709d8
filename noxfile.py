"""The support matrix (``make test-matrix``): the versions pyproject.toml declares are tested.

Sessions:

* ``floor``: Python 3.10 with every dependency a user installs (the core and every
  extra but ``dev``) at its declared minimum. ``uv pip compile --resolution
  lowest-direct`` resolves them from pyproject.toml, binary wheels only; the session
  fails if a minimum cannot be reached (raise it in pyproject.toml). Test tools
  (``dev``) are the newest that fit those pins.
* ``newest``: Python 3.13 with the newest release of everything.
* ``bare``: the package without any extra (``pip install cf-transcribe-pandas``):
  ``tests/test_extras.py`` checks that optional parts say what to install.

Each session prints one line with the interpreter and the key package versions, then
runs pytest. The default interpreter with the dev venv is ``make test``. A session
whose interpreter is missing is skipped (nox names it in its summary). The sessions may
run side by side (``nox -j 2``, as ``make test-matrix`` does): the suite mostly waits.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nox
from packaging.requirements import Requirement
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - nox runs on the dev venv's Python (3.11+ in CI)
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
# Extras a user installs; ``dev`` holds the test and lint tools.
USER_EXTRAS = sorted(name for name in PYPROJECT["optional-dependencies"] if name != "dev")
# The floor runs on the oldest Python that requires-python allows (">=3.10" -> "3.10").
FLOOR_PYTHON = PYPROJECT["requires-python"].removeprefix(">=").strip()
NEWEST_PYTHON = "3.13"
KEY_PACKAGES = ["pandas", "pyarrow", "numpy", "av", "aiohttp", "tqdm", "dask", "fsspec"]

nox.options.default_venv_backend = "uv"
nox.options.download_python = "never"  # only interpreters the machine has (PATH, pyenv)
nox.options.error_on_missing_interpreters = False  # skipped, and named in the summary
nox.options.sessions = ["floor", "newest", "bare"]

_VERSIONS = (
    "import importlib.metadata as m, platform; "
    f"names = {KEY_PACKAGES!r}; "
    "found = [f'{n} {m.version(n)}' for n in names if any(m.distributions(name=n))]; "
    "print('versions: Python', platform.python_version(), *found, sep=' ')"
)


def find_python(version: str) -> str:
    """A working ``python<version>`` on PATH or in pyenv's versions, else ``version``.

    pyenv's shims answer only for the active version, so its other installed
    versions are looked up directly. When nothing is found nox skips the session
    and says which interpreter it missed.
    """
    name = f"python{version}"
    candidates = [shutil.which(name)]
    pyenv = shutil.which("pyenv")
    if pyenv:
        root = subprocess.run([pyenv, "root"], capture_output=True, text=True, check=False)
        versions = Path(root.stdout.strip() or "/nonexistent", "versions")
        candidates += sorted(str(p) for p in versions.glob(f"{version}.*/bin/{name}"))[::-1]
    for exe in filter(None, candidates):
        if subprocess.run([exe, "-c", ""], capture_output=True, check=False).returncode == 0:
            return exe
    return version


def user_requirements() -> list[Requirement]:
    """The core dependencies and those of every user extra, as declared."""
    lines = list(PYPROJECT["dependencies"])
    for extra in USER_EXTRAS:
        lines += PYPROJECT["optional-dependencies"][extra]
    return [Requirement(line) for line in lines]


def declared_minimum(req: Requirement) -> Version:
    """The ``>=`` bound of ``req``; every user-facing dependency must declare one."""
    floors = [Version(spec.version) for spec in req.specifier if spec.operator == ">="]
    if not floors:
        raise SystemExit(f"pyproject.toml: {req} declares no minimum (add >=)")
    return max(floors)


def check_floors(pins_file: Path) -> None:
    """Fail unless each declared minimum is the version the floor resolved."""
    pins: dict[str, Version] = {}
    for line in pins_file.read_text(encoding="utf-8").splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, _, version = line.split(";")[0].strip().partition("==")
            pins[name.lower().replace("_", "-")] = Version(version)
    moved = []
    for req in user_requirements():
        name = req.name.lower().replace("_", "-")
        want = declared_minimum(req)
        if pins.get(name) != want:
            moved.append(f"{req.name}: declared >={want}, lowest installable {pins.get(name)}")
    if moved:
        raise SystemExit(
            "the floor is not the declared minimum (raise it in pyproject.toml):\n  "
            + "\n  ".join(moved)
        )


@nox.session(python=find_python(FLOOR_PYTHON), allow_parallel=True)
def floor(session: nox.Session) -> None:
    """The oldest Python, every user-facing dependency at its declared minimum, wheels only."""
    pins = Path(session.create_tmp()) / "floor.txt"
    extras = [arg for extra in USER_EXTRAS for arg in ("--extra", extra)]
    session.run_install(
        "uv", "pip", "compile", "pyproject.toml", *extras,
        "--resolution", "lowest-direct", "--only-binary", ":all:",
        "--python-version", FLOOR_PYTHON, "--no-header", "--quiet", "-o", str(pins),
        external=True,
    )  # fmt: skip
    check_floors(pins)
    session.install("--only-binary", ":all:", "-r", str(pins))
    # The package itself (built from this checkout) and the test tools, under the pins.
    session.install("--only-binary", ":all:", "-c", str(pins), "-e", ".[dev]")
    _pytest(session)


@nox.session(python=find_python(NEWEST_PYTHON), allow_parallel=True)
def newest(session: nox.Session) -> None:
    """The newest Python with the newest release of every dependency and extra."""
    extras = ",".join([*USER_EXTRAS, "dev"])
    session.install("--upgrade", "--resolution", "highest", "-e", f".[{extras}]")
    _pytest(session)


@nox.session(allow_parallel=True)
def bare(session: nox.Session) -> None:
    """The package without extras, as ``pip install cf-transcribe-pandas`` installs it."""
    session.install(".", "pytest", "pytest-asyncio", "pytest-timeout")
    session.env["CF_TRANSCRIBE_NO_EXTRAS"] = "1"
    _pytest(session, "tests/test_extras.py", "-rs", module="pytest")


def _pytest(session: nox.Session, *paths: str, module: str = "python -m pytest") -> None:
    """Print the versions line, then run pytest (``pytest`` alone imports the installed
    package rather than the checkout)."""
    session.run("python", "-c", _VERSIONS)
    session.run(*module.split(), "-q", "-p", "no:cacheprovider", *paths, *session.posargs)
