"""Recovery over seeds: run `ginmi synthetic` for several seeds and tabulate, per seed, whether the
MI and VAR criteria's top-n dims are the true informative ones, the MCCs and the time.

    python benchmarks/recovery_seeds.py --seeds 0-9 --out runs/recovery [extra ginmi synthetic options]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def parse_seeds(text: str) -> list[int]:
    if "-" in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(s) for s in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", default="0-9")
    parser.add_argument("--out", default="runs/recovery")
    args, extra = parser.parse_known_args()
    rows = []
    for seed in parse_seeds(args.seeds):
        run = Path(args.out) / f"seed-{seed}"
        subprocess.run([sys.executable, "-m", "ginmi", "synthetic", "--seed", str(seed), "--out", str(run),
                        "--no-progress", *extra], check=True, stdout=subprocess.DEVNULL)
        r = json.loads((run / "results.json").read_text())
        rows.append((seed, r["recovery"]["mi"]["top_n_correct"], r["recovery"]["var"]["top_n_correct"],
                     r["recovery"]["mi"]["selected_correct"], r["mcc"]["informative"], r["mcc"]["all"],
                     r["data"]["max_abs_x"], r["timing"]["total_seconds"]))
        print(f"seed {seed} done", file=sys.stderr, flush=True)
    lines = ["| seed | MI top-n correct | VAR top-n correct | MI selected set correct | MCC informative | MCC all "
             "| max abs x | time (s) |", "|---|---|---|---|---|---|---|---|"]
    for s, mi, var, sel, mi_inf, mi_all, mx, t in rows:
        lines.append(f"| {s} | {mi} | {var} | {sel} | {mi_inf:.3f} | {mi_all:.3f} | {mx:.1f} | {t:.1f} |")
    n = len(rows)
    lines.append(f"| **total** | {sum(r[1] for r in rows)}/{n} | {sum(r[2] for r in rows)}/{n} | "
                 f"{sum(r[3] for r in rows)}/{n} | {sum(r[4] for r in rows) / n:.3f} | "
                 f"{sum(r[5] for r in rows) / n:.3f} | | {sum(r[7] for r in rows) / n:.1f} |")
    table = "\n".join(lines)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "table.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
