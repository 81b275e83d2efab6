"""The trivial baselines every recovery result is reported beside.

A trained GIN only adds something if it recovers the true latents better than what a user gets
without it: the raw data ``x`` (no model), the same model at initialisation (``untrained``: what
the architecture, the permutations and the input standardisation give before any step) and
scikit-learn's FastICA on ``x`` (linear ICA, as many components as dims). Each is scored by
:func:`ginmi.tasks.identifiability.recovery` exactly like the trained model. (The classification
baselines of the image study are :mod:`ginmi.tasks.baselines`.)
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ginmi.model import GINModel
from ginmi.tasks.identifiability import recovery
from ginmi.vector import compute_latents

__all__ = ["BASELINES", "baseline_latents", "baseline_recovery", "value_added"]

BASELINES = ("raw_x", "untrained", "fastica")


def _untrained_like(model: GINModel) -> GINModel:
    """A model of the same architecture and seed at initialisation, with the trained one's fixed
    input standardisation and class prior (those are set from the data before training)."""
    fresh = GINModel(model.arch, model.n_classes, stats=model.stats, classes=model.classes)
    fresh.load_state_dict(
        {k: v for k, v in model.state_dict().items() if k in ("shift", "scale", "log_prior")}, strict=False
    )
    return fresh.eval()


def baseline_latents(
    model: GINModel, x_train: np.ndarray, x_eval: np.ndarray, *, seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{baseline: (representation of x_train, of x_eval)}`` for every name in :data:`BASELINES`."""
    from sklearn.decomposition import FastICA
    from sklearn.exceptions import ConvergenceWarning

    untrained = _untrained_like(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ica = FastICA(n_components=x_train.shape[1], whiten="unit-variance", max_iter=1000, random_state=seed).fit(
            x_train
        )
    return {
        "raw_x": (x_train, x_eval),
        "untrained": (compute_latents(untrained, x_train), compute_latents(untrained, x_eval)),
        "fastica": (ica.transform(x_train), ica.transform(x_eval)),
    }


def baseline_recovery(
    model: GINModel,
    x_train: np.ndarray,
    u_train: np.ndarray,
    x_eval: np.ndarray,
    latent_eval: np.ndarray,
    informative: Sequence[int],
    *,
    seed: int = 0,
) -> dict[str, Any]:
    """``results.json``'s ``baselines``: :func:`~ginmi.tasks.identifiability.recovery` of each baseline."""
    return {
        name: recovery(w_train, u_train, w_eval, latent_eval, informative, seed=seed)
        for name, (w_train, w_eval) in baseline_latents(model, x_train, x_eval, seed=seed).items()
    }


def value_added(trained: dict[str, Any], baselines: dict[str, Any]) -> dict[str, Any]:
    """Trained minus the best baseline, for ``mcc.all`` and ``mcc.informative`` (positive: training helped)."""
    out: dict[str, Any] = {}
    for key in ("all", "informative"):
        best = max(baselines, key=lambda name: baselines[name]["mcc"][key])
        out[f"mcc_{key}"] = {
            "trained": trained["mcc"][key],
            "best_baseline": best,
            "baseline": baselines[best]["mcc"][key],
            "added": trained["mcc"][key] - baselines[best]["mcc"][key],
        }
    return out
