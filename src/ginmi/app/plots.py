"""Figures in the paper's style. Every function returns a matplotlib Figure; :func:`save` writes it
atomically as PNG. Figures are plain :class:`~matplotlib.figure.Figure` objects, not pyplot's, so they draw
without a display and importing this module leaves the matplotlib backend as the user set it."""

from __future__ import annotations

import io
import multiprocessing
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ginmi._platform import usable_cores
from ginmi.io import atomic_open

__all__ = [
    "FigureFolder",
    "save",
    "projections",
    "all_projections",
    "criteria_figure",
    "loss_curve",
    "decay_curves",
    "accuracy_vs_k_figure",
    "roc_figure",
    "image_grid",
    "curves_vs_k",
    "roc_curves_spread",
    "sorted_scores_spread",
    "correlation_heatmaps",
    "ood_latent_figure",
]

_MAX_POINTS = 4000


class FigureFolder:
    """A folder of figures: :meth:`save` writes ``folder/name`` now; :meth:`add` queues a figure and
    :meth:`render` draws the queue, in two processes where that is safe (Linux, 2+ cores: the
    figures are independent, and drawing is most of a short run's time after training).
    Every path written is recorded in ``written``."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.written: list[Path] = []
        self._queue: list[tuple[str, Callable[..., Figure], tuple, dict]] = []

    def save(self, fig: Figure, name: str) -> Path:
        path = self.folder / name
        save(fig, path)
        self.written.append(path)
        return path

    def add(self, name: str, make: Callable[..., Figure], *args: Any, **kwargs: Any) -> None:
        """Queue the figure ``make(*args, **kwargs)``, to be saved as ``name`` by :meth:`render`."""
        self._queue.append((name, make, args, kwargs))

    def render(self) -> list[Path]:
        """Draw and save the queued figures; returns ``written``.

        A forked child draws every second figure while this process draws the others; if the
        child fails or hangs, its figures are drawn here (so errors surface here, as usual).
        """
        queue, self._queue = self._queue, []
        cores = usable_cores()
        child = None
        if sys.platform.startswith("linux") and cores > 1 and len(queue) > 1:
            child = multiprocessing.get_context("fork").Process(
                target=_draw, args=(self.folder, queue[1::2]), daemon=True
            )
            sys.stdout.flush()  # else the child would write this process's buffered output again
            sys.stderr.flush()
            with warnings.catch_warnings():  # Python >= 3.12 warns about forking a threaded process
                warnings.simplefilter("ignore", DeprecationWarning)
                child.start()
        t0 = time.perf_counter()
        _draw(self.folder, queue[0::2] if child is not None else queue)
        if child is not None:
            child.join(timeout=60 + 4 * (time.perf_counter() - t0))
            if child.exitcode != 0:
                child.kill()
                _draw(self.folder, queue[1::2])
        self.written.extend(self.folder / name for name, *_ in queue)
        return self.written


def _subplots(
    nrows: int = 1,
    ncols: int = 1,
    *,
    figsize: tuple[float, float] | None = None,
    layout: str | None = None,
    **kwargs: Any,
) -> tuple[Figure, Any]:
    """``pyplot.subplots`` without pyplot: a plain :class:`Figure` on its own Agg canvas draws and saves
    without a display, while a notebook user's backend stays as it is (no ``matplotlib.use``)."""
    fig = Figure(figsize=figsize, layout=layout)
    FigureCanvasAgg(fig)  # this figure's canvas only; the global backend is untouched
    return fig, fig.subplots(nrows, ncols, **kwargs)


def _draw(folder: Path, queue: Sequence[tuple[str, Callable[..., Figure], tuple, dict]]) -> None:
    for name, make, args, kwargs in queue:
        save(make(*args, **kwargs), folder / name)


