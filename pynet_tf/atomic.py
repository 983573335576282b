"""Writes that never leave a half-written file behind: write beside the target, then rename onto it.

A rename within one folder is atomic on POSIX: a reader (or a crash) sees the old file or the new one,
never a torn one. Models, checkpoints' companions, configs, calibration sets and reports all go through here,
and every command checks its output location here (``check_output``) before it starts working.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class OutputError(ValueError):
    """An output location this process cannot write; the message names the flag, the path and the fix."""


def check_output(path: str | os.PathLike, flag: str = "--out", *, folder: bool = True) -> Path:
    """``path`` if this process can write it, else ``OutputError``: checked before the work starts, so a
    file in the way or a read-only folder costs a second, not the minutes of work before the first write.

    ``folder``: ``path`` is a folder to create or fill (a file there is in the way); otherwise a file to
    write (a folder there is in the way). Writability is probed by creating and removing a temporary file
    in the folder, or in its nearest existing parent when it is yet to be made (permissions alone do not
    say it: a read-only mount, an ACL, root).
    """
    path = Path(path).expanduser()
    if folder and path.exists() and not path.is_dir():
        raise OutputError(f"{flag} {path}: a file is in the way; give a folder (it is created if needed)")
    if not folder and path.is_dir():
        raise OutputError(f"{flag} {path}: is a folder; give the path of the file to write")
    existing = path if folder and path.is_dir() else path.parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(
            f"{flag} {path}: {existing} is a file, so no folder can be made there; give another path"
        )
    try:
        handle, probe = tempfile.mkstemp(prefix=".write_probe.", dir=existing)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise OutputError(
            f"{flag} {path}: cannot write in {existing} ({reason}); give a writable location"
        ) from None
    os.close(handle)
    os.unlink(probe)
    return path


@contextmanager
def atomic_path(path: str | os.PathLike, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds, move it onto ``path``.

    For a ``directory``, an existing one is moved aside first and deleted after the swap (two renames: a
    crash between them leaves the old copy under a ``.old`` name, never a partial new one at ``path``).
    On an exception the temporary path is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    if directory:  # mkdtemp makes it private (0700); the folder that replaces ``path`` gets the usual mode
        umask = os.umask(0)
        os.umask(umask)
        temporary.chmod(0o777 & ~umask)
    target = temporary if directory else temporary / path.name
    try:
        yield target
        if directory:
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            if path.exists():
                os.replace(path, old)
            os.replace(temporary, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(target, path)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike, value: Any) -> Path:
    return write_text(path, json.dumps(value, indent=2, sort_keys=False, default=str) + "\n")


def write_with(path: str | os.PathLike, writer: Callable[[Path], None], *, directory: bool = False) -> Path:
    """Let ``writer`` fill a temporary path (e.g. ``model.save``), then move it onto ``path``."""
    with atomic_path(path, directory=directory) as temporary:
        writer(temporary)
    return Path(path)


def point_link(link: str | os.PathLike, target: str) -> Path:
    """Make ``link`` a symlink to ``target`` (relative to the link's folder), replacing any old link atomically."""
    link = Path(link)
    temporary = link.with_name(f".{link.name}.link.tmp")
    temporary.unlink(missing_ok=True)
    os.symlink(target, temporary)
    os.replace(temporary, link)
    return link
