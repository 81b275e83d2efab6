"""Recovery over seeds, beside the baselines: run `ginmi synthetic` for several seeds and tabulate, per
seed, whether the MI / VAR / VAR(std) top-n dims are the true informative ones, whether the MI selected
set is exactly right, the MCCs of the trained flow and of the baselines (raw x, the untrained model,
FastICA), max |x| and the time.

    python benchmarks/recovery_seeds.py --seeds 0-9 --out runs/recovery [extra ginmi synthetic options]
    python benchmarks/recovery_seeds.py --seeds 0-4 --mixing 0,1,2,4,6 --out runs/mixing   # recovery vs mixing

With ``--mixing`` it runs every seed at every strength of the default generator and also writes the
curve (``recovery_vs_mixing.png``) and a summary table per strength.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

BASELINES = ("raw_x", "untrained", "fastica")


def parse_seeds(text: str) -> list[int]:
    if "-" in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(s) for s in text.split(",")]


def run_one(seed: int, out: Path, extra: list[str]) -> dict:
    if not (out / "results.json").is_file():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "ginmi",
                "synthetic",
                "--seed",
                str(seed),
                "--out",
                str(out),
                "--no-progress",
                "--no-report",
                "--overwrite",
                *extra,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    r = json.loads((out / "results.json").read_text())
    return {
        "seed": seed,
        "mi": r["recovery"]["mi"]["top_n_correct"],
        "var": r["recovery"]["var"]["top_n_correct"],
        "var_std": r["recovery"]["var_std"]["top_n_correct"],
        "set": r["recovery"]["mi"]["selected_correct"],
        "mcc_inf": r["mcc"]["informative"],
        "mcc_all": r["mcc"]["all"],
        **{f"{b}_inf": r["baselines"][b]["mcc"]["informative"] for b in BASELINES},
        **{f"{b}_mi": r["baselines"][b]["top_n_correct"]["mi"] for b in BASELINES},
        "max_abs_x": r["data"]["max_abs_x"],
        "seconds": r["timing"]["total_seconds"],
    }


def seed_table(rows: list[dict]) -> str:
    lines = [
        "| seed | MI top-n | VAR top-n | VAR(std) top-n | MI set exact | MCC inf | MCC all | raw x MCC inf "
        "| untrained MCC inf | FastICA MCC inf | raw x MI top-n | max abs x | time (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    yn = {True: "yes", False: "no"}
    for r in rows:
        lines.append(
            f"| {r['seed']} | {yn[r['mi']]} | {yn[r['var']]} | {yn[r['var_std']]} | {yn[r['set']]} "
            f"| {r['mcc_inf']:.3f} | {r['mcc_all']:.3f} | {r['raw_x_inf']:.3f} | {r['untrained_inf']:.3f} "
            f"| {r['fastica_inf']:.3f} | {yn[r['raw_x_mi']]} | {r['max_abs_x']:.1f} | {r['seconds']:.1f} |"
        )
    n = len(rows)
    count = lambda k: f"{sum(r[k] for r in rows)}/{n}"  # noqa: E731
    mean = lambda k: f"{np.mean([r[k] for r in rows]):.3f}"  # noqa: E731
    lines.append(
        f"| **total / mean** | {count('mi')} | {count('var')} | {count('var_std')} | {count('set')} "
        f"| {mean('mcc_inf')} | {mean('mcc_all')} | {mean('raw_x_inf')} | {mean('untrained_inf')} "
        f"| {mean('fastica_inf')} | {count('raw_x_mi')} | | {np.mean([r['seconds'] for r in rows]):.1f} |"
    )
    return "\n".join(lines)


def mixing_table(by_mixing: dict[float, list[dict]]) -> str:
    lines = [
        "| mixing | raw x MCC inf | FastICA MCC inf | untrained MCC inf | trained MCC inf (min-max) | "
        "trained MCC all | MI top-n right | MI set exact |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m, rows in by_mixing.items():
        inf = [r["mcc_inf"] for r in rows]
        lines.append(
            f"| {m:g} | {np.mean([r['raw_x_inf'] for r in rows]):.3f} "
            f"| {np.mean([r['fastica_inf'] for r in rows]):.3f} "
            f"| {np.mean([r['untrained_inf'] for r in rows]):.3f} "
            f"| {np.mean(inf):.3f} ({min(inf):.3f}-{max(inf):.3f}) "
            f"| {np.mean([r['mcc_all'] for r in rows]):.3f} | {sum(r['mi'] for r in rows)}/{len(rows)} "
            f"| {sum(r['set'] for r in rows)}/{len(rows)} |"
        )
    return "\n".join(lines)


def mixing_figure(by_mixing: dict[float, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = list(by_mixing)
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for key, label, style in (
        ("mcc_inf", "trained GIN", "o-"),
        ("raw_x_inf", "raw x", "s--"),
        ("untrained_inf", "untrained model", "^:"),
        ("fastica_inf", "FastICA", "d--"),
    ):
        values = np.array([[r[key] for r in by_mixing[m]] for m in xs])
        ax.plot(xs, values.mean(1), style, label=label)
        if key == "mcc_inf":
            ax.fill_between(xs, values.min(1), values.max(1), alpha=0.2)
    ax.set_xlabel("mixing strength (bound of the coupling shifts)")
    ax.set_ylabel("MCC, informative latents (test set)")
    ax.set_title("recovery vs mixing (mean over seeds, band: min-max)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", default="0-9")
    parser.add_argument("--out", default="runs/recovery")
    parser.add_argument("--mixing", default=None, help="comma-separated strengths: recovery vs mixing")
    args, extra = parser.parse_known_args()
    out = Path(args.out)
    seeds = parse_seeds(args.seeds)
    if args.mixing is None:
        rows = []
        for seed in seeds:
            rows.append(run_one(seed, out / f"seed-{seed}", extra))
            print(f"seed {seed} done", file=sys.stderr, flush=True)
        text = seed_table(rows)
    else:
        by_mixing: dict[float, list[dict]] = {}
        for m in [float(v) for v in args.mixing.split(",")]:
            by_mixing[m] = [
                run_one(seed, out / f"mixing-{m:g}" / f"seed-{seed}", [*extra, "--mixing", str(m)]) for seed in seeds
            ]
            print(f"mixing {m:g} done", file=sys.stderr, flush=True)
        text = mixing_table(by_mixing)
        mixing_figure(by_mixing, out / "recovery_vs_mixing.png")
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
