"""Informative-latent selection (paper Alg. 1): score every dimension, order, threshold.

Criteria
    ``mi``: mutual information ``I(w_i; u)`` (estimator chosen by name, see :data:`MI_ESTIMATORS`);
    ``var``: GIN's spectrum, the root mean square over classes of the class-conditional std of
    ``w_i`` (``var_kind="std"``: the plain overall std).
Thresholds
    ``fdr`` (default): Benjamini-Hochberg on permutation p-values at level ``q``, keeping the
    discoveries that also explain at least ``min_effect`` (10%) of the label entropy ``H(u)``: an
    imperfect flow leaks a little information about ``u`` into noise dims (measured: up to
    0.09 nats, 5.5% of ``H(u)``, on the reference generator), which large samples detect as
    significant although it is of no practical use;
    ``top-k``: the ``k`` best; ``sharp-drop``: cut at the largest log-ratio between consecutive
    sorted scores; ``max-curvature``: the knee of the sorted curve (Kneedle: the point farthest
    below the chord from the first to the last score).

Example:
    >>> import numpy as np
    >>> from ginmi.selection import select
    >>> sel = select(np.array([0.01, 1.2, 0.02, 0.9]), "sharp-drop")
    >>> sel.order.tolist(), sel.selected.tolist()
    ([1, 3, 2, 0], [1, 3])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ginmi.config import option
from ginmi.mi import bootstrap_intervals, gaussian_mutual_information, mutual_information, permutation_pvalues

__all__ = [
    "MI_ESTIMATORS",
    "THRESHOLDS",
    "SelectionConfig",
    "mi_scores",
    "score_criteria",
    "Selection",
    "var_scores",
    "sharp_drop",
    "max_curvature",
    "label_entropy",
    "benjamini_hochberg",
    "select",
]

MI_ESTIMATORS = ("knn", "sklearn", "gaussian")
THRESHOLDS = ("fdr", "sharp-drop", "max-curvature", "top-k")


@dataclass
class Selection:
    """Scores of every dimension, their order (best first) and the selected set (in order)."""

    scores: np.ndarray
    order: np.ndarray
    selected: np.ndarray
    threshold: str
    reason: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (the ``criteria`` entries of ``results.json``)."""
        out = {
            "scores": self.scores.tolist(),
            "order": self.order.tolist(),
            "selected": self.selected.tolist(),
            "threshold": self.threshold,
            "reason": self.reason,
        }
        out.update({k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.extra.items()})
        return out


def var_scores(w: np.ndarray, u: np.ndarray, kind: str = "class-rms") -> np.ndarray:
    """GIN's variance criterion: RMS over classes of per-class stds (``"class-rms"``) or plain std."""
    if kind == "std":
        return w.std(0)
    if kind != "class-rms":
        raise ValueError(f"var kind must be 'class-rms' or 'std', got {kind!r}")
    stds = np.stack([w[u == c].std(0) for c in np.unique(u)])
    return np.sqrt((stds**2).mean(0))


def label_entropy(u: np.ndarray) -> float:
    """Plug-in entropy ``H(u)`` of the labels in nats: the largest MI any ``w_i`` can have."""
    p = np.unique(np.asarray(u), return_counts=True)[1] / len(u)
    return float(-(p * np.log(p)).sum())


def sharp_drop(sorted_scores: np.ndarray) -> int:
    """Number kept before the largest drop in log-score between neighbours.

    Scores are floored at 5% of the maximum: estimates of zero MI scatter around a few
    hundredths of a nat (and are clipped at 0), so ratios among them must not count as drops.
    """
    s = np.asarray(sorted_scores, dtype=float)
    if len(s) < 2:
        return len(s)
    floor = max(0.05 * s.max(), 1e-12)
    log_s = np.log(np.maximum(s, 0) + floor)
    return int(np.argmax(log_s[:-1] - log_s[1:])) + 1


def max_curvature(sorted_scores: np.ndarray) -> int:
    """Number kept before the knee of a decreasing curve (Kneedle on the normalised curve)."""
    s = np.asarray(sorted_scores, dtype=float)
    if len(s) < 3 or s[0] == s[-1]:
        return len(s)
    x = np.linspace(0.0, 1.0, len(s))
    y = (s - s[-1]) / (s[0] - s[-1])
    return max(1, int(np.argmax((1.0 - x) - y)))


def benjamini_hochberg(pvalues: np.ndarray, q: float = 0.05) -> np.ndarray:
    """Boolean mask of discoveries under Benjamini-Hochberg false-discovery-rate control at ``q``."""
    p = np.asarray(pvalues, dtype=float)
    if not 0 < q < 1:
        raise ValueError(f"FDR level q must lie in (0, 1), got {q}")
    m = len(p)
    order = np.argsort(p, kind="stable")
    below = p[order] <= q * np.arange(1, m + 1) / m
    mask = np.zeros(m, dtype=bool)
    if below.any():
        mask[order[: np.nonzero(below)[0].max() + 1]] = True
    return mask


