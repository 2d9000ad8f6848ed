"""The process and its machine, read without importing torch: free memory and thread policy.

Both the file boundary (:mod:`audiostyle.io`, which must stay light) and the run's memory
check (:mod:`audiostyle.pipeline.memory`) ask for the free memory before committing it;
:mod:`audiostyle` sets the thread policy on import, before torch loads.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["THREAD_WAIT_POLICY", "available_cpu_memory", "format_gib", "prefer_sleeping_threads"]

#: OpenMP's wait policy when the environment names none: idle threads sleep, not spin.
THREAD_WAIT_POLICY = "PASSIVE"


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _cgroup_headroom() -> int | None:
    # A container's limit (cgroup v2, then v1) kills the process long before the host's.
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        limit, usage = _read_int(Path(limit_file)), _read_int(Path(usage_file))
        if limit is not None and usage is not None and limit < 2**60:
            return max(limit - usage, 0)
    return None


def _process_status() -> dict[str, int]:
    """``/proc/self/status`` sizes in bytes (``VmSize``, ``VmData``...); empty where absent."""
    sizes = {}
    try:
        with open("/proc/self/status") as status:
            for line in status:
                key, _, value = line.partition(":")
                parts = value.split()
                if len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
                    sizes[key] = int(parts[0]) * 1024
    except OSError:
        return {}
    return sizes


def _rlimit_headroom() -> int | None:
    # A ulimit (RLIMIT_AS, RLIMIT_DATA) makes an allocation fail while the machine has plenty free.
    try:
        import resource
    except ImportError:  # Windows
        return None
    status = None
    headroom = None
    for name, used_key in (("RLIMIT_AS", "VmSize"), ("RLIMIT_DATA", "VmData")):
        limit_id = getattr(resource, name, None)
        if limit_id is None:
            continue
        soft, _ = resource.getrlimit(limit_id)
        if soft == resource.RLIM_INFINITY or soft < 0:
            continue
        status = _process_status() if status is None else status
        if used_key not in status:
            continue
        room = max(soft - status[used_key], 0)
        headroom = room if headroom is None else min(headroom, room)
    return headroom


def available_cpu_memory() -> int | None:
    """Bytes of CPU memory this process can still allocate, or None when the machine does not say.

    ``MemAvailable`` from ``/proc/meminfo`` (Linux), else ``os.sysconf`` free pages; capped
    by a container's cgroup limit and by the process's own ``ulimit -v`` / data limit.

    Returns
    -------
    int or None
        Free bytes; None if none of the sources is readable.
    """
    available = None
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        available = None
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            available = None
    for headroom in (_cgroup_headroom(), _rlimit_headroom()):
        if headroom is not None:
            available = headroom if available is None else min(available, headroom)
    return available


def format_gib(n_bytes: float) -> str:
    """``n_bytes`` in GiB for a message, e.g. ``"23.4 GiB"``."""
    return f"{n_bytes / 2**30:.1f} GiB"


def prefer_sleeping_threads() -> bool:
    """Let torch's idle OpenMP threads sleep instead of spinning, unless the environment chose.

    Sets ``OMP_WAIT_POLICY`` to :data:`THREAD_WAIT_POLICY` when it is unset. Spinning threads
    waiting for work take the cores that the threads doing the work need, which on a machine
    busy with other processes slows a run several times over. OpenMP reads the variable
    once, when torch loads it, so this must run before torch is first imported.

    Returns
    -------
    bool
        True when the policy can still take effect (torch not yet imported).
    """
    os.environ.setdefault("OMP_WAIT_POLICY", THREAD_WAIT_POLICY)
    return "torch" not in sys.modules
