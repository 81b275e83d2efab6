"""Out-of-distribution detection by the density of selected latents under the learned mixture:
``score(x) = log sum_u p(u) p(w_S | u)`` (higher = more normal), so scikit-learn's ROC
utilities apply directly with normal samples as the positive class.

Example:
    >>> import numpy as np
    >>> from ginmi.tasks.ood import auroc
    >>> auroc(np.array([3.0, 2.0, 1.5]), np.array([0.0, 1.0]))
    1.0
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from ginmi.model import GINModel
from ginmi.tasks.classification import cumulative_log_likelihood, log_prior

__all__ = ["log_density", "log_density_vs_k", "auroc", "roc", "auroc_vs_k"]


def log_density_vs_k(
    model: GINModel, w: np.ndarray | Tensor, order: Sequence[int], ks: Sequence[int], prior: str = "empirical"
) -> np.ndarray:
    """``log p(w_S)`` under the learned mixture for ``S`` = top-``k`` of ``order``: shape ``(N, len(ks))``."""
    lp = log_prior(model, prior)[None, :, None]
    blocks = [torch.logsumexp(b + lp, dim=1) for b in cumulative_log_likelihood(model, w, order, ks)]
    return torch.cat(blocks).double().cpu().numpy()


def log_density(
    model: GINModel, w: np.ndarray | Tensor, dims: Sequence[int] | None = None, prior: str = "empirical"
) -> np.ndarray:
    """``log p(w_S)`` per sample (``dims`` = ``S``, default all)."""
    dims = list(range(model.dim)) if dims is None else list(dims)
    return log_density_vs_k(model, w, dims, [len(dims)], prior)[:, 0]


def _labels_scores(normal: np.ndarray, outlier: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.r_[np.ones(len(normal)), np.zeros(len(outlier))]
    return y, np.r_[normal, outlier]


def auroc(normal_scores: np.ndarray, outlier_scores: np.ndarray) -> float:
    """Area under the ROC curve of separating normal (high score) from outlier samples."""
    from sklearn.metrics import roc_auc_score  # imported when first needed (sklearn takes ~1 s)

    return float(roc_auc_score(*_labels_scores(normal_scores, outlier_scores)))


def roc(normal_scores: np.ndarray, outlier_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(false_positive_rate, true_positive_rate)`` with outliers as the detected (positive) class."""
    y, s = _labels_scores(normal_scores, outlier_scores)
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(1 - y, -s)
    return fpr, tpr


def auroc_vs_k(
    model: GINModel,
    w_normal: np.ndarray | Tensor,
    w_outlier: np.ndarray | Tensor,
    order: Sequence[int],
    ks: Sequence[int] | None = None,
    prior: str = "empirical",
) -> list[float]:
    """AUROC with the top-``k`` dims of ``order`` for each ``k`` (default ``1..len(order)``)."""
    ks = list(range(1, len(order) + 1)) if ks is None else list(ks)
    dn = log_density_vs_k(model, w_normal, order, ks, prior)
    do = log_density_vs_k(model, w_outlier, order, ks, prior)
    return [auroc(dn[:, j], do[:, j]) for j in range(len(ks))]
