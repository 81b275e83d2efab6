"""Experiment logs of a training run: ``metrics.csv`` in the run folder, and TensorBoard on request.

One :class:`MetricsLogger` per run receives the trainer's callbacks
(:func:`ginmi.training.train`'s ``on_step(step, loss)`` and ``on_epoch(epoch, loss)``) and writes
one CSV row per optimisation step and one per epoch:

======== ===========================================================================
column   content
======== ===========================================================================
kind     ``step`` or ``epoch``
epoch    epoch number, from 1
step     optimisation steps done so far, from 1 (for an ``epoch`` row: at its end)
loss     the batch loss (``step``) or the epoch's mean loss (``epoch``), NLL per dim
lr       learning rate of the step (``step`` rows)
seconds  wall-clock seconds of the epoch (``epoch`` rows)
======== ===========================================================================

When training resumes from a checkpoint (``train_config.resume``), the rows of an existing
``metrics.csv`` up to the resumed step are kept and the new rows appended, so the file reads as
one uninterrupted run.

With ``tensorboard=True`` the same values go to ``<run>/tensorboard`` (scalars ``loss/step``,
``lr``, ``loss/epoch``); the ``tensorboard`` package is imported only then.

Example:
    >>> import tempfile
    >>> from ginmi.training import TrainConfig
    >>> run = tempfile.mkdtemp()
    >>> with MetricsLogger(run, TrainConfig(epochs=2, batch_size=2, milestones=(), warmup_steps=2), 4) as log:
    ...     log.on_step(1, 1.5); log.on_step(2, 0.5); log.on_epoch(0, 1.0)
    >>> print(open(log.path).read(), end="")  # doctest: +ELLIPSIS
    kind,epoch,step,loss,lr,seconds
    step,1,1,1.5,0.005,
    step,1,2,0.5,0.01,
    epoch,1,2,1.0,,...
"""

from __future__ import annotations

import csv
import importlib.util
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ginmi.config import option
from ginmi.training import TrainConfig, lr_factor

__all__ = ["LogConfig", "MetricsLogger", "METRICS_COLUMNS", "read_metrics"]

METRICS_COLUMNS = ("kind", "epoch", "step", "loss", "lr", "seconds")


@dataclass
class LogConfig:
    """Experiment logs (``metrics.csv`` is always written; TensorBoard on request)."""

    tensorboard: bool = option(False, "also log metrics to TensorBoard in <run>/tensorboard (needs tensorboard)")

    def __post_init__(self) -> None:
        if self.tensorboard and importlib.util.find_spec("tensorboard") is None:
            raise ValueError(_NO_TENSORBOARD)


_NO_TENSORBOARD = (
    "--tensorboard needs the tensorboard package, which is not installed: "
    "pip install tensorboard (or run without --tensorboard; metrics.csv is always written)"
)