def save(fig: Figure, path: str | os.PathLike, dpi: int = 110) -> None:
    """Write ``fig`` as PNG to ``path`` atomically and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:  # a figure made with pyplot; ginmi's own are plain Figures that nothing holds
        pyplot.close(fig)
    with atomic_open(path, "wb") as f:
        f.write(buf.getvalue())


def _thin(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).permutation(n)[: min(n, _MAX_POINTS)]


OUTLIER_STYLE = {"c": "k", "marker": "x", "s": 6.0, "linewidths": 0.6}
"""Outliers are black crosses: no class colour (tab10) is black."""


def _scatter(
    ax: Axes,
    a: np.ndarray,
    b: np.ndarray,
    u: np.ndarray,
    title: str,
    size: float = 2.0,
    *,
    xlabel: str = "",
    ylabel: str = "",
    legend: bool = True,
    class_names: Sequence[Any] | None = None,
) -> None:
    """Points coloured by class index (tab10), axis labels, and a legend naming each class shown."""
    idx = _thin(len(a))
    u = np.asarray(u)
    ax.scatter(a[idx], b[idx], c=u[idx], cmap="tab10", s=size, vmin=0, vmax=9, linewidths=0)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    if legend:
        _class_legend(ax, u, class_names=class_names)


def _class_legend(
    ax: Axes, u: np.ndarray, max_classes: int = 10, class_names: Sequence[Any] | None = None, **extra: Any
) -> None:
    """A legend with one tab10 dot per class (the first ``max_classes``; named ``class_names[c]``, else
    ``class c``) plus the ``extra`` handles."""
    from matplotlib.lines import Line2D

    colours = matplotlib.colormaps["tab10"].colors
    classes = np.unique(np.asarray(u).astype(int))[:max_classes]
    names = [
        str(class_names[c]) if class_names is not None and 0 <= c < len(class_names) else f"class {c}" for c in classes
    ]
    handles = [
        Line2D([], [], ls="", marker="o", ms=4, color=colours[min(max(c, 0), 9)], label=name)
        for c, name in zip(classes, names)
    ]
    handles += [Line2D([], [], ls="", label=label, **style) for label, style in extra.items()]
    ax.legend(handles=handles, fontsize=6, loc="best", framealpha=0.7, handletextpad=0.2, borderpad=0.3)


def projections(
    values: np.ndarray, u: np.ndarray, pairs: Sequence[tuple[int, int]], title: str, axis_label: str = "dim"
) -> Figure:
    """2-D projections of ``values`` onto the given dimension pairs, coloured by label (Figs. 1-2);
    the axes are labelled ``f"{axis_label} {i}"``."""
    fig, axes = _subplots(1, len(pairs), figsize=(3.2 * len(pairs), 3.4), squeeze=False, layout="constrained")
    for n, (ax, (i, j)) in enumerate(zip(axes[0], pairs)):
        _scatter(
            ax,
            values[:, i],
            values[:, j],
            u,
            f"projection on dims ({i}, {j})",
            xlabel=f"{axis_label} {i}",
            ylabel=f"{axis_label} {j}",
            legend=n == 0,
        )
    fig.suptitle(title, fontsize=10)
    return fig


def all_projections(values: np.ndarray, u: np.ndarray, title: str, panel: int = 100) -> Figure:
    """All pairwise 2-D projections (45 for 10 dims; paper Figs. 12-14), coloured by label.

    Drawn as one raster image (``panel`` pixels square per pair, each point a 2x2 dot in its
    label's tab10 colour, later points on top as in a scatter plot) instead of one axes and one
    scatter per pair: the same picture in a tenth of the time.
    """
    pairs = list(combinations(range(values.shape[1]), 2))
    cols = 9 if len(pairs) >= 9 else len(pairs)
    rows = int(np.ceil(len(pairs) / cols))
    gap, label = 4, 14  # pixels between panels and above each for its label
    cell_h, cell_w = panel + gap + label, panel + gap
    canvas = np.ones((rows * cell_h, cols * cell_w, 3))
    idx = _thin(len(values))
    v = np.asarray(values, dtype=float)[idx]
    lo, hi = v.min(0), v.max(0)
    pix = np.floor((v - lo) / np.where(hi > lo, hi - lo, 1.0) * (panel - 2)).astype(int)
    rgb = np.asarray(matplotlib.colormaps["tab10"].colors)[np.asarray(u)[idx] % 10]
    fig, ax = _subplots(
        figsize=(1.9 * cols, 1.9 * cols * canvas.shape[0] / canvas.shape[1] + 0.5), layout="constrained"
    )
    for n, (i, j) in enumerate(pairs):
        top, left = (n // cols) * cell_h + label, (n % cols) * cell_w
        canvas[top : top + panel, left : left + panel] = 0.97  # panel background
        y, x = top + panel - 2 - pix[:, j], left + pix[:, i]
        for dy in (0, 1):
            for dx in (0, 1):
                canvas[y + dy, x + dx] = rgb
        ax.text(left + panel / 2, top - 2, f"({i}, {j})", ha="center", va="bottom", fontsize=8)
    ax.imshow(canvas, interpolation="nearest")
    ax.axis("off")
    fig.suptitle(title)
    return fig


def _decay(
    ax: Axes,
    learned: np.ndarray,
    true: np.ndarray | None,
    ylabel: str,
    band: tuple[np.ndarray, np.ndarray] | None = None,
    null_level: float | None = None,
) -> None:
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
    class_names: Sequence[Any] | None = None,
) -> Figure:
    """Paper Fig. 3: top-2 VAR features, std decay, top-2 MI features, MI decay (``class_names[c]`` names
    class index ``c`` in the legends)."""
    fig, axes = _subplots(1, 4, figsize=(15, 3.4))
    v = np.argsort(-var_scores, kind="stable")[:2]
    m = np.argsort(-mi_scores, kind="stable")[:2]
    _scatter(
        axes[0],
        w[:, v[0]],
        w[:, v[1]],
        u,
        f"(a) top-2 by VAR: dims {v[0]}, {v[1]}",
        xlabel=f"w_{v[0]}",
        ylabel=f"w_{v[1]}",
        class_names=class_names,
    )
    _decay(axes[1], var_scores, true_var, "standard deviation")
    axes[1].set_title("(b) std decay", fontsize=9)
    _scatter(
        axes[2],
        w[:, m[0]],
        w[:, m[1]],
        u,
        f"(c) top-2 by MI: dims {m[0]}, {m[1]}",
        xlabel=f"w_{m[0]}",
        ylabel=f"w_{m[1]}",
        class_names=class_names,
    )
    _decay(axes[3], mi_scores, true_mi, "I(w_i; u) [nats]", band=mi_band, null_level=mi_null)
    axes[3].set_title("(d) MI decay", fontsize=9)
    fig.tight_layout()
    return fig


def loss_curve(epoch_loss: Sequence[float]) -> Figure:
    """Training loss per epoch."""
    fig, ax = _subplots(figsize=(5, 3.2))
    ax.plot(np.arange(1, len(epoch_loss) + 1), epoch_loss, "k-")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (NLL per dim)")
    ax.set_title("training loss", fontsize=9)
    fig.tight_layout()
    return fig


def decay_curves(mi_scores: np.ndarray, std_scores: np.ndarray, best_k: dict[str, int] | None = None) -> Figure:
    """Paper Fig. 6 (right): MI and standard deviation of every latent, each sorted decreasingly."""
    fig, axes = _subplots(1, 2, figsize=(10, 3.4))
    for ax, scores, label, key in (
        (axes[0], mi_scores, "I(w_i; u) [nats]", "mi"),
        (axes[1], std_scores, "standard deviation", "var"),
    ):
        ranks = np.arange(1, len(scores) + 1)
        ax.plot(ranks, np.sort(scores)[::-1], "k-", lw=1.2)
        if best_k and key in best_k:
            ax.axvline(best_k[key], color="tab:red", ls="--", lw=1, label=f"best k = {best_k[key]}")
            ax.legend(fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel("rank")
        ax.set_ylabel(label)
        ax.set_title(("MI" if key == "mi" else "std") + " decay", fontsize=9)
    fig.tight_layout()
    return fig


def accuracy_vs_k_figure(
    ks: Sequence[int], curves: dict[str, Sequence[float]], best_k: dict[str, int] | None = None
) -> Figure:
    """Paper Fig. 6 (left): test accuracy against the number of selected latents, one curve per order."""
    fig, ax = _subplots(figsize=(5.5, 3.6))
    colors = {"mi": "tab:blue", "var": "tab:orange"}
    for name, acc in curves.items():
        label = name.upper() + (f" (best k = {best_k[name]})" if best_k and name in best_k else "")
        ax.plot(ks, acc, "o-", ms=3, color=colors.get(name), label=label)
    ax.set_xscale("log")
    ax.set_xlabel("number of selected latents k")
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=8)
    ax.set_title("classification with the top-k latents", fontsize=9)
    fig.tight_layout()
    return fig


def roc_figure(curves: dict[str, tuple[np.ndarray, np.ndarray, float]]) -> Figure:
    """Paper Fig. 7: ROC curves of OOD detection, ``{label: (fpr, tpr, auroc)}``."""
    fig, ax = _subplots(figsize=(4.2, 4.0))
    for label, (fpr, tpr, area) in curves.items():
        ax.plot(fpr, tpr, lw=1.5, label=f"{label} (AUROC {area:.3f})")
    ax.plot([0, 1], [0, 1], color="0.6", ls=":", lw=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("OOD detection by density of w_S", fontsize=9)
    fig.tight_layout()
    return fig


def image_grid(
    images: np.ndarray,
    title: str = "",
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
) -> Figure:
    """Grid of grey images ``(rows, cols, H, W)`` (or ``(rows, cols, 1, H, W)``), values clipped to ``[0, 1]``.

    Drawn as one mosaic (a 1-pixel white gap between images) on a single axes, which is fast
    even for large grids; labels go on the axes' ticks.
    """
    images = np.asarray(images)
    if images.ndim == 5:
        images = images[:, :, 0]
    rows, cols, h, w = images.shape
    mosaic = np.ones((rows * (h + 1) - 1, cols * (w + 1) - 1))
    for r in range(rows):
        for c in range(cols):
            mosaic[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = np.clip(images[r, c], 0, 1)
    fig, ax = _subplots(figsize=(0.6 * cols + 1.0, 0.6 * rows + 0.6))
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([c * (w + 1) + w / 2 - 0.5 for c in range(cols)] if col_labels is not None else [])
    ax.set_yticks([r * (h + 1) + h / 2 - 0.5 for r in range(rows)] if row_labels is not None else [])
    if col_labels is not None:
        ax.set_xticklabels([str(c) for c in col_labels], fontsize=7)
        ax.xaxis.tick_top()
    if row_labels is not None:
        ax.set_yticklabels([str(r) for r in row_labels], fontsize=7)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title, fontsize=9, pad=14 if col_labels is not None else 6)
    fig.tight_layout()
    return fig


_ORDER_COLORS = {"mi": "tab:blue", "var": "tab:orange", "var_std": "tab:green"}
ORDER_LABELS = {"mi": "MI", "var": "VAR", "var_std": "VAR(std)"}
"""Legend names of the orders: MI, VAR as GIN's class-RMS std, VAR as the plain overall std."""


def _spread(ax: Axes, x: np.ndarray, curves: np.ndarray, color: str | None, label: str) -> None:
    """Mean of ``curves`` (trials x points) as a line, min-max over trials as a band, trials thin."""
    curves = np.atleast_2d(np.asarray(curves, dtype=float))
    mean = curves.mean(0)
    n = len(curves)
    ax.plot(x, mean, "o-", ms=3, color=color, label=label + (f" (mean of {n})" if n > 1 else ""))
    if n > 1:
        ax.fill_between(x, curves.min(0), curves.max(0), color=color, alpha=0.2, lw=0)
        for c in curves:
            ax.plot(x, c, "-", color=color, lw=0.5, alpha=0.5)


def curves_vs_k(
    panels: dict[str, dict[str, np.ndarray]],
    ylabel: str,
    *,
    bounds: dict[str, np.ndarray] | None = None,
    title: str = "",
) -> Figure:
    """Paper Figs. 4-5 (right): a score against the number ``k`` of selected dims, one panel per setting.

    ``panels[name][order]`` is an array ``(n_trials, d)`` whose column ``k - 1`` is the score with the
    top-``k`` dims of that order; the line is the mean over trials, the band min to max.
    ``bounds[name]`` (one value per trial) is drawn as a dashed line with its range (Fig. 4's
    asymptotic bound).
    """
    fig, axes = _subplots(
        1, len(panels), figsize=(4.2 * len(panels), 3.6 if title else 3.4), squeeze=False, layout="constrained"
    )  # constrained layout keeps the suptitle above the panel titles
    for ax, (name, curves) in zip(axes[0], panels.items()):
        for order, values in curves.items():
            values = np.atleast_2d(values)
            _spread(
                ax,
                np.arange(1, values.shape[1] + 1),
                values,
                _ORDER_COLORS.get(order),
                ORDER_LABELS.get(order, order.upper()),
            )
        if bounds is not None and name in bounds:
            b = np.atleast_1d(np.asarray(bounds[name], dtype=float))
            ax.axhline(b.mean(), color="k", ls="--", lw=1, label="Bayes bound")
            if len(b) > 1:
                ax.axhspan(b.min(), b.max(), color="k", alpha=0.08, lw=0)
        ax.set_xlabel("number of selected dims k")
        ax.set_ylabel(ylabel)
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def roc_curves_spread(
    fpr: np.ndarray, tprs: dict[str, np.ndarray], aurocs: dict[str, np.ndarray], title: str = "ROC"
) -> Figure:
    """ROC curves on a common false-positive grid, ``tprs[label]`` of shape ``(n_trials, len(fpr))``;
    mean line, min-max band over trials, mean AUROC in the legend (paper Figs. 5, 7)."""
    fig, ax = _subplots(figsize=(4.2, 4.0))
    for label, tpr in tprs.items():
        key = label.split()[0].lower()
        area = np.atleast_1d(aurocs[label])
        _spread(ax, fpr, tpr, _ORDER_COLORS.get(key), f"{label}, AUROC {area.mean():.3f}")
    ax.plot([0, 1], [0, 1], color="0.6", ls=":", lw=1)
    ax.set_xlabel("false positive rate (normal flagged)")
    ax.set_ylabel("true positive rate (outliers found)")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def sorted_scores_spread(
    panels: dict[str, dict[str, np.ndarray]], true: dict[str, dict[str, np.ndarray]] | None = None
) -> Figure:
    """Decay of the sorted MI and std scores over trials (paper Figs. 3b/d, 8c/e, 10-11 c/e).

    ``panels[name]`` maps ``"mi"`` and ``"std"`` to arrays ``(n_trials, d)`` of sorted scores;
    ``true[name]`` the same for the true latents (grey).
    """
    fig, axes = _subplots(2, len(panels), figsize=(3.8 * len(panels), 6.0), squeeze=False)
    for col, (name, scores) in enumerate(panels.items()):
        for row, (key, ylabel) in enumerate((("mi", "I(w_i; u) [nats]"), ("std", "standard deviation"))):
            ax = axes[row, col]
            if true is not None and name in true:
                t = np.atleast_2d(true[name][key])
                _spread(ax, np.arange(1, t.shape[1] + 1), t, "0.6", "true latents")
            s = np.atleast_2d(scores[key])
            _spread(ax, np.arange(1, s.shape[1] + 1), s, "k", "learned w")
            both = np.concatenate([s.ravel()] + ([np.ravel(true[name][key])] if true and name in true else []))
            if key == "std" and np.nanmin(both) > 0 and np.nanmax(both) / np.nanmin(both) > 30:
                ax.set_yscale("log")
            ax.set_xlabel("rank")
            ax.set_ylabel(ylabel)
            ax.set_title(f"{name}: {'MI' if key == 'mi' else 'std'} decay", fontsize=9)
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def correlation_heatmaps(
    matrices: Sequence[np.ndarray],
    titles: Sequence[str],
    *,
    ylabel: str = "true latent (z, eps) dim",
    row_names: Sequence[str] | None = None,
) -> Figure:
    """|correlation| between true latents (rows) and learned ``w`` (columns), one panel per
    trained model (paper Fig. 9). ``matrices[i]`` has rows = dims of ``w``, columns = true latents
    (or what ``ylabel`` names, e.g. the input features, with ``row_names`` as tick labels)."""
    n = len(matrices)
    fig, axes = _subplots(1, n, figsize=(3.3 * n + 0.8, 3.3), squeeze=False)
    im = None
    for ax, corr, title in zip(axes[0], matrices, titles):
        corr = np.asarray(corr).T
        im = ax.imshow(corr, vmin=0, vmax=1, cmap="viridis")
        ax.set_xlabel("learned w dim", fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.set_xticks(range(corr.shape[1])), ax.set_yticks(range(corr.shape[0]))
        if row_names is not None and len(row_names) == corr.shape[0]:
            ax.set_yticklabels([str(r) for r in row_names])
        ax.tick_params(labelsize=6)
        ax.set_title(title, fontsize=8)
    if im is not None:
        fig.colorbar(im, ax=list(axes[0]), shrink=0.8, label="|correlation|")
    return fig


def ood_latent_figure(normal: np.ndarray, u: np.ndarray, outlier: np.ndarray, dims: tuple[int, int] = (0, 1)) -> Figure:
    """Paper Fig. 5 (left): normal latents (coloured by label) and outliers (black crosses, a colour no
    class has) on the informative dims."""
    fig, ax = _subplots(figsize=(4.6, 4.2))
    i, j = dims
    _scatter(
        ax,
        normal[:, i],
        normal[:, j],
        u,
        f"latent dims ({i}, {j}): normal and outliers",
        xlabel=f"latent dim {i}",
        ylabel=f"latent dim {j}",
        legend=False,
    )
    idx = _thin(len(outlier), 1)
    ax.scatter(outlier[idx, i], outlier[idx, j], **OUTLIER_STYLE)
    _class_legend(ax, u, **{"outliers (Eq. 17)": {"color": "k", "marker": "x", "ms": 4}})
    fig.tight_layout()
    return fig
