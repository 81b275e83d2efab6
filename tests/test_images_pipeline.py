"""``ginmi images`` end to end on a few hundred real Fashion-MNIST images (tiny network, 2 epochs):
every stage runs and the outputs are consistent; bad input stops with one clear line."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ginmi.cli import main
from ginmi.data.images import FASHION_MNIST_SYSTEM_DIR
from ginmi.model import GINModel, load_model
from ginmi.pipelines.images import ImagesConfig, ImageTrainConfig

pytestmark = pytest.mark.slow

needs_fashion = pytest.mark.skipif(
    not (FASHION_MNIST_SYSTEM_DIR / "train-images-idx3-ubyte.gz").is_file(),
    reason=f"Fashion-MNIST not installed in {FASHION_MNIST_SYSTEM_DIR} (apt-get install dataset-fashion-mnist)",
)

TINY = ["images", "--dataset", "fashion-mnist", "--ood", "digits", "--max-train", "400", "--max-test", "200",
        "--epochs", "2", "--batch-size", "50", "--lr", "1e-2", "--conv-widths", "4", "8", "--n-conv-blocks", "1",
        "--fc-width", "32", "--n-fc-blocks", "1", "--mi-samples", "400", "--n-figure-classes", "2",
        "--k-grid", "1", "5", "20", "100", "784", "--etas", "0", "0.01", "0.05", "--no-progress"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    if not (FASHION_MNIST_SYSTEM_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"Fashion-MNIST not installed in {FASHION_MNIST_SYSTEM_DIR}")
    out = tmp_path_factory.mktemp("images") / "run"
    assert main([*TINY, "--out", str(out)]) == 0
    return out, json.loads((out / "results.json").read_text())


@needs_fashion
def test_every_stage_writes_its_output(tiny_run):
    out, r = tiny_run
    for key in ("config", "criteria", "accuracy_vs_k", "best_k", "auroc", "fgsm", "timing", "environment", "paper"):
        assert key in r
    for name in ("decay", "accuracy_vs_k", "roc", "loss", "samples", "variation_00_T_shirt_top"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000
    assert r["training"]["epochs"] == 2 and np.isfinite(r["training"]["final_loss"])
    assert load_model(out / "model.pt").input_shape == (1, 28, 28)
    page = (out / "report.html").read_text()
    assert "data:image/png;base64" in page and "0.9415" in page  # figures embedded, the paper's numbers beside ours


@needs_fashion
def test_report_redraws_the_figures_without_training(tiny_run, capsys):
    out, _ = tiny_run
    (out / "figures" / "roc.png").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "figures" / "roc.png").stat().st_size > 1000


@needs_fashion
def test_outputs_are_consistent(tiny_run):
    _, r = tiny_run
    assert r["data"]["n_train"] == 400 and r["data"]["n_test"] == 200
    for name in ("mi", "var"):
        crit = r["criteria"][name]
        assert len(crit["scores"]) == 784 and sorted(crit["order"]) == list(range(784))
        assert len(crit["selected"]) == r["best_k"][name]
        acc = r["accuracy_vs_k"][name]
        assert r["accuracy_vs_k"]["ks"] == [1, 5, 20, 100, 784] and len(acc) == 5
        assert r["best_k"][name] in r["accuracy_vs_k"]["ks"]
        assert r["best_accuracy"][name] == max(acc) > 0.1 + 0.1  # well above chance (10 classes)
        assert 0.0 <= r["auroc"][name] <= 1.0
        table = r["fgsm"][name]
        assert list(table) == ["0", "0.01", "0.05"]
        assert math.isclose(table["0"]["error_rate_without_defence"], 1 - r["best_accuracy"][name])
        for row in table.values():
            assert 0.0 <= row["pass_rate"] <= 1.0
            assert row["error_rate_with_defence"] <= row["error_rate_without_defence"] + 1e-12
        errors = [row["error_rate_without_defence"] for row in table.values()]
        assert errors[1] >= errors[0] and errors[2] >= errors[0]  # an attack never helps
    assert r["criteria"]["mi"]["scores"] != r["criteria"]["var"]["scores"]
    assert r["paper"]["best_k"] == {"mi": 30, "var": 300}


def test_image_defaults_are_the_reference_settings():
    config = ImagesConfig()
    assert isinstance(config.train, ImageTrainConfig)
    assert (config.train.lr, config.train.batch_size, config.train.milestones, config.train.epochs) == (
        3e-4, 240, (0.5,), 100)
    assert (config.dataset, config.ood, config.etas, config.defence_k) == (
        "emnist-digits", "emnist-letters", (0.0, 0.001, 0.02), 1.0)
    assert config.model.conv_widths == (16, 32) and config.model.fc_width == 392


def test_cli_options_override_the_image_defaults():
    from ginmi.cli import build_parser
    from ginmi.config import from_namespace

    args = build_parser().parse_args(["images", "--epochs", "3", "--etas", "0", "0.1"])
    config = from_namespace(ImagesConfig, args)
    assert config.train.epochs == 3 and config.train.lr == 3e-4 and config.etas == (0.0, 0.1)


def test_missing_emnist_files_give_one_clear_line(tmp_path, capsys):
    assert main(["images", "--data-dir", str(tmp_path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ginmi: error:") and "emnist" in err.lower()
    assert not (tmp_path / "run").exists()


@needs_fashion
def test_saved_model_of_another_image_size_is_refused(tmp_path, capsys):
    model = GINModel({"name": "image", "input_shape": [1, 8, 8], "conv_widths": [4, 4], "n_conv_blocks": 1,
                      "fc_width": 8, "n_fc_blocks": 1}, n_classes=10)
    model.save(tmp_path / "small.pt")
    code = main(["images", "--dataset", "fashion-mnist", "--ood", "digits", "--max-train", "20", "--max-test", "20",
                 "--model-path", str(tmp_path / "small.pt"), "--out", str(tmp_path / "run"), "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "ginmi: error:" in err and "(1, 28, 28)" in err and "(1, 8, 8)" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("option, value, message", [
    ("--max-test", "0", "max-test"),
    ("--etas", "-0.1", "etas"),
    ("--k-grid", "0", "k-grid"),
])
def test_bad_options_give_one_clear_line(tmp_path, capsys, option, value, message):
    assert main(["images", option, value, "--out", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err
