"""Who may read the cache: transcripts of calls are personal data.

A cache directory this library creates is private to the user (0700), and so
are its subdirectories (0700) and files (0600). A directory that already
exists keeps its mode: a directory others may write to (group or other write
bit, e.g. a team's 2775 directory) is shared on purpose, so what is created in
it gets the usual modes (0777 / 0666 less the umask) and teammates can read
it. The per-user default directory is the library's own: it is made 0700
again if it is not. (On Windows, modes are left to the system.)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

__all__ = ["PRIVATE_DIR", "PRIVATE_FILE", "create_file", "dir_mode", "make_root"]

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
_SHARED_FILE = 0o666  # less the umask
_SHARED_BITS = 0o022  # group or other may write: a shared directory


def make_root(root: Path, *, own: bool = False) -> int:
    """Create the cache directory if it is missing (0700); the mode for new files.

    Args:
        root: The cache directory.
        own: It is the per-user default directory: made 0700 if it is not.

    Returns:
        :data:`PRIVATE_FILE`, or 0o666 (less the umask) in a shared directory.
    """
    root.parent.mkdir(parents=True, exist_ok=True)
    root.mkdir(mode=PRIVATE_DIR, exist_ok=True)
    if os.name != "posix":
        return PRIVATE_FILE
    mode = root.stat().st_mode & 0o7777
    if own and mode & 0o077:
        os.chmod(root, PRIVATE_DIR)
        return PRIVATE_FILE
    return _SHARED_FILE if mode & _SHARED_BITS else PRIVATE_FILE


def dir_mode(file_mode: int) -> int:
    """The mode for a new subdirectory of a cache whose files get ``file_mode``."""
    return PRIVATE_DIR if file_mode == PRIVATE_FILE else 0o777


def create_file(path: Path, file_mode: int) -> BinaryIO:
    """Create ``path`` (it must not exist) for writing, with ``file_mode`` from the start."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    return os.fdopen(os.open(path, flags, file_mode), "wb")