def _summary_writer(log_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise ValueError(_NO_TENSORBOARD) from err
    return SummaryWriter(log_dir=str(log_dir))


class MetricsLogger:
    """Write per-step and per-epoch training metrics of one run to ``metrics.csv`` (and TensorBoard).

    Parameters
    ----------
    run_dir : str or os.PathLike
        The run folder; ``metrics.csv`` (and ``tensorboard/``) are written there.
    train_config : TrainConfig
        The run's training settings, for the learning rate of each step.
    n_samples : int
        Number of training samples, for the steps per epoch of the schedule.
    tensorboard : bool, default False
        Also write TensorBoard scalars (raises ValueError if tensorboard is not installed).

    Use it as a context manager, or call :meth:`close`; pass :meth:`on_step` and
    :meth:`on_epoch` to :func:`ginmi.training.train` (see :meth:`callbacks`).
    """

    def __init__(
        self, run_dir: str | os.PathLike, train_config: TrainConfig, n_samples: int, *, tensorboard: bool = False
    ) -> None:
        self.path = Path(run_dir) / "metrics.csv"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.train_config = train_config
        self.steps_per_epoch = max(1, math.ceil(n_samples / train_config.batch_size_for(n_samples)))
        self._writer = _summary_writer(Path(run_dir) / "tensorboard") if tensorboard else None
        # rows of an interrupted run, kept up to the step training resumes from (see _start)
        self._previous: list[list[str]] | None = None
        if getattr(train_config, "resume", False) and self.path.is_file():
            with self.path.open(newline="") as f:
                self._previous = [row for row in csv.reader(f)][1:]
        self._file = self.path.open("w", newline="")
        self._csv = csv.writer(self._file, lineterminator="\n")
        self._csv.writerow(METRICS_COLUMNS)
        self._epoch = 0
        self._steps = 0
        self._t0 = time.perf_counter()

    def _start(self, *, step: int | None = None, epoch: int | None = None) -> None:
        """On the first record of a resumed run: keep the earlier rows before ``step`` (or ``epoch``)."""
        rows, self._previous = self._previous or [], None
        epoch_col, step_col = METRICS_COLUMNS.index("epoch"), METRICS_COLUMNS.index("step")
        for row in rows:
            if len(row) != len(METRICS_COLUMNS):
                continue
            if (step is not None and int(row[step_col]) >= step) or (epoch is not None and int(row[epoch_col]) > epoch):
                break
            self._csv.writerow(row)
            if row[0] == "epoch":
                self._epoch, self._steps = int(row[epoch_col]), int(row[step_col])

    def lr(self, step: int) -> float:
        """Learning rate of optimisation step ``step`` (counted from 1)."""
        return self.train_config.lr * lr_factor(self.train_config, step - 1, self.steps_per_epoch)

    def on_step(self, step: int, loss: float) -> None:
        """Record the loss of optimisation step ``step`` (counted from 1, as the trainer does)."""
        if self._previous is not None:
            self._start(step=step)
        lr = self.lr(step)
        self._steps = step
        self._csv.writerow(("step", self._epoch + 1, step, float(loss), lr, ""))
        if self._writer is not None:
            self._writer.add_scalar("loss/step", float(loss), step)
            self._writer.add_scalar("lr", lr, step)

    def on_epoch(self, epoch: int, loss: float) -> None:
        """Record the mean loss of epoch ``epoch`` (counted from 0, as the trainer does) and its duration."""
        if self._previous is not None:
            self._start(epoch=epoch)
        now = time.perf_counter()
        self._csv.writerow(("epoch", epoch + 1, self._steps, float(loss), "", now - self._t0))
        self._file.flush()
        if self._writer is not None:
            self._writer.add_scalar("loss/epoch", float(loss), epoch + 1)
            self._writer.flush()
        self._epoch, self._t0 = epoch + 1, now

    def callbacks(self) -> dict[str, Any]:
        """``{"on_step": ..., "on_epoch": ...}`` for :func:`ginmi.training.train`."""
        return {"on_step": self.on_step, "on_epoch": self.on_epoch}

    def close(self) -> None:
        """Flush and close the CSV file (and the TensorBoard writer)."""
        if not self._file.closed:
            if self._previous is not None:  # nothing was recorded: keep the earlier rows
                self._start()
            self._file.close()
        if self._writer is not None:
            self._writer.close()

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def read_metrics(path: str | os.PathLike) -> dict[str, list[dict[str, float]]]:
    """Rows of a ``metrics.csv``, split by kind: ``{"step": [...], "epoch": [...]}``, values as floats.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "metrics.csv"
        >>> _ = path.write_text("kind,epoch,step,loss,lr,seconds\\nepoch,1,3,0.5,,0.1\\n")
        >>> read_metrics(path)["epoch"]
        [{'epoch': 1.0, 'step': 3.0, 'loss': 0.5, 'seconds': 0.1}]
    """
    out: dict[str, list[dict[str, float]]] = {"step": [], "epoch": []}
    with Path(path).open(newline="") as f:
        for row in csv.DictReader(f):
            kind = row.pop("kind")
            out.setdefault(kind, []).append({k: float(v) for k, v in row.items() if v not in ("", None)})
    return out
