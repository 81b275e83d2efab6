"""``ginmi synthetic``: the paper's synthetic study (Section 3) from data generation to figures."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ginmi import plots
from ginmi.config import flatten, option
from ginmi.data.synthetic import GENERATORS, make_synthetic
from ginmi.io import atomic_write_json
from ginmi.logging_utils import LogConfig, MetricsLogger
from ginmi.pipelines.common import (
    VectorModelConfig,
    compute_latents,
    environment,
    make_run_dir,
    train_vector_model,
    write_run_config,
)
from ginmi.selection import SelectionConfig, mi_scores, score_criteria
from ginmi.tasks.identifiability import abs_correlation, matching, mcc
from ginmi.training import TrainConfig

__all__ = ["SyntheticConfig", "run_synthetic"]


@dataclass
class SyntheticConfig:
    """Options of ``ginmi synthetic`` (defaults: the paper's high-noise setting)."""

    n_samples: int = option(10_000, "number of training samples")
    data_dim: int = option(10, "dimension of x (= of the latent (z, eps))")
    n_informative: int = option(2, "number of informative latents z")
    n_components: int = option(5, "number of mixture components (classes u)")
    noise_std: float = option(1.0, "std of the noise latents eps (1 = the paper's high noise, 1e-2 = low)")
    preset: str | None = option(None, "use the paper's Eq. 16 mixture statistics", choices=("paper",))
    generator: str = option("ginmi", "random flow f mapping latents to data (see README)", choices=tuple(GENERATORS))
    out: str | None = option(None, "run folder (default runs/synthetic-<timestamp>)")
    progress: bool = option(True, "show progress bars")
    model: VectorModelConfig = field(default_factory=VectorModelConfig, metadata={"help": "model"})
    train: TrainConfig = field(default_factory=TrainConfig, metadata={"help": "training"})
    selection: SelectionConfig = field(default_factory=SelectionConfig, metadata={"help": "selection"})
    log: LogConfig = field(default_factory=LogConfig, metadata={"help": "experiment logs"})


def run_synthetic(config: SyntheticConfig) -> dict[str, Any]:
    """Generate data, train, score by MI and VAR, select, evaluate, write the run folder."""
    t_start = time.perf_counter()
    seed = config.train.seed
    data = make_synthetic(
        config.n_samples, data_dim=config.data_dim, n_informative=config.n_informative,
        n_components=config.n_components, noise_std=config.noise_std, preset=config.preset,
        generator=config.generator, seed=seed,
    )
    run_dir = make_run_dir(config.out, "synthetic")
    write_run_config(run_dir, "synthetic", config)
    with MetricsLogger(run_dir, config.train, len(data.x), tensorboard=config.log.tensorboard) as log:
        model, history, train_seconds = train_vector_model(
            data.x, data.u, list(range(config.n_components)), config.model, config.train,
            progress=config.progress, **log.callbacks()
        )
    model.save(run_dir / "model.pt")
    w = compute_latents(model, data.x)
    criteria = score_criteria(w, data.u, config.selection, seed=seed)
    corr = abs_correlation(w, data.latent)
    inf_rows, _ = matching(corr, data.informative)
    true_set = set(inf_rows.tolist())
    n_inf = len(data.informative)
    recovery = {
        name: {
            "top_n": sel.order[:n_inf].tolist(),
            "top_n_correct": set(sel.order[:n_inf].tolist()) == true_set,
            "selected_correct": set(sel.selected.tolist()) == true_set,
        }
        for name, sel in criteria.items()
    }
    true_mi = mi_scores(data.latent, data.u, config.selection, seed=seed)
    results: dict[str, Any] = {
        "command": "synthetic",
        "config": flatten(config),
        "criteria": {name: sel.to_dict() for name, sel in criteria.items()},
        "true_informative": data.informative,
        "informative_w_dims": sorted(true_set),
        "recovery": recovery,
        "correlation": corr.tolist(),
        "mcc": {"all": mcc(corr), "informative": mcc(corr, data.informative)},
        "true_latents": {"std": data.latent.std(0).tolist(), "mi": true_mi.tolist()},
        "data": {"max_abs_x": float(np.abs(data.x).max()), "n_samples": len(data.x)},
        "training": {"epoch_loss": history["epoch_loss"], "final_loss": history["epoch_loss"][-1]},
        "timing": {"train_seconds": train_seconds},
        "environment": environment(config.train.device),
    }
    _figures(run_dir, data, w, criteria, true_mi, history)
    results["timing"]["total_seconds"] = time.perf_counter() - t_start
    atomic_write_json(run_dir / "results.json", results)
    results["run_dir"] = str(run_dir)
    return results


def _figures(run_dir: Path, data, w, criteria, true_mi, history) -> None:
    fig_dir = run_dir / "figures"
    k = len(data.informative)
    noise = [d for d in range(data.latent.shape[1]) if d not in data.informative]
    pairs = [(0, 1) if k >= 2 else (0, noise[0]), (0, noise[0]), (noise[0], 1 if k >= 2 else noise[1]),
             (noise[0], noise[1])]
    plots.save(plots.projections(data.latent, data.u, pairs, "latent (z, eps)"), fig_dir / "latent_projections.png")
    plots.save(plots.projections(data.x, data.u, pairs, "data x = f(z, eps)"), fig_dir / "data_projections.png")
    plots.save(
        plots.criteria_figure(w, data.u, criteria["var"].scores, criteria["mi"].scores,
                              true_var=data.latent.std(0), true_mi=true_mi,
                              mi_null=criteria["mi"].extra.get("null_level")),
        fig_dir / "criteria.png",
    )
    plots.save(plots.loss_curve(history["epoch_loss"]), fig_dir / "loss.png")
