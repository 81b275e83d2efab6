"""GIN models for vector data: the architecture options, input and label checks, building a model
with everything fixed before training set from the data (class prior, standardisation, linear
stage), training one or several, and the latents ``w = g(x)``.

These are the stages the commands and the scikit-learn estimators share.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ginmi import distributed
from ginmi.config import option
from ginmi.model import STATS, GINModel
from ginmi.training import (
    SmallDataWarning,
    TrainConfig,
    fit_linear_stage,
    fit_standardization,
    schedule_note,
    train,
    train_many,
    training_device,
)

__all__ = [
    "VectorModelConfig",
    "check_features",
    "encode_labels",
    "init_vector_model",
    "train_vector_model",
    "train_vector_models",
    "compute_latents",
]


@dataclass
class VectorModelConfig:
    """Architecture of the flow for vector data (defaults: the GIN paper's 10-D network)."""

    flow: str = option("gin", "coupling type: gin (volume-preserving) or glow (ablation)", choices=("gin", "glow"))
    n_blocks: int = option(8, "number of coupling blocks")
    width: int = option(10, "hidden width of the coupling subnets")
    clamp: float = option(2.0, "soft clamp of the coupling log-scales")
    stats: str = option("trainable", "class statistics: trainable (Eq. 5) or batch (Appendix C)", choices=STATS)
    standardize: bool = option(True, "standardise inputs robustly (median / MAD), stored in the model")
    linear_stage: bool = option(
        False,
        "fit a volume-preserving linear map (|det| = 1) by the likelihood of Eq. 5 "
        "before training the flow, stored in the model: undoes linear mixing the "
        "couplings get stuck on (measured: recovery 0.85 -> 0.96-0.99 on rotated "
        "data), but hurts on heavy-tailed data (see README); needs at least "
        "2 x dims samples per class",
    )

    def __post_init__(self) -> None:
        for name in ("n_blocks", "width"):
            if getattr(self, name) <= 0:
                raise ValueError(f"`{name}` must be positive, got {getattr(self, name)}")
        if not self.clamp > 0:
            raise ValueError(f"`clamp` must be positive, got {self.clamp}")

    def arch(self, dim: int, seed: int) -> dict[str, Any]:
        return {
            "name": "vector",
            "dim": dim,
            "n_blocks": self.n_blocks,
            "width": self.width,
            "coupling": self.flow,
            "clamp": self.clamp,
            "seed": seed,
        }


def check_features(x: Any, name: str = "features") -> np.ndarray:
    """A finite, non-empty 2-D float array, or a ValueError saying what is wrong."""
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric, got dtype {x.dtype}; convert or drop non-numeric columns")
    x = x.astype(np.float64, copy=False)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty (n_samples, n_features) array, got shape {x.shape}")
    bad = ~np.isfinite(x)
    if bad.any():
        rows, cols = np.nonzero(bad)
        raise ValueError(
            f"{name} contain {bad.sum()} NaN/inf value(s) (first at row {rows[0]}, column {cols[0]}); "
            "remove or impute them"
        )
    return x


def encode_labels(u: Any, n_samples: int, *, min_per_class: int = 2) -> tuple[np.ndarray, list[Any]]:
    """Class indices ``0..K-1`` and the sorted original labels, with the checks training needs."""
    u = np.asarray(u)
    if u.ndim != 1:
        u = u.reshape(-1) if u.size == n_samples else u
    if len(u) != n_samples:
        raise ValueError(f"labels and features have different lengths: {len(u)} labels for {n_samples} samples")
    classes, idx, counts = np.unique(u, return_inverse=True, return_counts=True)
    if len(classes) < 2:
        raise ValueError(f"only one class ({classes.tolist()[0]!r}) in the labels; need at least 2 classes")
    small = [f"{c!r} ({n})" for c, n in zip(classes.tolist(), counts.tolist()) if n < min_per_class]
    if small:
        raise ValueError(
            f"{len(small)} class(es) with fewer than {min_per_class} samples, label (count): "
            f"{', '.join(small[:5])}{' ...' if len(small) > 5 else ''}; drop them or collect more data"
        )
    return idx.astype(np.int64), [c.item() if hasattr(c, "item") else c for c in classes]


def init_vector_model(
    x: np.ndarray, u: np.ndarray, classes: Sequence[Any], model_config: VectorModelConfig, seed: int
) -> tuple[GINModel, torch.Tensor, torch.Tensor]:
    """A GIN model for vectors with everything fixed before training set from the data: the class prior,
    the standardisation and the linear stage (each if configured). Returns the model and the data as tensors.

    The linear stage is left at the identity when a class has fewer than ``2 * dims`` samples (its
    covariance, which the fit needs, is then too poorly determined).
    """
    model = GINModel(
        model_config.arch(x.shape[1], seed),
        len(classes),
        stats=model_config.stats,
        classes=classes,
        linear_stage=model_config.linear_stage,
    )
    xt = torch.as_tensor(x, dtype=torch.float32)
    ut = torch.as_tensor(u, dtype=torch.long)
    counts = torch.bincount(ut, minlength=len(classes))
    if model_config.standardize:
        fit_standardization(model, xt)
    with torch.no_grad():
        model.log_prior.copy_(torch.log(counts.float() / len(ut)))
    if model_config.linear_stage and int(counts.min()) >= 2 * x.shape[1]:
        fit_linear_stage(model, torch.as_tensor(x), ut, seed=seed)
    return model, xt, ut


def train_vector_model(
    x: np.ndarray,
    u: np.ndarray,
    classes: Sequence[Any],
    model_config: VectorModelConfig,
    train_config: TrainConfig,
    *,
    progress: bool = True,
    **callbacks: Any,
) -> tuple[GINModel, dict[str, list[float]], float]:
    """Build and train a GIN model on vectors; returns the model, loss history and seconds.

    ``callbacks`` (``on_step``, ``on_epoch``) are passed to :func:`ginmi.training.train`.
    """
    model, xt, ut = init_vector_model(x, u, classes, model_config, train_config.seed)
    note = schedule_note(
        train_config, len(x), sum(p.numel() for p in model.parameters() if p.requires_grad), x.shape[1]
    )
    if note is not None:
        warnings.warn(note, SmallDataWarning, stacklevel=2)
    _announce_compile(model, train_config, progress)
    t0 = time.perf_counter()
    history = train(model, xt, ut, train_config, progress=progress, **callbacks)
    return model.cpu(), history, time.perf_counter() - t0


def train_vector_models(
    datasets: Sequence[tuple[np.ndarray, np.ndarray]],
    classes: Sequence[Any],
    model_config: VectorModelConfig,
    train_config: TrainConfig,
    seeds: Sequence[int],
    *,
    progress: bool = True,
    **train_options: Any,
) -> tuple[list[GINModel], list[dict[str, list[float]]], float]:
    """:func:`train_vector_model` for several data sets and seeds at once (:func:`ginmi.training.train_many`).

    Model ``k`` is built and trained as ``train_vector_model`` with ``seed = seeds[k]`` would do it.
    ``train_options`` (``checkpoint_dirs``, ``callbacks``) go to :func:`ginmi.training.train_many`.
    Returns the models, their histories and the seconds of the joint training.
    """
    models, xs, us = [], [], []
    for (x, u), seed in zip(datasets, seeds):
        model, xt, ut = init_vector_model(x, u, classes, model_config, seed)
        models.append(model)
        xs.append(xt)
        us.append(ut)
    _announce_compile(models[0], train_config, progress)
    t0 = time.perf_counter()
    histories = train_many(models, xs, us, train_config, seeds=seeds, progress=progress, **train_options)
    return [m.cpu() for m in models], histories, time.perf_counter() - t0


def _announce_compile(model: GINModel, train_config: TrainConfig, progress: bool) -> None:
    """A stage line before training when the fused step will compile first (its first epoch is slow)."""
    from ginmi import fused

    if (
        progress
        and train_config.fused
        and not fused.compiled()
        and fused.supports(model)
        and training_device(train_config, model).type == "cpu"
        and distributed.is_main_process()
    ):
        print(
            "ginmi: "
            + "compiling the fused training step (about 20-30 s on the first run, then read from numba's cache; "
            "the first epoch's time estimate includes it) ...",
            file=sys.stderr,
            flush=True,
        )


@torch.no_grad()
def compute_latents(model: GINModel, x: np.ndarray | torch.Tensor, batch_size: int = 4096) -> np.ndarray:
    """``w = g(x)`` in batches (bounded memory), as a float64 array."""
    model.eval()
    device = next(model.parameters()).device
    xt = torch.as_tensor(x, dtype=torch.float32)
    out = [model.transform(xb.to(device)).double().cpu() for xb in xt.split(batch_size)]
    return torch.cat(out).numpy()
