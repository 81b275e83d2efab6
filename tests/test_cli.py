"""The CLI's ``--config FILE``, the run record (config.toml) and the experiment log (metrics.csv)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

import ginmi
from ginmi.app.cli import COMMANDS, build_parser, main, resolve_config
from ginmi.app.logging_utils import read_metrics
from ginmi.config import option_names, read_config_file
from tiny_run import tiny_image_net

TINY = [
    "--n-samples",
    "600",
    "--n-test",
    "100",
    "--no-report",
    "--epochs",
    "2",
    "--batch-size",
    "120",
    "--warmup-steps",
    "3",
    "--no-progress",
]


def _results(run):
    return json.loads((run / "results.json").read_text())


def _weights(run):
    return torch.load(run / "model.pt", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "a"
    assert main(["synthetic", *TINY, "--out", str(run)]) == 0
    return run


@pytest.mark.slow
def test_run_repeated_from_its_config_is_identical(first_run, tmp_path, capsys):
    stored = read_config_file(first_run / "config.toml", COMMANDS["synthetic"].config)
    assert stored["n_samples"] == 600 and stored["epochs"] == 2 and "out" not in stored
    repeat = tmp_path / "b"
    assert main(["synthetic", "--config", str(first_run / "config.toml"), "--out", str(repeat)]) == 0
    a, b = _results(first_run), _results(repeat)
    assert a["criteria"] == b["criteria"]
    assert a["training"] == b["training"]
    assert {k: v for k, v in a["config"].items() if k != "out"} == {k: v for k, v in b["config"].items() if k != "out"}
    wa, wb = _weights(first_run), _weights(repeat)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert read_config_file(repeat / "config.toml") == stored


def test_run_folder_records_config_version_seed_environment(first_run):
    text = (first_run / "config.toml").read_text()
    assert f"ginmi {ginmi.__version__}" in text and "seed: 0" in text and f"torch {torch.__version__}" in text
    assert "device cpu" in text
    assert f'# out = "{first_run}"' in text
    results = _results(first_run)
    assert results["environment"]["torch"] == torch.__version__ and results["config"]["seed"] == 0
    # every option of the command is stored
    assert set(read_config_file(first_run / "config.toml")) == set(option_names(COMMANDS["synthetic"].config)) - {"out"}


def test_metrics_csv_has_step_and_epoch_rows(first_run):
    metrics = read_metrics(first_run / "metrics.csv")
    epochs = metrics["epoch"]
    assert [row["epoch"] for row in epochs] == [1.0, 2.0]
    np.testing.assert_allclose([row["loss"] for row in epochs], _results(first_run)["training"]["epoch_loss"])
    assert all(row["seconds"] >= 0 for row in epochs)
    assert list((first_run / "figures").glob("loss*.png"))
    steps = metrics["step"]  # 600 samples / batch 120 = 5 steps per epoch
    assert [row["step"] for row in steps] == list(range(1, 11))
    assert [row["epoch"] for row in steps] == [1.0] * 5 + [2.0] * 5
    assert steps[0]["lr"] == pytest.approx(0.01 / 3) and steps[2]["lr"] == pytest.approx(0.01)
    np.testing.assert_allclose(np.mean([row["loss"] for row in steps[:5]]), epochs[0]["loss"])


def test_command_line_options_override_the_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('epochs = 5\nn-samples = 700\nthreshold = "top-k"\nk = 2\n[train]\nlr = 0.5\n')
    args = build_parser().parse_args(["synthetic", "--config", str(path), "--epochs", "3"])
    config = resolve_config("synthetic", args)
    assert config.train.epochs == 3 and config.n_samples == 700 and config.train.lr == 0.5
    assert config.selection.threshold == "top-k" and config.selection.k == 2


def test_positional_arguments_can_come_from_the_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('data = "from_file.csv"\nlabel_column = "y"\n')
    config = resolve_config("fit", build_parser().parse_args(["fit", "--config", str(path)]))
    assert config.data == "from_file.csv" and config.label_column == "y"
    config = resolve_config("fit", build_parser().parse_args(["fit", "given.csv", "--config", str(path)]))
    assert config.data == "given.csv"


@pytest.mark.parametrize(
    "content, message",
    [
        ("epoch = 2\n", "unknown option 'epoch' in config file"),
        ('epochs = "two"\n', "option 'epochs' must be int"),
        ("epochs = 0\n", "--epochs must be positive"),
        ('threshold = "best"\n', "--threshold must be one of"),
        ("epochs = \n", "not valid TOML"),
    ],
)
def test_bad_config_files_fail_with_one_clear_line(tmp_path, capsys, content, message):
    path = tmp_path / "c.toml"
    path.write_text(content)
    assert main(["synthetic", "--config", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ginmi: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_missing_config_file_and_missing_positional(tmp_path, capsys):
    assert main(["synthetic", "--config", str(tmp_path / "nope.toml")]) == 2
    assert "no such config file" in capsys.readouterr().err
    assert main(["fit"]) == 2
    assert "fit needs DATA" in capsys.readouterr().err


def test_fit_writes_config_and_metrics_and_repeats_from_them(tmp_path, capsys):
    rng = np.random.default_rng(0)
    u = np.repeat([0, 1, 2], 80)
    x = np.column_stack([u + 0.3 * rng.standard_normal(240), rng.standard_normal((240, 3))])
    data = tmp_path / "data.npz"
    np.savez(data, x=x, u=u)
    run = tmp_path / "fit"
    args = ["--epochs", "2", "--warmup-steps", "2", "--batch-size", "60", "--no-progress", "--n-blocks", "2"]
    assert main(["fit", str(data), *args, "--out", str(run)]) == 0
    stored = read_config_file(run / "config.toml")
    assert stored["data"] == str(data) and stored["n_blocks"] == 2
    assert len(read_metrics(run / "metrics.csv")["epoch"]) == 2
    assert main(["fit", "--config", str(run / "config.toml"), "--out", str(tmp_path / "fit2")]) == 0
    assert _results(run)["criteria"] == _results(tmp_path / "fit2")["criteria"]


def test_tensorboard_option(tmp_path, capsys):
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        assert main(["synthetic", *TINY, "--tensorboard", "--out", str(tmp_path / "run")]) == 2
        err = capsys.readouterr().err
        assert "pip install tensorboard" in err and not (tmp_path / "run").exists()
    else:
        assert main(["synthetic", *TINY, "--tensorboard", "--out", str(tmp_path / "run")]) == 0
        assert any((tmp_path / "run" / "tensorboard").iterdir())


def test_every_command_accepts_config():
    parser = build_parser()
    for name in COMMANDS:
        assert parser.parse_args([name, "--config", "x.toml"]).config == "x.toml"


@pytest.mark.slow
def test_images_run_records_config_and_metrics(tmp_path, capsys):
    from ginmi.data.images import FASHION_MNIST_SYSTEM_DIR

    if not (FASHION_MNIST_SYSTEM_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    run = tmp_path / "images"
    args = [
        "images",
        "--dataset",
        "fashion-mnist",
        "--ood",
        "digits",
        "--max-train",
        "200",
        "--max-test",
        "100",
        "--epochs",
        "1",
        "--batch-size",
        "50",
        *tiny_image_net(),
        "--mi-samples",
        "200",
        "--n-figure-classes",
        "2",
        "--k-grid",
        "1",
        "5",
        "--etas",
        "0",
        "--no-progress",
        "--out",
        str(run),
    ]
    assert main(args) == 0
    stored = read_config_file(run / "config.toml", COMMANDS["images"].config)
    config = resolve_config("images", build_parser().parse_args(args))
    assert stored["max_train"] == 200 and stored["conv_widths"] == [4, 8]
    resolved = resolve_config("images", build_parser().parse_args(["images", "--config", str(run / "config.toml")]))
    assert resolved == dataclasses.replace(config, out=None)
    metrics = read_metrics(run / "metrics.csv")
    n_steps = int(metrics["epoch"][0]["step"])
    assert len(metrics["epoch"]) == 1 and [r["step"] for r in metrics["step"]] == list(range(1, n_steps + 1))