def select(
    scores: np.ndarray,
    threshold: str = "sharp-drop",
    *,
    k: int | None = None,
    pvalues: np.ndarray | None = None,
    q: float = 0.05,
    min_score: float = 0.0,
) -> Selection:
    """Order ``scores`` (higher = more informative) and choose the informative set.

    ``threshold="top-k"`` needs ``k``; ``"fdr"`` needs ``pvalues`` (one per score) and keeps
    the discoveries at level ``q`` whose score is at least ``min_score``, in score order.
    """
    scores = np.asarray(scores, dtype=float)
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    extra: dict[str, Any] = {}
    if threshold == "top-k":
        if k is None or not 1 <= k <= len(scores):
            raise ValueError(f"top-k needs `k` between 1 and {len(scores)}, got {k}")
        n, reason = k, f"top-k with k={k}"
    elif threshold == "sharp-drop":
        n = sharp_drop(sorted_scores)
        reason = f"largest log-drop between rank {n} and {n + 1}"
    elif threshold == "max-curvature":
        n = max_curvature(sorted_scores)
        reason = f"knee of the sorted scores after rank {n}"
    elif threshold == "fdr":
        if pvalues is None:
            raise ValueError("the fdr threshold needs permutation p-values")
        discoveries = benjamini_hochberg(pvalues, q)
        mask = discoveries & (scores >= min_score)
        extra = {"pvalues": np.asarray(pvalues, dtype=float), "q": q, "min_score": min_score}
        selected = order[mask[order]]
        reason = f"Benjamini-Hochberg at FDR q={q}: {discoveries.sum()} discoveries"
        if min_score > 0:
            reason += f", {mask.sum()} of them with score >= {min_score:.4g}"
        return Selection(scores, order, selected, threshold, reason, extra)
    else:
        raise ValueError(f"`threshold` must be one of {THRESHOLDS}, got {threshold!r}")
    return Selection(scores, order, order[:n], threshold, reason, extra)


@dataclass
class SelectionConfig:
    """How latents are scored and thresholded (shared by every command)."""

    mi_estimator: str = option(
        "knn",
        "MI estimator: knn (exact fast version of scikit-learn's, the paper's), sklearn "
        "(scikit-learn itself), gaussian (model-based, from the fitted class-conditional Gaussians)",
        choices=MI_ESTIMATORS,
    )
    threshold: str = option(
        "fdr",
        "how the informative set is chosen: fdr (Benjamini-Hochberg on permutation "
        "p-values), sharp-drop, max-curvature or top-k",
        choices=THRESHOLDS,
    )
    k: int | None = option(None, "number of dims kept with --threshold top-k")
    q: float = option(0.05, "false-discovery rate for --threshold fdr")
    min_effect: float = option(
        0.10,
        "with fdr, also require I(w_i; u) >= this fraction of the label entropy H(u): statistical and "
        "practical significance (0: significance alone)",
    )
    n_permutations: int = option(200, "label permutations for the MI p-values and null level (0: none; fdr needs them)")
    max_permutations: int | None = option(
        None,
        "refine the p-values of the dims with fewer than 10 exceedances by further permutations, up to "
        "this many (sequential Besag-Clifford test; only dims near the boundary pay); none: as many as fdr needs "
        "to select among all dims, ceil(2 * dims / q)",
    )
    bootstrap: int = option(0, "bootstrap resamples for MI confidence intervals (0: none)")
    n_neighbors: int = option(3, "neighbours of the kNN MI estimator")
    var_kind: str = option(
        "class-rms", "VAR score: RMS of class-conditional stds (GIN) or plain std", choices=("class-rms", "std")
    )

    def __post_init__(self) -> None:
        if self.n_permutations < 0 or self.bootstrap < 0:
            raise ValueError("`n_permutations` and `bootstrap` must be >= 0")
        if self.threshold == "fdr" and self.n_permutations < 1:
            raise ValueError("`threshold`='fdr' needs `n_permutations` >= 1")
        if not 0 < self.q < 1:
            raise ValueError(f"the FDR level q must lie in (0, 1), got {self.q}")
        if self.threshold == "top-k" and (self.k is None or self.k < 1):
            raise ValueError(f"`threshold`='top-k' needs `k` >= 1 (the number of dims kept), got {self.k}")
        if self.k is not None and self.threshold != "top-k":
            raise ValueError(
                f"`k`={self.k} is used only with `threshold`='top-k' (now {self.threshold!r}); "
                "set `threshold`='top-k' or drop `k`"
            )
        if self.n_neighbors < 1:
            raise ValueError(f"`n_neighbors` must be >= 1, got {self.n_neighbors}")
        if not 0 <= self.min_effect < 1:
            raise ValueError(f"min_effect must lie in [0, 1), got {self.min_effect}")
        if self.max_permutations is not None and self.max_permutations < 0:
            raise ValueError(f"`max_permutations` must be >= 0 or none, got {self.max_permutations}")

    def check_dims(self, n_dims: int) -> None:
        """Refuse settings that cannot work on ``n_dims`` latent dims (before anything is trained)."""
        if self.k is not None and self.k > n_dims:
            raise ValueError(f"`k`={self.k} exceeds the {n_dims} dims of the data; use `k` between 1 and {n_dims}")

    def permutation_budget(self, n_dims: int) -> int:
        """Most permutations a dim's p-value may use: ``max_permutations``, by default ``ceil(2 * n_dims / q)``
        (so that Benjamini-Hochberg can accept a p-value among ``n_dims``), never below ``n_permutations``."""
        auto = math.ceil(2 * n_dims / self.q) if self.threshold == "fdr" else self.n_permutations
        return max(self.n_permutations, auto if self.max_permutations is None else self.max_permutations)


