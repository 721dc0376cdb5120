"""Private files (keys, secrets, credentials): 0600 in 0700 directories, written atomically, no symlinks.

A secret is first written to a fresh temporary name opened with O_CREAT|O_EXCL|O_NOFOLLOW, so a
file or symlink an attacker planted is never opened, then linked (create once) or renamed (replace)
into place, so a reader never sees half a key and a crash leaves either the old file or the new one.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def private_directory(path: str | os.PathLike) -> Path:
    """Creates `path` (and parents) if needed and makes it 0700; refuses a symlink or a non-directory."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise NotADirectoryError(f"{path} is not a directory (a symlink?); refusing to keep secrets in it")
    if stat.S_IMODE(info.st_mode) != PRIVATE_DIR:
        os.chmod(path, PRIVATE_DIR)
    return path


def write_secret(path: str | os.PathLike, data: bytes, *, replace: bool = False) -> None:
    """Writes `data` to `path` with mode 0600. Without `replace`, fails (FileExistsError) if anything,
    a dangling symlink included, is already at `path`; with it, swaps the new file in by rename,
    which replaces a symlink rather than writing through it."""
    path = Path(path)
    folder = private_directory(path.parent)
    temporary = folder / f".{path.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE_FILE)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(temporary, path)
        else:
            os.link(temporary, path, follow_symlinks=False)
    finally:
        if os.path.lexists(temporary):
            os.unlink(temporary)
    _sync_directory(folder)


def read_or_create_secret(path: str | os.PathLike, create: Callable[[], bytes]) -> bytes:
    """The secret at `path`; on first use, `create()` is written there once (the first writer wins)."""
    if not os.path.lexists(path):
        try:
            write_secret(path, create())
        except FileExistsError:
            pass  # another process created it first: use theirs
    return read_secret(path)


def read_or_create_token(path: str | os.PathLike) -> str:
    """A random URL-safe text secret (a password) at `path`, created on first use."""
    return read_or_create_secret(path, lambda: secrets.token_urlsafe(32).encode()).decode().strip()


def read_secret(path: str | os.PathLike) -> bytes:
    """Reads a private file, refusing to follow a symlink at `path`."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def _sync_directory(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
