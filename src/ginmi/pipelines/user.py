"""``ginmi fit`` and ``ginmi transform``: the pipeline on a user's own data files."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ginmi import plots
from ginmi.config import flatten, option
from ginmi.data.files import load_table
from ginmi.io import atomic_open, atomic_write_json
from ginmi.logging_utils import LogConfig, MetricsLogger
from ginmi.model import load_model
from ginmi.pipelines.common import (
    VectorModelConfig,
    check_features,
    compute_latents,
    encode_labels,
    environment,
    make_run_dir,
    train_vector_model,
    write_run_config,
)
from ginmi.selection import SelectionConfig, score_criteria
from ginmi.training import TrainConfig

__all__ = ["FitConfig", "run_fit", "TransformConfig", "run_transform"]


@dataclass
class FitConfig:
    """Options of ``ginmi fit DATA``."""

    data: str = option("", "the data file: .npz (arrays x, u) or .csv", cli=False)
    label_column: str = option("label", "name of the label column of a CSV file")
    out: str | None = option(None, "run folder (default runs/fit-<timestamp>)")
    progress: bool = option(True, "show progress bars")
    model: VectorModelConfig = field(default_factory=VectorModelConfig, metadata={"help": "model"})
    train: TrainConfig = field(default_factory=TrainConfig, metadata={"help": "training"})
    selection: SelectionConfig = field(default_factory=SelectionConfig, metadata={"help": "selection"})
    log: LogConfig = field(default_factory=LogConfig, metadata={"help": "experiment logs"})


def run_fit(config: FitConfig) -> dict[str, Any]:
    """Train on the user's file, score and select latents, write the run folder."""
    t_start = time.perf_counter()
    table = load_table(config.data, label_column=config.label_column)
    x = check_features(table.x)
    u, classes = encode_labels(table.u, len(x))
    if x.shape[1] < 2:
        raise ValueError(f"the data need at least 2 feature columns for a coupling flow, got {x.shape[1]}")
    run_dir = make_run_dir(config.out, "fit")
    write_run_config(run_dir, "fit", config)
    with MetricsLogger(run_dir, config.train, len(x), tensorboard=config.log.tensorboard) as log:
        model, history, train_seconds = train_vector_model(x, u, classes, config.model, config.train,
                                                            progress=config.progress, **log.callbacks())
    model.save(run_dir / "model.pt")
    w = compute_latents(model, x)
    criteria = score_criteria(w, u, config.selection, seed=config.train.seed)
    results: dict[str, Any] = {
        "command": "fit",
        "config": flatten(config),
        "data": {"path": str(config.data), "n_samples": len(x), "n_features": x.shape[1],
                 "feature_names": table.feature_names, "classes": classes},
        "criteria": {name: sel.to_dict() for name, sel in criteria.items()},
        "training": {"epoch_loss": history["epoch_loss"], "final_loss": history["epoch_loss"][-1]},
        "timing": {"train_seconds": train_seconds},
        "environment": environment(config.train.device),
    }
    fig_dir = run_dir / "figures"
    plots.save(plots.criteria_figure(w, u, criteria["var"].scores, criteria["mi"].scores), fig_dir / "criteria.png")
    plots.save(plots.loss_curve(history["epoch_loss"]), fig_dir / "loss.png")
    results["timing"]["total_seconds"] = time.perf_counter() - t_start
    atomic_write_json(run_dir / "results.json", results)
    results["run_dir"] = str(run_dir)
    return results


@dataclass
class TransformConfig:
    """Options of ``ginmi transform MODEL DATA``."""

    model_path: str = option("", "a model.pt written by ginmi", cli=False)
    data: str = option("", "the data file: .npz (array x) or .csv", cli=False)
    label_column: str = option("label", "name of a label column of a CSV file to ignore")
    criterion: str = option("mi", "whose selected dims to write as w_selected", choices=("mi", "var"))
    out: str = option("latents.npz", "output file (.npz with w, w_selected, selected; or .csv of w)")


def run_transform(config: TransformConfig) -> dict[str, Any]:
    """Write ``w = g(x)`` for new data (and the columns selected in the model's run folder)."""
    model = load_model(config.model_path)
    table = load_table(config.data, label_column=config.label_column, require_labels=False)
    x = check_features(table.x)
    if x.shape[1] != model.dim:
        raise ValueError(
            f"the data have {x.shape[1]} features but the model {config.model_path} expects {model.dim}; "
            "use data with the same columns as the training data"
        )
    w = compute_latents(model, x)
    results_path = Path(config.model_path).parent / "results.json"
    selected = None
    if results_path.is_file():
        selected = np.asarray(json.loads(results_path.read_text())["criteria"][config.criterion]["selected"], dtype=int)
    out = Path(config.out)
    if out.suffix.lower() == ".csv":
        header = ",".join(f"w{i}" for i in range(w.shape[1]))
        with atomic_open(out, "w") as f:
            np.savetxt(f, w, delimiter=",", header=header, comments="")
    else:
        arrays = {"w": w}
        if selected is not None:
            arrays.update(selected=selected, w_selected=w[:, selected])
        with atomic_open(out, "wb") as f:
            np.savez(f, **arrays)
    return {"out": str(out), "n_samples": len(w), "selected": None if selected is None else selected.tolist()}