def mi_scores(w: np.ndarray, u: np.ndarray, config: SelectionConfig, *, seed: int = 0, model: Any = None) -> np.ndarray:
    """``I(w_i; u)`` for every column with the configured estimator (nats).

    ``gaussian`` needs the trained ``model`` (its class means, stds and priors); ``w`` and ``u``
    are then unused.
    """
    if config.mi_estimator == "knn":
        return mutual_information(w, u, n_neighbors=config.n_neighbors, random_state=seed)
    if config.mi_estimator == "sklearn":
        from sklearn.feature_selection import mutual_info_classif

        return mutual_info_classif(w, u, n_neighbors=config.n_neighbors, random_state=seed)
    if config.mi_estimator == "gaussian":
        if model is None:
            raise ValueError("the gaussian MI estimator needs a trained model (class means and stds)")
        return gaussian_mutual_information(
            model.mu.detach().cpu().double().numpy(),
            model.log_sigma.detach().cpu().double().exp().numpy(),
            model.log_prior.detach().cpu().double().exp().numpy(),
        )
    raise ValueError(f"`mi_estimator` must be one of {MI_ESTIMATORS}, got {config.mi_estimator!r}")


def score_criteria(
    w: np.ndarray, u: np.ndarray, config: SelectionConfig, *, seed: int = 0, model: Any = None
) -> dict[str, Selection]:
    """Score, order and select by MI (``"mi"``) and by VAR, in both of its definitions: ``"var"`` (GIN's
    class-RMS std, or ``config.var_kind``) and ``"var_std"`` (the plain overall std, the paper's wording).

    With ``n_permutations > 0`` the MI selection carries permutation p-values of the kNN
    estimator (whatever estimator ranks the dims) and the null level (95% quantile of the MI
    of shuffled labels); with ``bootstrap > 0``, percentile intervals. VAR has no p-values:
    under ``fdr`` it keeps as many dims as MI selected, so both orders compare at equal size.
    """
    scores = mi_scores(w, u, config, seed=seed, model=model)
    extra: dict[str, Any] = {"estimator": config.mi_estimator}
    pvalues = None
    if config.n_permutations > 0:
        observed = scores if config.mi_estimator == "knn" else None
        budget = config.permutation_budget(w.shape[1])
        pvalues, null = permutation_pvalues(
            w,
            u,
            n_permutations=config.n_permutations,
            n_neighbors=config.n_neighbors,
            random_state=seed,
            observed=observed,
            max_permutations=budget,
        )
        extra.update(pvalues=pvalues, null_level=float(np.quantile(null, 0.95)), max_permutations=budget)
    if config.bootstrap > 0:
        low, high = bootstrap_intervals(
            w, u, n_bootstrap=config.bootstrap, n_neighbors=config.n_neighbors, random_state=seed
        )
        extra.update(ci_low=low, ci_high=high)
    min_score = config.min_effect * label_entropy(u) if config.threshold == "fdr" else 0.0
    mi = select(scores, config.threshold, k=config.k, pvalues=pvalues, q=config.q, min_score=min_score)
    mi.extra.update(extra)
    var_threshold, k = config.threshold, config.k
    if var_threshold == "fdr":
        var_threshold, k = "top-k", max(1, len(mi.selected))
    criteria = {"mi": mi}
    for name, kind in (("var", config.var_kind), ("var_std", "std")):
        var = select(var_scores(w, u, kind), var_threshold, k=k)
        if config.threshold == "fdr":
            var.reason = f"top-k with k = {k}, the size of the MI set (VAR has no p-values)"
            if len(mi.selected) == 0:  # equal size: nothing; VAR's own order is still reported
                var.selected = var.selected[:0]
                var.reason = "none: MI selected no dim, and VAR keeps as many as MI (VAR has no p-values)"
        var.extra["kind"] = kind
        criteria[name] = var
    return criteria
