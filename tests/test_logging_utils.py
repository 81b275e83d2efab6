"""metrics.csv written through the trainer's callbacks, including a resumed run."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ginmi.app.logging_utils import LogConfig, MetricsLogger, read_metrics
from ginmi.model import GINModel
from ginmi.training import TrainConfig, train


class Interrupt(Exception):
    pass


def _model():
    return GINModel({"name": "vector", "dim": 4, "width": 8, "n_blocks": 2, "seed": 0}, n_classes=2)


def _rows(path):
    return [{k: v for k, v in row.items() if k != "seconds"} for rows in read_metrics(path).values() for row in rows]


def test_resumed_run_logs_like_an_uninterrupted_one(tmp_path):
    x, u = torch.randn(96, 4), torch.arange(96) % 2
    config = TrainConfig(epochs=4, batch_size=32, warmup_steps=5, checkpoint_every=1, checkpoint_seconds=0)
    with MetricsLogger(tmp_path / "full", config, len(x)) as log:
        history = train(_model(), x, u, config, progress=False, checkpoint_dir=tmp_path / "full", **log.callbacks())

    run = tmp_path / "interrupted"
    with MetricsLogger(run, config, len(x)) as log:

        def stop_after_two_steps_of_epoch_3(step, loss):
            log.on_step(step, loss)
            if step == 8:
                raise Interrupt

        with pytest.raises(Interrupt):
            train(
                _model(),
                x,
                u,
                config,
                progress=False,
                checkpoint_dir=run,
                on_step=stop_after_two_steps_of_epoch_3,
                on_epoch=log.on_epoch,
            )
    assert len(read_metrics(run / "metrics.csv")["step"]) == 8
    resume = dataclasses.replace(config, resume=True)
    with MetricsLogger(run, resume, len(x)) as log:
        train(_model(), x, u, resume, progress=False, checkpoint_dir=run, **log.callbacks())

    assert _rows(run / "metrics.csv") == _rows(tmp_path / "full" / "metrics.csv")
    metrics = read_metrics(run / "metrics.csv")
    assert [r["loss"] for r in metrics["epoch"]] == pytest.approx(history["epoch_loss"])
    assert [r["step"] for r in metrics["step"]] == list(range(1, 13))


def test_tensorboard_needs_the_package():
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="pip install tensorboard"):
            LogConfig(tensorboard=True)
    else:
        assert LogConfig(tensorboard=True).tensorboard
