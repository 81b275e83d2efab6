"""Figures in the paper's style. Every function returns a matplotlib Figure; :func:`save` writes it
atomically as PNG. The non-interactive Agg backend is used, so nothing needs a display."""

from __future__ import annotations

import io
import os
from itertools import combinations
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ginmi.io import atomic_open  # noqa: E402

__all__ = ["save", "projections", "all_projections", "criteria_figure", "loss_curve"]

_MAX_POINTS = 4000


def save(fig: Figure, path: str | os.PathLike, dpi: int = 110) -> None:
    """Write ``fig`` as PNG to ``path`` atomically and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    with atomic_open(path, "wb") as f:
        f.write(buf.getvalue())


def _thin(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).permutation(n)[: min(n, _MAX_POINTS)]


def _scatter(ax: plt.Axes, a: np.ndarray, b: np.ndarray, u: np.ndarray, title: str, size: float = 2.0) -> None:
    idx = _thin(len(a))
    ax.scatter(a[idx], b[idx], c=u[idx], cmap="tab10", s=size, vmin=0, vmax=9, linewidths=0)
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)


def projections(values: np.ndarray, u: np.ndarray, pairs: Sequence[tuple[int, int]], title: str) -> Figure:
    """2-D projections of ``values`` onto the given dimension pairs, coloured by label (Figs. 1-2)."""
    fig, axes = plt.subplots(1, len(pairs), figsize=(3.2 * len(pairs), 3.2), squeeze=False)
    for ax, (i, j) in zip(axes[0], pairs):
        _scatter(ax, values[:, i], values[:, j], u, f"projection on dims ({i}, {j})")
    fig.suptitle(title)
    return fig


def all_projections(values: np.ndarray, u: np.ndarray, title: str) -> Figure:
    """All pairwise 2-D projections (45 for 10 dims; paper Figs. 12-14)."""
    pairs = list(combinations(range(values.shape[1]), 2))
    cols = 9 if len(pairs) >= 9 else len(pairs)
    rows = int(np.ceil(len(pairs) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 1.9 * rows), squeeze=False)
    for ax in axes.flat[len(pairs):]:
        ax.axis("off")
    for ax, (i, j) in zip(axes.flat, pairs):
        _scatter(ax, values[:, i], values[:, j], u, f"({i}, {j})", size=0.5)
        ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle(title)
    return fig


def _decay(ax: plt.Axes, learned: np.ndarray, true: np.ndarray | None, ylabel: str,
           band: tuple[np.ndarray, np.ndarray] | None = None, null_level: float | None = None) -> None:
    order = np.argsort(-learned, kind="stable")
    ranks = np.arange(1, len(learned) + 1)
    if true is not None:
        ax.plot(np.arange(1, len(true) + 1), np.sort(true)[::-1], "o-", color="0.7", label="true latents", ms=4)
    ax.plot(ranks, learned[order], "o-", color="k", label="learned w", ms=4)
    if band is not None:
        ax.fill_between(ranks, band[0][order], band[1][order], color="k", alpha=0.2, label="95% interval")
    if null_level is not None:
        ax.axhline(null_level, color="tab:red", ls="--", lw=1, label="null (95% quantile)")
    if len(learned) <= 30:
        for r, d in zip(ranks, order):
            ax.annotate(str(d), (r, learned[d]), textcoords="offset points", xytext=(0, 5), fontsize=7, ha="center")
    ax.set_xlabel("rank")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)


def criteria_figure(
    w: np.ndarray,
    u: np.ndarray,
    var_scores: np.ndarray,
    mi_scores: np.ndarray,
    true_var: np.ndarray | None = None,
    true_mi: np.ndarray | None = None,
    *,
    mi_band: tuple[np.ndarray, np.ndarray] | None = None,
    mi_null: float | None = None,
) -> Figure:
    """Paper Fig. 3: top-2 VAR features, std decay, top-2 MI features, MI decay."""
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.4))
    v = np.argsort(-var_scores, kind="stable")[:2]
    m = np.argsort(-mi_scores, kind="stable")[:2]
    _scatter(axes[0], w[:, v[0]], w[:, v[1]], u, f"(a) top-2 by VAR: dims {v[0]}, {v[1]}")
    _decay(axes[1], var_scores, true_var, "standard deviation")
    axes[1].set_title("(b) std decay", fontsize=9)
    _scatter(axes[2], w[:, m[0]], w[:, m[1]], u, f"(c) top-2 by MI: dims {m[0]}, {m[1]}")
    _decay(axes[3], mi_scores, true_mi, "I(w_i; u) [nats]", band=mi_band, null_level=mi_null)
    axes[3].set_title("(d) MI decay", fontsize=9)
    fig.tight_layout()
    return fig


def loss_curve(epoch_loss: Sequence[float]) -> Figure:
    """Training loss per epoch."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(np.arange(1, len(epoch_loss) + 1), epoch_loss, "k-")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (NLL per dim)")
    ax.set_title("training loss", fontsize=9)
    fig.tight_layout()
    return fig
