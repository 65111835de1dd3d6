"""Files a run writes: atomic writes (a reader never sees a half-written file, a failure
leaves the old one) and per-process scratch dirs that the next run removes if their
process died before it could."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` through a temp file beside it and a rename: a reader sees the
    old file or the new one, and a failure (a full disk) leaves no temp file behind. An
    OSError that names no file (a failed write names none) is given ``path``, so that the
    error tells the user where."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.filename is None:
            e.filename = str(path)
        raise


def _owner_prefix(pid: int) -> str:
    # the host too: a cache dir on a shared file system may hold other machines' scratch
    return f"cimco-{pid}-{socket.gethostname()}-"


@contextlib.contextmanager
def scratch_dir(root: str | Path | None = None) -> Iterator[Path]:
    """A new dir ``root/cimco-<pid>-<host>-<random>`` (root: the system temp dir), removed
    on exit. If the process is killed first, :func:`remove_stale_scratch` removes it."""
    if root is not None:
        Path(root).mkdir(parents=True, exist_ok=True)
    d = Path(tempfile.mkdtemp(prefix=_owner_prefix(os.getpid()), dir=root)).absolute()
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    try:  # a killed worker not yet reaped by its new parent is a zombie: dead
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def remove_stale_scratch(root: str | Path) -> list[Path]:
    """Remove this host's scratch dirs under ``root`` whose process is gone; return them."""
    root = Path(root)
    if not root.is_dir():
        return []
    removed = []
    for d in root.iterdir():
        pid = d.name.split("-")[1] if d.name.startswith("cimco-") and d.name.count("-") >= 3 else ""
        if pid.isdigit() and d.name.startswith(_owner_prefix(int(pid))) and not _alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed
