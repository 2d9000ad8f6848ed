"""The studio's private folder: made with its owner's pid, measured, and swept when orphaned.

Each studio keeps its files in one ``audiostyle-studio-*`` folder (mode 0700) in the temp
folder, removed when it stops. A studio killed outright (SIGKILL, a power cut) cannot remove
it, so every studio that starts removes the folders of studios that are gone: folders of this
user whose ``owner.pid`` names no running process.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path

__all__ = ["PREFIX", "make_workdir", "sweep_orphans", "stored_bytes"]

PREFIX = "audiostyle-studio-"
OWNER_FILE = "owner.pid"
#: A folder without an owner file (made by an older studio, or one starting this instant) is
#: left alone until it is this old.
UNOWNED_GRACE = 24 * 3600.0

logger = logging.getLogger("audiostyle.studio")


def make_workdir(parent: str | os.PathLike | None = None) -> Path:
    """A new private folder under ``parent`` (default: the temp folder) holding our pid."""
    root = Path(tempfile.mkdtemp(prefix=PREFIX, dir=parent))  # mode 0700
    (root / OWNER_FILE).write_text(f"{os.getpid()}\n", encoding="ascii")
    return root


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def _orphaned(folder: Path, now: float) -> bool:
    """True when ``folder`` is ours and its studio is gone."""
    try:
        info = os.lstat(folder)
    except OSError:
        return False
    # Never follow a link or touch another user's folder, whatever its name.
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        return False
    try:
        text = (folder / OWNER_FILE).read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return now - info.st_mtime > UNOWNED_GRACE
    except (OSError, UnicodeDecodeError):
        return False
    if not text.isdigit():
        return False
    pid = int(text)
    return pid != os.getpid() and not _process_exists(pid)


def sweep_orphans(parent: str | os.PathLike | None = None) -> list[Path]:
    """Remove the studio folders under ``parent`` whose studio is no longer running.

    Returns the folders removed.
    """
    base = Path(parent if parent is not None else tempfile.gettempdir())
    now = time.time()
    removed = []
    try:
        candidates = [p for p in base.iterdir() if p.name.startswith(PREFIX)]
    except OSError:
        return removed
    for folder in candidates:
        if _orphaned(folder, now):
            shutil.rmtree(folder, ignore_errors=True)
            logger.info("removed %s, left behind by a studio that is gone", folder)
            removed.append(folder)
    return removed


def stored_bytes(root: Path) -> int:
    """Bytes of the regular files under ``root`` (links are not followed)."""
    total = 0
    stack = [root]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
            except OSError:
                continue
    return total
