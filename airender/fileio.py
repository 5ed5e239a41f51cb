"""Atomic file writing: write to a temporary file in the same folder, then rename over the target.

A reader never sees a half-written file, and an interrupted write leaves the old file in place. A write
that fails for lack of space (or any destination problem) raises :class:`OutputError` naming the path;
the temporary file is removed and the old file is kept.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from airender.errors import OutputError

FULL_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
NEARLY_FULL_BYTES = 1 << 20  # less free space than this after a failed write: the disk was full


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    The temporary name keeps the final suffix so that writers choosing a format by suffix work.
    """
    path = Path(path)
    make_dir(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp" + path.suffix)
    except OSError as exc:
        raise _output_error(path, exc) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp_path, path)
    except (OSError, RuntimeError, ValueError) as exc:
        # Writers report a full disk in their own words (torch.save: "unexpected pos ..."): name it.
        if isinstance(exc, OSError) or _nearly_full(path.parent):
            raise _output_error(path, exc) from None
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def make_dir(folder: str | os.PathLike) -> Path:
    """``mkdir -p`` that names the problem (a parent that is a file, no permission, a full disk)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _output_error(folder, exc) from None
    return folder


def _nearly_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < NEARLY_FULL_BYTES
    except OSError:
        return False


def _output_error(path: Path, exc: BaseException) -> OutputError:
    code = getattr(exc, "errno", None)
    if code in FULL_DISK_ERRNOS or (not isinstance(exc, OSError) and _nearly_full(path.parent)):
        return OutputError(f"{path}: no space left on the device")
    if code == errno.EACCES or code == errno.EPERM or code == errno.EROFS:
        return OutputError(f"{path}: not writable (permission denied)")
    if code in (errno.ENOTDIR, errno.EEXIST):
        return OutputError(f"{path}: cannot be created: a parent is a regular file")
    reason = getattr(exc, "strerror", None) or (str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    return OutputError(f"{path}: cannot be written ({reason})")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def append_line_durable(path: str | os.PathLike, line: str) -> None:
    """Append one line and flush it to the disk (a log line survives a kill that follows it)."""
    try:
        with open(path, "a") as f:
            f.write(line.rstrip("\n") + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise _output_error(Path(path), exc) from None
