"""How many CPU threads a command computes with: the one home of `--threads`, for torch, ONNX Runtime and the
photo-decoding pools.

The default is what this process may really use, not the host's core count: the CPUs it may run on (affinity),
capped by its container's CPU quota (cgroup v2 cpu.max, or v1 cfs_quota_us), less the CPUs other processes keep
busy (the 1-minute load average, when no quota reserves our share). On a 2-core machine with one core taken by
another job, torch at 2 threads answered a photo 6x slower than at 1: intra-op threads wait for each other, and one
of them waits for a core that is busy. `$OMP_NUM_THREADS`, when set, is the user's own choice and wins.

Imports nothing heavy: `landmark serve` on ONNX files never loads torch.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
_chosen: int | None = None  # set by use(): the count every later call of count() returns


def affinity_cpus() -> int:
    """The CPUs the scheduler lets this process run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def quota_cpus(root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> float | None:
    """The container's CPU quota in CPUs (e.g. 1.5), or None when there is none (cgroup v2 `max`, v1 quota -1)."""
    candidates = []
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:  # "0::/path" (v2) or "N:cpu,cpuacct:/path" (v1): the process's own group first
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "":
            candidates.append(("v2", root / path.lstrip("/")))
        elif "cpu" in controllers.split(","):
            candidates.extend(("v1", root / name / path.lstrip("/")) for name in (controllers, "cpu", "cpu,cpuacct"))
    candidates += [("v2", root), ("v1", root / "cpu"), ("v1", root / "cpu,cpuacct")]
    for version, folder in candidates:
        try:
            if version == "v2":
                quota, period = (folder / "cpu.max").read_text().split()[:2]
            else:
                quota = (folder / "cpu.cfs_quota_us").read_text().strip()
                period = (folder / "cpu.cfs_period_us").read_text().strip()
        except (OSError, ValueError):
            continue
        if quota in ("max", "-1"):
            return None
        try:
            return int(quota) / int(period)
        except (ValueError, ZeroDivisionError):
            return None
    return None


def busy_elsewhere(cpus: int) -> float:
    """How many of our CPUS other processes keep busy: the host's 1-minute load average, scaled to our share of it."""
    try:
        load = os.getloadavg()[0]
    except (OSError, AttributeError):
        return 0.0
    host = os.cpu_count() or cpus
    return min(load, host) * cpus / host


def default_count() -> int:
    """$OMP_NUM_THREADS if set, else the CPUs this process may use (affinity, quota) less those busy elsewhere."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) >= 1:
        return int(env)
    cpus = affinity_cpus()
    quota = quota_cpus()
    if quota is not None:  # a quota is our reserved share: the host's load says nothing about it
        return max(1, min(cpus, math.floor(quota)))
    return max(1, cpus - round(busy_elsewhere(cpus)))


def count() -> int:
    """The thread count of this command: what use() set, else default_count()."""
    return _chosen if _chosen is not None else default_count()


def use(threads: int | None) -> int:
    """Compute with THREADS (None: the default) from now on: torch's intra-op threads (now if torch is loaded, else
    when it loads, through $OMP_NUM_THREADS), ONNX Runtime sessions and decoding pools made later; returns it."""
    global _chosen
    _chosen = threads or default_count()
    os.environ["OMP_NUM_THREADS"] = str(_chosen)  # torch, numpy's BLAS and worker processes started later
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(_chosen)
    return _chosen


def per_request(concurrent_requests: int) -> int:
    """A server's threads split between its concurrent requests: oversubscribed intra-op threads slow every one."""
    return max(1, count() // max(1, concurrent_requests))
