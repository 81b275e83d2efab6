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

from typing import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["abs_correlation", "mcc", "matching"]


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
