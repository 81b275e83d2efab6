"""Identifiability metrics: |correlation| between learned and true latents, and the MCC.

Example:
    >>> import numpy as np
    >>> from ginmi.tasks.identifiability import abs_correlation, mcc
    >>> rng = np.random.default_rng(0)
    >>> z = rng.standard_normal((500, 3))
    >>> w = np.stack([2 * z[:, 2], -z[:, 0], z[:, 1] + 1], axis=1)
    >>> round(mcc(abs_correlation(w, z)), 6)
    1.0
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from ginmi.mi import mutual_information
from ginmi.selection import var_scores

__all__ = ["abs_correlation", "mcc", "matching", "mcc_scores", "criteria_recovery", "recovery"]


def abs_correlation(w: np.ndarray, latent: np.ndarray) -> np.ndarray:
    """|Pearson correlation| matrix: rows are dims of ``w``, columns are true latents."""
    if len(w) != len(latent):
        raise ValueError(f"w has {len(w)} rows but the latents have {len(latent)}")
    wc = (w - w.mean(0)) / np.maximum(w.std(0), 1e-300)
    zc = (latent - latent.mean(0)) / np.maximum(latent.std(0), 1e-300)
    return np.abs(wc.T @ zc / len(w))


def matching(corr: np.ndarray, columns: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Best one-to-one matching (Hungarian) of true latents ``columns`` to dims of ``w``.

    Returns ``(w_dims, latent_dims)`` of matched pairs.
    """
    cols = np.arange(corr.shape[1]) if columns is None else np.asarray(columns)
    rows, sub = linear_sum_assignment(corr[:, cols], maximize=True)
    return rows, cols[sub]


def mcc(corr: np.ndarray, columns: Sequence[int] | None = None) -> float:
    """Mean correlation coefficient over the best matching, for all or the given true latents."""
    rows, cols = matching(corr, columns)
    return float(corr[rows, cols].mean())


def mcc_scores(corr: np.ndarray, informative: Sequence[int]) -> dict[str, float]:
    """``{"all": ..., "informative": ...}``: the MCC over all true latents and over the informative ones."""
    return {"all": mcc(corr), "informative": mcc(corr, informative)}


def criteria_recovery(criteria: dict[str, Any], true_dims: set[int]) -> dict[str, dict[str, Any]]:
    """Per criterion (a :class:`ginmi.selection.Selection`): its top ``n = len(true_dims)`` dims, whether
    they are ``true_dims`` (the dims matched to the informative latents), and whether its selected set is."""
    n = len(true_dims)
    return {
        name: {
            "top_n": sel.order[:n].tolist(),
            "top_n_correct": set(sel.order[:n].tolist()) == true_dims,
            "selected_correct": set(sel.selected.tolist()) == true_dims,
        }
        for name, sel in criteria.items()
    }


def recovery(
    w_train: np.ndarray,
    u_train: np.ndarray,
    w_eval: np.ndarray,
    latent_eval: np.ndarray,
    informative: Sequence[int],
    *,
    seed: int = 0,
) -> dict[str, Any]:
    """How well a representation recovers the true latents, with no model needed (baselines too).

    ``mcc`` (``all``, ``informative``) on the evaluation set; ``top_n_correct``: whether the top
    ``n = len(informative)`` coordinates by MI (kNN, on the training set), by VAR (class-RMS std)
    and by VAR as plain std are exactly those matched to the informative latents.
    """
    corr = abs_correlation(w_eval, latent_eval)
    true_set = set(matching(corr, informative)[0].tolist())
    n = len(informative)
    scores = {
        "mi": mutual_information(w_train, u_train, random_state=seed),
        "var": var_scores(w_train, u_train, "class-rms"),
        "var_std": var_scores(w_train, u_train, "std"),
    }
    return {
        "mcc": mcc_scores(corr, informative),
        "top_n_correct": {
            name: set(np.argsort(-s, kind="stable")[:n].tolist()) == true_set for name, s in scores.items()
        },
    }
