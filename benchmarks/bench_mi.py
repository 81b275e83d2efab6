"""Benchmark ginmi.mi.mutual_information against sklearn's mutual_info_classif.

Usage::

    python benchmarks/bench_mi.py            # 40,000 x 784, 10 classes (+ scaling)
    python benchmarks/bench_mi.py --quick    # 4,000 x 64

Prints markdown tables: sizes, wall-clock seconds for sklearn (n_jobs=2) and
ours in the same run, the ratio and the largest absolute deviation; then CPU
seconds (less sensitive to other load on the machine: ours over all threads,
sklearn's single-process cost measured on a subset of columns and scaled to
all of them); then the scaling of ours in n_samples (seconds / (n log2 n)
should stay roughly constant).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
from sklearn.feature_selection import mutual_info_classif

from ginmi import mi as mimod


def make_data(n: int, p: int, n_classes: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    u = rng.integers(0, n_classes, n)
    informative = np.arange(p) % 7 == 0
    w = rng.standard_normal((n, p)) + 0.3 * u[:, None] * informative
    return w, u


def timed(fn, *args, **kwargs):
    """(wall seconds, CPU seconds of this process, result)."""
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, time.process_time() - c0, out


def sklearn_mi(w, u, n_jobs):
    return mutual_info_classif(w, u, discrete_features=False, n_neighbors=3, random_state=0, n_jobs=n_jobs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small size, seconds")
    args = ap.parse_args()
    n, p = (4_000, 64) if args.quick else (40_000, 784)
    sizes = [500, 1_000, 2_000, 4_000] if args.quick else [5_000, 10_000, 20_000, 40_000]
    subset = 16

    print(
        f"# {platform.machine()}, {len(os.sched_getaffinity(0))} cores, "
        f"load average at start {os.getloadavg()[0]:.1f}; backend: {mimod._BACKEND}"
    )
    w, u = make_data(n, p)
    warm = timed(mimod.mutual_information, w[:300, :2], u[:300], random_state=0)[0]
    print(f"# first call (numba cache load or compile): {warm:.2f} s")
    wall, cpu, ours = timed(mimod.mutual_information, w, u, random_state=0)
    sk_wall, _, ref = timed(sklearn_mi, w, u, 2)
    sub = timed(sklearn_mi, w[:, :subset], u, 1)[1] * p / subset
    print(f"# load average at end {os.getloadavg()[0]:.1f}")
    print()
    print(
        "| n_samples | n_features | classes | sklearn n_jobs=2 wall (s) | ginmi wall (s) "
        "| speed-up | sklearn CPU (s) | ginmi CPU (s) | CPU ratio | max abs deviation |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {n:,} | {p} | 10 | {sk_wall:.1f} | {wall:.2f} | {sk_wall / wall:.0f}x "
        f"| {sub:.0f} | {cpu:.2f} | {sub / cpu:.0f}x | {np.abs(ours - ref).max():.1e} |"
    )
    print()
    print("| n_samples | n_features | ginmi wall (s) | ginmi CPU (s) | CPU s / (n log2 n) x 1e9 |")
    print("|---:|---:|---:|---:|---:|")
    for m in sizes:
        wm, um = make_data(m, p)
        runs = [timed(mimod.mutual_information, wm, um, random_state=0)[:2] for _ in range(2)]
        t, c = min(r[0] for r in runs), min(r[1] for r in runs)
        print(f"| {m:,} | {p} | {t:.3f} | {c:.3f} | {c / (m * np.log2(m)) * 1e9:.1f} |")


if __name__ == "__main__":
    main()
