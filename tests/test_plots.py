"""Figures: the raster scatter matrix puts every point of every pair in its panel, in its label's colour."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ginmi import plots


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
        panel = canvas[14:64, n * 54:n * 54 + 50]
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
