"""Figures: the raster scatter matrix puts every point of every pair in its panel, in its label's colour."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ginmi.app import plots


def test_all_projections_paints_each_pair_in_label_colours():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(300, 4))
    values[:, 0] = np.repeat([0.0, 1.0], 150)  # dim 0 separates the two labels
    u = np.repeat([0, 1], 150)
    fig = plots.all_projections(values, u, "pairs", panel=50)
    canvas = fig.axes[0].get_images()[0].get_array()
    labels = [t.get_text() for t in fig.axes[0].texts]
    plt.close(fig)
    assert labels == ["(0, 1)", "(0, 2)", "(0, 3)", "(1, 2)", "(1, 3)", "(2, 3)"]
    colours = np.asarray(plt.get_cmap("tab10").colors)[:2]
    first = canvas[14:64, :50]  # panel (0, 1): label 0 at the left edge, label 1 at the right
    is_colour = [np.all(np.isclose(first, c), axis=-1) for c in colours]
    assert is_colour[0][:, :3].any() and not is_colour[0][:, 10:].any()
    assert is_colour[1][:, -3:].any() and not is_colour[1][:, :-10].any()
    # every panel holds points of both labels
    for n in range(6):
        panel = canvas[14:64, n * 54 : n * 54 + 50]
        assert all(np.all(np.isclose(panel, c), axis=-1).sum() > 50 for c in colours)


def _line_figure(value: float, parent: int | None = None):
    import os

    if parent is not None and os.getpid() != parent:
        raise RuntimeError("fails in the forked child only")
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, value])
    return fig


def test_figure_folder_renders_every_queued_figure_even_when_the_child_fails(tmp_path):
    import os

    folder = plots.FigureFolder(tmp_path)
    for k in range(5):  # figure 1 is drawn by the forked child where there is one; it fails there
        folder.add(f"f{k}.png", _line_figure, float(k), parent=os.getpid() if k == 1 else None)
    written = folder.render()
    assert written == [tmp_path / f"f{k}.png" for k in range(5)]
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert folder.render() == written  # an empty queue draws nothing more


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def _scatter_axes(fig):
    return [ax for ax in fig.axes if any(type(c).__name__ == "PathCollection" for c in ax.collections)]


def test_scatter_panels_have_axis_labels_and_a_class_legend():
    rng = np.random.default_rng(0)
    w, u = rng.normal(size=(200, 5)), np.repeat([0, 1, 2, 3], 50)
    figs = [
        plots.projections(w, u, [(0, 1), (2, 3)], "latent", axis_label="latent dim"),
        plots.criteria_figure(w, u, rng.random(5), rng.random(5)),
        plots.ood_latent_figure(w, u, 3 * rng.normal(size=(100, 5)), (0, 1)),
    ]
    for fig in figs:
        panels = _scatter_axes(fig)
        assert panels
        for ax in panels:
            assert ax.get_xlabel() and ax.get_ylabel(), ax.get_title()
        legends = [[t.get_text() for t in ax.get_legend().get_texts()] for ax in panels if ax.get_legend()]
        assert legends and all(f"class {c}" in legends[0] for c in range(4))
        plt.close(fig)
    fig = plots.criteria_figure(w, u, rng.random(5), rng.random(5), class_names=["ant", "bee", "cat", "dog"])
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["ant", "bee", "cat", "dog"]
    plt.close(fig)


def test_outliers_have_a_colour_no_class_has():
    rng = np.random.default_rng(0)
    u = np.arange(200) % 10
    fig = plots.ood_latent_figure(rng.normal(size=(200, 2)), u, 3 * rng.normal(size=(100, 2)), (0, 1))
    ax = fig.axes[0]
    outliers = ax.collections[-1]
    colour = np.concatenate([outliers.get_facecolors()[:, :3], outliers.get_edgecolors()[:, :3]])
    classes = np.asarray(plt.get_cmap("tab10").colors)
    distance = np.linalg.norm(colour[:, None, :] - classes[None, :, :], axis=-1)
    assert distance.min() > 0.3, "outliers drawn in (nearly) a class colour"
    assert any("outlier" in t.get_text() for t in ax.get_legend().get_texts())
    plt.close(fig)


def test_figure_titles_do_not_overlap_panel_titles():
    rng = np.random.default_rng(0)
    w, u = rng.normal(size=(300, 4)), np.repeat([0, 1, 2], 100)
    figs = [
        plots.projections(w, u, [(0, 1), (2, 3)], "latent (z, eps) (Fig. 1)"),
        plots.curves_vs_k(
            {"main": {"mi": rng.random((2, 4))}, "low-noise": {"mi": rng.random((2, 4))}},
            "test accuracy",
            title="Bayes classification with the top-k dims (Fig. 4)",
        ),
        plots.all_projections(w, u, "all 2-D projections of the learned w (Fig. 14)", panel=40),
    ]
    for fig in figs:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        top = fig._suptitle.get_window_extent(renderer)
        for ax in fig.axes:
            assert not _overlap(top, ax.title.get_window_extent(renderer)), fig._suptitle.get_text()
            assert not _overlap(top, ax.get_tightbbox(renderer)), fig._suptitle.get_text()
        plt.close(fig)


def test_import_keeps_the_users_backend_and_figures_draw_headless(tmp_path):
    """Issue 14: importing ginmi.app.plots used to call matplotlib.use("Agg"), overriding a notebook's backend."""
    import subprocess
    import sys

    code = f"""
import os, sys
import matplotlib
matplotlib.use("TkAgg")  # a GUI backend, as a notebook or desktop user might have chosen
import numpy as np
from ginmi.app import plots
assert matplotlib.rcParams["backend"].lower() == "tkagg", matplotlib.rcParams["backend"]
u = np.repeat([0, 1], 20)
plots.save(plots.all_projections(np.random.default_rng(0).normal(size=(40, 3)), u, "pairs", panel=20),
           {str(tmp_path / "f.png")!r})
assert matplotlib.rcParams["backend"].lower() == "tkagg"
assert "matplotlib.pyplot" not in sys.modules  # no GUI canvas was needed
"""
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("DISPLAY", "MPLBACKEND")}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "f.png").read_bytes().startswith(b"\x89PNG")
