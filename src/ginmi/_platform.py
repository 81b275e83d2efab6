"""What the running platform offers, asked in one place (no third-party imports, so any module may use it)."""

from __future__ import annotations

import os

__all__ = ["MissingDependencyError", "usable_cores"]


class MissingDependencyError(ImportError):
    """An optional package that the requested feature needs is not installed; the message says how to
    install it (the command line prints it as one line, unlike an ``ImportError`` of a broken install)."""


def usable_cores() -> int:
    """Number of CPU cores this process may run on (at least 1).

    The affinity mask where the platform has one (Linux: ``os.sched_getaffinity``, which honours
    ``taskset`` and container CPU sets); elsewhere (macOS, Windows) ``os.process_cpu_count()``
    (Python >= 3.13) or ``os.cpu_count()``.

    Example:
    >>> usable_cores() >= 1
    True
    """
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    count = getattr(os, "process_cpu_count", os.cpu_count)()
    return max(1, count or 1)
