"""The README's Python snippets run as written (issue 15.9: they used undefined names), given the files
they name: a `ginmi fit` run, an images run, and the user's data files, made here at tiny sizes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from ginmi.app.cli import main
from ginmi.model import GINModel
from ginmi.app.images import ImageModelConfig

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)


@pytest.fixture(scope="module")
def user_files(tmp_path_factory):
    """The files the snippets name, in a folder that becomes the working directory."""
    root = tmp_path_factory.mktemp("readme")
    rng = np.random.default_rng(0)
    names = [f"f{i}" for i in range(10)]

    def table(path, n, labels):
        u = np.arange(n) % 3
        x = rng.standard_normal((n, 10)) + u[:, None]
        head = [*names, "label"] if labels else names
        rows = [[*map(str, row), *([str(lab)] if labels else [])] for row, lab in zip(x.tolist(), u)]
        path.write_text("\n".join(",".join(r) for r in [head, *rows]) + "\n")

    table(root / "mine.csv", 150, True)
    table(root / "test.csv", 60, True)
    table(root / "outliers.csv", 30, False)
    assert main(["fit", str(root / "mine.csv"), "--epochs", "1", "--n-blocks", "2", "--no-progress",
                 "--no-report", "--n-permutations", "10", "--out", str(root / "runs" / "mine")]) == 0
    arch = ImageModelConfig(conv_widths=(4, 4), n_conv_blocks=1, fc_width=16, n_fc_blocks=1).arch((1, 28, 28), 0)
    (root / "runs" / "emnist").mkdir(parents=True)
    GINModel(arch, n_classes=10).save(root / "runs" / "emnist" / "model.pt")
    (root / "runs" / "emnist" / "results.json").write_text(json.dumps({"criteria": {"mi": {"selected": [0, 7, 30]}}}))
    np.savez(root / "my_images.npz", x=rng.random((12, 1, 28, 28)).astype(np.float32), u=np.arange(12) % 10)
    return root


def test_the_readme_has_python_snippets():
    assert len(BLOCKS) >= 4


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_snippet_runs_as_written(index, user_files, monkeypatch):
    monkeypatch.chdir(user_files)
    code = BLOCKS[index]
    if "cross_val_score(pipe" in code:  # the same code on fewer rows and epochs (the test's time)
        code = code.replace("GINTransformer()", "GINTransformer(epochs=5, n_blocks=2)")
    if "make_synthetic(10_000" in code:
        code = code.replace("make_synthetic(10_000", "make_synthetic(1_000").replace("TrainConfig()",
                                                                                    "TrainConfig(epochs=2)")
    exec(compile(code, f"README.md python block {index + 1}", "exec"), {"__name__": "readme"})
