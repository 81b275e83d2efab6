"""Benchmark ginmi.mi.mutual_information against sklearn's mutual_info_classif.

Usage::

    python benchmarks/bench_mi.py            # 40,000 x 784, 10 classes (+ scaling)
    python benchmarks/bench_mi.py --quick    # 4,000 x 64

Prints a markdown table: sizes, seconds for sklearn (n_jobs=2) and ours, the
ratio and the largest absolute deviation, then the scaling of ours in
n_samples (time / (n log n) should stay roughly constant).
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
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small size, seconds")
    args = ap.parse_args()
    n, p = (4_000, 64) if args.quick else (40_000, 784)
    scaling = [500, 1_000, 2_000, 4_000] if args.quick else [5_000, 10_000, 20_000, 40_000]

    print(f"# machine: {platform.processor() or platform.machine()}, "
          f"{len(os.sched_getaffinity(0))} cores, load average "
          f"{os.getloadavg()[0]:.2f}; backend: {mimod._BACKEND}")
    w, u = make_data(n, p)
    warm, _ = timed(mimod.mutual_information, w[:300, :2], u[:300], random_state=0)
    print(f"# first call (numba load/compile + warm-up): {warm:.2f} s")
    t_ours, ours = timed(mimod.mutual_information, w, u, n_neighbors=3, random_state=0)
    t_sk, ref = timed(
        mutual_info_classif, w, u, discrete_features=False, n_neighbors=3,
        random_state=0, n_jobs=2,
    )
    print()
    print("| n_samples | n_features | classes | sklearn n_jobs=2 (s) | ginmi (s) | speed-up | max abs deviation |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {n:,} | {p} | 10 | {t_sk:.2f} | {t_ours:.2f} | {t_sk / t_ours:.1f}x "
          f"| {np.abs(ours - ref).max():.1e} |")
    print()
    print("| n_samples | n_features | ginmi (s) | s / (n log2 n) x 1e9 |")
    print("|---:|---:|---:|---:|")
    for m in scaling:
        wm, um = make_data(m, p)
        t = min(timed(mimod.mutual_information, wm, um, random_state=0)[0] for _ in range(2))
        print(f"| {m:,} | {p} | {t:.3f} | {t / (m * np.log2(m)) * 1e9:.2f} |")


if __name__ == "__main__":
    main()
