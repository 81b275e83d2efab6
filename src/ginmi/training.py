"""Training of a :class:`~ginmi.model.GINModel` by maximum likelihood (paper Eq. 5).

One trainer serves vector and image data, in one process or data-parallel under ``torchrun``
(:mod:`ginmi.distributed`). Data already in memory are shuffled once per epoch with one gather
and one noise draw (no DataLoader, no per-step indexing copy); batches are contiguous slices.
Adam with a multi-step decay by ``gamma``; small Gaussian input noise as in the GIN reference;
optional gradient clipping and learning-rate warm-up.

Speed: in one process the trainable parameters are packed into one flat buffer (their ``.data``
and ``.grad`` are views of it), so zeroing, clipping and the fused Adam update are each one
kernel instead of one per tensor; vector GIN networks on the CPU compute loss and gradient in
one compiled kernel (:mod:`ginmi.fused`). The function computed is unchanged.

Robustness: with ``checkpoint_dir`` a checkpoint (model, optimizer, schedule position, epoch,
step, RNG states, history) is written atomically every ``checkpoint_every`` epochs (at most once
per ``checkpoint_seconds``) and after the last, and
``resume=True`` continues from it exactly. A non-finite loss, gradient or parameter stops
training with :class:`DivergenceError` naming the step, and the last good checkpoint is kept.

Several independent models (trials with different seeds) train together with :func:`train_many`:
in parallel threads with the fused step, else vectorised over stacked parameters.

Example:
    >>> import torch
    >>> from ginmi.model import GINModel
    >>> from ginmi.training import TrainConfig, train
    >>> model = GINModel({"name": "vector", "dim": 4, "width": 8}, n_classes=2)
    >>> x, u = torch.randn(64, 4), torch.arange(64) % 2
    >>> history = train(model, x, u, TrainConfig(epochs=2, batch_size=16), progress=False)
    >>> len(history["epoch_loss"])
    2
"""

from __future__ import annotations

import copy
import functools
import math
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ginmi import distributed as dist
from ginmi._platform import usable_cores
from ginmi.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from ginmi.config import option
from ginmi.flows import AffineCoupling, Permutation, declared_backends
from ginmi.fused import FlatAdam, FlatParameters, FusedStep, FusedStepUnavailable, FusedStepWarning, unsupported_reason
from ginmi.fused import supports as fused_supports
from ginmi.model import GINModel, class_statistics, gaussian_nll, prepare_inputs

__all__ = [
    "TrainConfig",
    "DivergenceError",
    "SmallDataWarning",
    "TrainingInterrupted",
    "check_resume",
    "resolve_device",
    "training_device",
    "cpu_threads",
    "fit_standardization",
    "fit_linear_stage",
    "lr_factor",
    "schedule_note",
    "train",
    "train_many",
    "evaluate_loss",
]


@dataclass
class TrainConfig:
    """Optimisation settings; defaults are the paper's (Adam, lr 1e-2, batch 240, decay by 0.1)."""

    epochs: int | None = option(
        None,
        "training epochs; none (default): the paper's 60, or more on small data so "
        "that training takes at least --min-steps optimiser steps",
    )
    batch_size: int = option(
        240,
        "batch size (the paper's 240); with --epochs none capped on small data so that an "
        "epoch has at least --min-batches batches; under torchrun the global batch over all "
        "processes",
    )
    min_steps: int = option(
        2000,
        "with --epochs none: train at least this many optimiser steps (more epochs on "
        "small data; 10,000 samples at batch 240 already take 2,520 steps in 60 epochs)",
    )
    min_batches: int = option(
        8,
        "with --epochs none: cap --batch-size at the data size / this (but not below 32), "
        "so that small data get several batches per epoch (1: no cap)",
    )
    lr: float = option(1e-2, "initial Adam learning rate (the paper's 1e-2)")
    milestones: tuple[float, ...] = option(
        (0.5, 0.8),
        "epochs at which the learning rate is multiplied by --gamma; values < 1 are fractions of the "
        "run's epochs (--epochs, or those --epochs none chose)",
    )
    gamma: float = option(0.1, "learning-rate decay factor at each milestone (the paper's 0.1)")
    input_noise: float = option(1e-2, "std of Gaussian noise added to each training batch, as in the GIN reference")
    warmup_steps: int = option(100, "steps of linear learning-rate warm-up (0 disables)")
    grad_clip: float | None = option(10.0, "clip the gradient norm at this value (none disables)")
    weight_decay: float = option(0.0, "Adam weight decay")
    seed: int = option(0, "random seed of data, initialisation and batching")
    device: str = option(
        "auto",
        "torch device: auto (CUDA when available, but the CPU for networks the fused CPU "
        "step trains: the 10-D network trains 16x faster there than on an H200), cpu, cuda, cuda:1",
    )
    threads: int = option(
        0,
        "CPU threads of torch while training; 0: one thread for vector networks (their "
        "hundreds of tiny kernels only wait on each other with more; measured 5x faster on "
        "2 cores) and torch's default for images",
    )
    checkpoint_every: int = option(
        1, "write RUN/checkpoint.pt (atomically) every this many epochs and at the end (0: only at the end)"
    )
    checkpoint_seconds: float = option(
        30.0,
        "write a periodic checkpoint only if this many seconds passed since the last one (the final state is "
        "always written; a fast run then writes once); 0: every --checkpoint-every epochs",
    )
    resume: bool = option(
        False,
        "continue from RUN/checkpoint.pt of the same --out folder (same options), exactly "
        "(also after Ctrl-C, which saves the state at the step it stopped)",
    )
    overwrite: bool = option(
        False,
        "replace the ginmi run folder --out if it is not empty (its files are deleted "
        "first); without it (or --resume) a non-empty --out is refused",
    )
    fused: bool = option(
        True,
        "train vector GIN networks on the CPU with the fused compiled step (ginmi.fused: the "
        "same loss and gradient as autograd in one numba kernel, about 6x faster); --no-fused "
        "uses autograd",
    )

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "min_batches"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise ValueError(f"`{name}` must be positive, got {getattr(self, name)}")
        if self.min_steps < 0:
            raise ValueError(f"`min_steps` must be >= 0, got {self.min_steps}")
        if self.warmup_steps < 0:
            raise ValueError(f"`warmup_steps` must be >= 0, got {self.warmup_steps}")
        if not self.gamma > 0:
            raise ValueError(f"`gamma` must be positive, got {self.gamma}")
        if self.input_noise < 0 or self.weight_decay < 0:
            raise ValueError(
                f"`input_noise` and `weight_decay` must be >= 0, got {self.input_noise}, {self.weight_decay}"
            )
        if any(not m > 0 for m in self.milestones):
            raise ValueError(f"`milestones` must be positive (fractions < 1 or epoch numbers), got {self.milestones}")
        if not self.lr > 0:
            raise ValueError(f"`lr` must be positive, got {self.lr}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"`grad_clip` must be positive or None, got {self.grad_clip}")
        if self.checkpoint_every < 0:
            raise ValueError(f"`checkpoint_every` must be >= 0, got {self.checkpoint_every}")
        if not self.checkpoint_seconds >= 0:
            raise ValueError(f"`checkpoint_seconds` must be >= 0, got {self.checkpoint_seconds}")
        if self.seed < 0 or self.threads < 0:
            raise ValueError(f"`seed` and `threads` must be >= 0, got {self.seed}, {self.threads}")
        if self.resume and self.overwrite:
            raise ValueError(
                "`resume` continues the run in the output folder, `overwrite` deletes it: give one of them"
            )
        if self.device != "auto":
            try:
                torch.device(self.device)
            except (RuntimeError, ValueError):
                raise ValueError(f"unknown device {self.device!r}; use auto, cpu, cuda or cuda:N") from None

    def batch_size_for(self, n_samples: int) -> int:
        """The batch size on ``n_samples``: ``batch_size``; with ``epochs=None`` capped so that an
        epoch has at least ``min_batches`` batches, but not below 32 samples (batch statistics need
        several samples of every class), and evened out over the batches of an epoch."""
        cap = max(min(MIN_AUTO_BATCH, n_samples), math.ceil(n_samples / self.min_batches))
        if self.epochs is not None or self.batch_size <= cap:
            return self.batch_size
        return math.ceil(n_samples / math.ceil(n_samples / cap))

    def epochs_for(self, steps_per_epoch: int) -> int:
        """Epochs of the run: ``epochs`` if given, else the paper's 60 or as many more as ``min_steps`` needs."""
        if self.epochs is not None:
            return self.epochs
        return max(DEFAULT_EPOCHS, math.ceil(self.min_steps / max(1, steps_per_epoch)))

    def milestone_epochs(self, steps_per_epoch: int | None = None) -> list[int]:
        """Milestones given as fractions of the run (< 1) or as epoch numbers (>= 1)."""
        epochs = self.epochs_for(steps_per_epoch or 1)
        return sorted({int(round(m * epochs)) if m < 1 else int(m) for m in self.milestones})


DEFAULT_EPOCHS = 60  # the paper's; more with --epochs none on small data (TrainConfig.min_steps)
MIN_AUTO_BATCH = 32  # the smallest batch the small-data cap (TrainConfig.min_batches) makes


def schedule_note(
    config: TrainConfig, n_samples: int, n_parameters: int | None = None, n_features: int = 1
) -> str | None:
    """A one-line note when ``n_samples`` (of ``n_features`` each) are few for the training settings, or
    fewer numbers than the model has parameters, else None."""
    batch = config.batch_size_for(n_samples)
    steps = math.ceil(n_samples / batch)
    epochs = config.epochs_for(steps)
    notes = []
    if batch < config.batch_size or epochs > DEFAULT_EPOCHS and config.epochs is None:
        notes.append(
            f"{n_samples} samples: training {_count(epochs, 'epoch')} of {_count(steps, 'batch', 'batches')} of {batch} "
            f"({epochs * steps} optimiser steps)"
        )
    elif epochs * steps < 500:
        notes.append(
            f"only {_count(epochs * steps, 'optimiser step')} ({_count(epochs, 'epoch')} of {_count(steps, 'batch', 'batches')}); "
            f"`epochs`=None trains at least `min_steps`={config.min_steps}"
        )
    if n_parameters is not None and n_parameters > n_samples * n_features:
        notes.append(
            f"the model has {n_parameters} parameters for {n_samples * n_features} numbers "
            f"({n_samples} samples x {n_features} features) and may overfit "
            "(a smaller model: fewer blocks, `n_blocks`, or a smaller `width`)"
        )
    return "; ".join(notes) or None


def _count(n: int, noun: str, plural: str | None = None) -> str:
    """``"1 epoch"``, ``"3 epochs"``; ``plural`` where it is not ``noun + "s"`` (``"batches"``)."""
    return f"{n} {noun}" if n == 1 else f"{n} {plural or noun + 's'}"


# options that may differ between an interrupted run and its resumption
RESUME_FREE_OPTIONS = ("resume", "overwrite", "checkpoint_every", "checkpoint_seconds", "device", "fused")


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss, gradient or parameter."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`train` with a checkpoint folder: the state at the last finished step is
    saved, and ``resume=True`` continues from it exactly."""

    def __init__(self, checkpoint: Path | None, epoch: int, epochs: int, step: int) -> None:
        self.checkpoint, self._args = checkpoint, (checkpoint, epoch, epochs, step)
        super().__init__(
            f"interrupted in epoch {epoch + 1}/{epochs} after {step} steps; the state is saved in "
            f"{checkpoint}: continue with `resume`=True and the same options"
        )

    def __reduce__(self) -> tuple[Any, ...]:  # picklable, so that a worker process can report it
        return type(self), self._args


_STOP_THREADS = threading.Event()  # set by Ctrl-C while train_many trains in threads


class _InterruptFlag:
    """While enabled (main thread only), the first SIGINT only sets :attr:`raised` (the trainer stops
    at the next step boundary; with ``event``, that event is set too); a second one interrupts at once.
    Trainers in other threads see :data:`_STOP_THREADS`."""

    def __init__(self, enabled: bool, event: threading.Event | None = None) -> None:
        import signal

        self._raised = False
        self._event = event
        self._previous = None
        if enabled and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)

    @property
    def raised(self) -> bool:
        return self._raised or (threading.current_thread() is not threading.main_thread() and _STOP_THREADS.is_set())

    def _handle(self, signum: int, frame: Any) -> None:
        if self._raised:
            raise KeyboardInterrupt
        self._raised = True
        if self._event is not None:
            self._event.set()

    def restore(self) -> None:
        import signal

        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


def check_resume(config: TrainConfig, checkpoint_dir: str | os.PathLike) -> None:
    """With ``config.resume``, refuse (ValueError) a checkpoint in ``checkpoint_dir`` written with other
    training options; call it before writing anything into the folder."""
    path = Path(checkpoint_dir) / CHECKPOINT_NAME
    if config.resume and path.is_file():
        _check_fingerprint(load_checkpoint(path), config, path)


def _check_fingerprint(state: dict[str, Any], config: TrainConfig, path: Path | None) -> None:
    if state["config"] != _config_fingerprint(config):
        diff = sorted(
            k
            for k in set(state["config"]) | set(_config_fingerprint(config))
            if state["config"].get(k) != _config_fingerprint(config).get(k)
        )
        raise ValueError(
            f"cannot resume from {path}: it was written with other training options "
            f"({', '.join(diff)}); use the same options or another checkpoint folder"
        )


class SmallDataWarning(UserWarning):
    """The data are small for the model or the training settings (see :func:`schedule_note`);
    the command line prints it as one line ``ginmi: note: ...``."""


def resolve_device(device: str, model: nn.Module | None = None) -> torch.device:
    """``"auto"`` picks CUDA when available, else CPU; anything else is passed to ``torch.device``.

    Given the ``model`` to train with the fused step allowed, ``"auto"`` picks the CPU for a
    model :mod:`ginmi.fused` supports: such tiny networks are bound by kernel launches on a GPU
    (the 10-D network: about 70 steps/s on an H200 against about 1,000 on one CPU core).
    """
    if device == "auto":
        if model is not None and fused_supports(model):
            return torch.device("cpu")
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but CUDA is not available here; use `device`='cpu'")
    return dev


def training_device(config: TrainConfig, model: nn.Module) -> torch.device:
    """The device :func:`train` trains ``model`` on with ``config``: the process group's under
    ``torchrun``, else :func:`resolve_device` (whose ``"auto"`` keeps fused-step networks on the CPU)."""
    ctx = dist.init_from_env(config.device)
    return ctx.device if ctx.world_size > 1 else resolve_device(config.device, model if config.fused else None)


def fit_linear_stage(
    model: GINModel, x: Tensor, u: Tensor, *, restarts: int = 2, seed: int = 0, min_gain: float = 0.01
) -> float:
    """Fit the model's fixed volume-preserving linear stage to ``(x, u)`` before training the flow.

    The stage ``L`` (``|det L| = 1``) maximises the likelihood of Eq. 5 for ``w = L h`` (``h``: the
    standardised data) with the best class statistics, i.e. minimises
    ``sum_c p_c sum_i log std_c((L h)_i)``. That only needs the class covariances of ``h``, so the
    fit is cheap: L-BFGS from the identity and ``restarts - 1`` random rotations, the best kept
    (a rotation's result only if clearly better than the identity's). The stage stays the identity
    unless it lowers the objective by at least ``min_gain`` nats per dim: where the class covariances
    are all alike the optimum is not unique (any rotation of a whitening), and the fit would only
    chase sampling noise (measured gains: 0.002 there, 0.1-0.4 on mixed data).
    A GIN flow with fixed permutations undoes a rotation of the latents only through many
    coupling layers and gets stuck in solutions that spread the label information over several
    dims (measured: recovery 0.85-0.89 on rotated data, 0.98-0.99 with this stage first).
    Returns the profile negative log-likelihood per dimension reached (without constants).
    """
    if model.linear is None:
        raise ValueError("this model has no linear stage; build it with linear_stage=True")
    with torch.no_grad():
        h = prepare_inputs(x.reshape(len(x), -1).double(), model.shift.double(), model.scale.double()).cpu()
    # heavy tails must not dominate the class covariances: clip each feature to its 1%-99% range
    low, high = torch.quantile(h, torch.tensor([0.01, 0.99], dtype=h.dtype), dim=0)
    h = torch.minimum(torch.maximum(h, low), high)
    onehot = torch.nn.functional.one_hot(u.cpu(), model.n_classes).double()
    counts = onehot.sum(0)
    present = counts > 1
    mean = onehot.T @ h / counts.clamp_min(1)[:, None]
    centred = h - mean[u.cpu()]
    cov = torch.einsum("nc,ni,nj->cij", onehot, centred, centred)[present] / counts[present, None, None]
    cov = cov + 1e-9 * torch.eye(h.shape[1], dtype=h.dtype) * cov.diagonal(dim1=1, dim2=2).mean()
    weights = counts[present] / counts[present].sum()
    dim = h.shape[1]

    def objective(m: Tensor) -> Tensor:
        var = ((m @ cov) * m).sum(-1)  # (classes, dims): l_i^T cov_c l_i
        return ((weights[:, None] * 0.5 * torch.log(var)).sum() - torch.linalg.slogdet(m)[1]) / dim

    generator = torch.Generator().manual_seed(int(seed) + 0x11E)
    with torch.no_grad():
        identity = (float(objective(torch.eye(dim, dtype=h.dtype))), torch.eye(dim, dtype=h.dtype))
    best: tuple[float, Tensor] | None = None
    for k in range(restarts):
        start = torch.eye(dim, dtype=h.dtype)
        if k > 0:
            q, r = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=h.dtype))
            start = q * torch.sign(torch.diagonal(r))
        flat = start.reshape(-1).clone().requires_grad_(True)  # L-BFGS wants a flat, contiguous gradient
        opt = torch.optim.LBFGS([flat], max_iter=200, line_search_fn="strong_wolfe", tolerance_grad=1e-9)

        def closure(opt: torch.optim.LBFGS = opt, flat: Tensor = flat) -> Tensor:  # this restart's
            opt.zero_grad()
            value = objective(flat.view(dim, dim))
            value.backward()
            return value

        opt.step(closure)
        with torch.no_grad():
            value = float(objective(flat.view(dim, dim)))
        # a restart must be clearly better: where the optimum is not unique (classes of equal covariance)
        # the solution nearest the identity is kept instead of an arbitrary rotation of it
        if math.isfinite(value) and (best is None or value < best[0] - 1e-3):
            best = (value, flat.detach().view(dim, dim).clone())
    if best is None or not best[0] < identity[0] - min_gain:
        best = identity
    model.set_linear_stage(best[1].to(model.linear.dtype))
    return best[0]


def fit_standardization(model: GINModel, x: Tensor) -> None:
    """Fit the model's fixed input standardisation to ``x`` (vector data only).

    Shift by the median and scale by a robust spread (the larger of 1.4826 * MAD and the
    interquartile-based spread), so heavy tails do not dominate the scale.
    """
    flat = x.reshape(x.shape[0], -1).double()
    median = flat.median(0).values
    mad = (flat - median).abs().median(0).values * 1.4826
    q = torch.quantile(flat, torch.tensor([0.25, 0.75], dtype=flat.dtype), dim=0)
    spread = torch.maximum(mad, (q[1] - q[0]) / 1.349)
    spread = torch.where(spread > 0, spread, flat.std(0).clamp_min(1e-12))
    model.set_standardization(median.float(), spread.float())


def lr_factor(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Learning-rate multiplier at ``step``: linear warm-up, then ``gamma`` per milestone passed.

    The schedule is defined in optimiser steps: a milestone at a fraction ``m`` of the run is
    passed at step ``round(m * epochs) * steps_per_epoch``; the warm-up lasts ``warmup_steps``
    but at most half the run, so that short runs still reach the full learning rate.
    """
    return _LRSchedule(config, steps_per_epoch)(step)


class _LRSchedule:
    """:func:`lr_factor` with the milestones computed once (it runs every step)."""

    def __init__(self, config: TrainConfig, steps_per_epoch: int) -> None:
        self.epochs = config.epochs_for(steps_per_epoch)
        self.total_steps = self.epochs * steps_per_epoch
        self.warmup = min(config.warmup_steps, max(1, self.total_steps // 2))
        self.gamma = config.gamma
        self.milestones = [m * steps_per_epoch for m in config.milestone_epochs(steps_per_epoch)]

    def __call__(self, step: int) -> float:
        warmup = min(1.0, (step + 1) / self.warmup) if self.warmup > 0 else 1.0
        return warmup * self.gamma ** sum(step >= m for m in self.milestones)


_FALLBACKS_SAID: set[str] = set()  # reasons already given for training a vector model with autograd


def _autograd_fallback(model: GINModel, why: str) -> None:
    """Say once per reason that a vector model on the CPU trains with autograd instead of the fused step."""
    if len(model.input_shape) == 1 and why not in _FALLBACKS_SAID:
        _FALLBACKS_SAID.add(why)
        warnings.warn(f"{why}; training with autograd, about 6x slower", FusedStepWarning, stacklevel=3)


def _fused_step(
    model: GINModel, flat: FlatParameters | None, config: TrainConfig, device: torch.device
) -> FusedStep | None:
    """The fused step of ``model`` where ``config`` asks for it and the model allows it, else None (autograd)."""
    if flat is None or not config.fused or device.type != "cpu":
        return None
    try:
        return FusedStep(model, flat.flat.data, flat.grad)
    except FusedStepUnavailable as why:
        _autograd_fallback(model, str(why))
        return None


def _adam(params: Sequence[Tensor], config: TrainConfig) -> torch.optim.Adam:
    """Adam with the fused kernel where this torch build has it, else the multi-tensor one."""
    try:
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay, foreach=True)


def _generators(seed: int, device: torch.device) -> tuple[torch.Generator, torch.Generator]:
    """Private RNGs of one run: batch order (CPU) and input noise (on the data's device)."""
    order = torch.Generator().manual_seed(int(seed))
    noise = torch.Generator(device=device).manual_seed(int(seed) + 0x5EED)
    return order, noise


def _epoch_data(
    x: Tensor, u: Tensor, config: TrainConfig, order: torch.Generator, noise: torch.Generator
) -> tuple[Tensor, Tensor]:
    """The epoch's shuffled copy of the data, input noise included: one gather and one draw."""
    perm = torch.randperm(len(x), generator=order).to(x.device)
    xe, ue = x.index_select(0, perm), u.index_select(0, perm)
    if config.input_noise > 0:
        xe.add_(torch.randn(xe.shape, generator=noise, device=x.device, dtype=x.dtype), alpha=config.input_noise)
    return xe, ue


def _skipped_batches(model: GINModel, ue: Tensor, batch_size: int) -> list[bool]:
    """With batch statistics, batches in which a class has fewer than 2 samples (std undefined)."""
    if model.stats != "batch":
        return [False] * math.ceil(len(ue) / batch_size)
    batch = torch.arange(len(ue), device=ue.device) // batch_size
    counts = torch.zeros(int(batch[-1]) + 1, model.n_classes, dtype=torch.long, device=ue.device)
    counts.index_put_((batch, ue), torch.ones_like(ue), accumulate=True)
    return (counts.min(1).values < 2).tolist()


def _divergence(
    what: str, epoch: int, step: int, config: TrainConfig, checkpoint: Path | None, good_epoch: int | None
) -> DivergenceError:
    kept = (
        f"; the last good checkpoint (epoch {good_epoch}) is kept in {checkpoint}"
        if checkpoint is not None and good_epoch is not None
        else ""
    )
    return DivergenceError(
        f"non-finite {what} at step {step} (epoch {epoch}){kept}; lower the learning rate "
        f"(`lr`, now {config.lr:g}, e.g. `lr`={config.lr / 10:g}) or clip gradients (`grad_clip`)"
    )


def _config_fingerprint(config: TrainConfig) -> dict[str, Any]:
    from ginmi.config import flatten

    return {k: v for k, v in flatten(config).items() if k not in RESUME_FREE_OPTIONS}


def _clip_gradients(flat_grad: Tensor | None, params: list[nn.Parameter], max_norm: float | None) -> float:
    """Scale the gradient to norm ``<= max_norm`` and return its norm (0 when not clipping).

    ``flat_grad`` is the one-buffer gradient of a single process, else ``params`` are clipped."""
    if max_norm is None:
        return 0.0
    if flat_grad is None:
        return float(torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True))
    norm = torch.linalg.vector_norm(flat_grad)
    flat_grad.mul_(torch.clamp(max_norm / (norm + 1e-6), max=1.0))
    return float(norm)


def _check_inputs(model: GINModel, x: Tensor, u: Tensor) -> None:
    """Shapes and labels the model can train on (the fused kernel does not bounds-check indices)."""
    if tuple(x.shape[1:]) != tuple(model.input_shape):
        raise ValueError(
            f"the data have samples of shape {tuple(x.shape[1:])}, the model expects {tuple(model.input_shape)}"
        )
    if u.shape != (len(x),):
        raise ValueError(f"need one label per sample: {len(x)} samples, labels of shape {tuple(u.shape)}")
    if len(u) and (int(u.min()) < 0 or int(u.max()) >= model.n_classes):
        raise ValueError(
            f"labels must be class indices 0..{model.n_classes - 1}, got values {int(u.min())}..{int(u.max())}"
        )


@torch.no_grad()
def _batched_transform(model: GINModel, x: Tensor, batch_size: int = 4096) -> Tensor:
    return torch.cat([model.transform(xb) for xb in x.split(batch_size)])


@contextmanager
def cpu_threads(config: TrainConfig, model: GINModel) -> Iterator[None]:
    """Run the block with the torch CPU thread count that ``config.threads`` asks for."""
    n = config.threads or (1 if model.arch.get("name") == "vector" else torch.get_num_threads())
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _Run:
    """The state of one :func:`train` run and what a step, a checkpoint and a resume do to it:
    optimizer (fused step, flat buffer or, under ``torchrun``, DDP), schedule, private RNGs, step
    count, loss history, and the epochs reached and safely checkpointed (for error messages)."""

    def __init__(
        self,
        model: GINModel,
        n_samples: int,
        config: TrainConfig,
        ctx: dist.DistContext,
        device: torch.device,
        checkpoint: Path | None,
    ) -> None:
        self.model, self.config, self.ctx, self.checkpoint = model, config, ctx, checkpoint
        self.order_gen, self.noise_gen = _generators(config.seed, device)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.flat = FlatParameters(self.params) if ctx.world_size == 1 else None
        self.fused = _fused_step(model, self.flat, config, device)
        self.optimizer: FlatAdam | torch.optim.Adam
        if self.fused is not None and self.flat is not None:
            self.optimizer = FlatAdam(self.flat.flat, self.flat.grad, lr=config.lr, weight_decay=config.weight_decay)
        else:
            self.optimizer = _adam([self.flat.flat] if self.flat is not None else self.params, config)
        self.batch_size = config.batch_size_for(n_samples)
        self.schedule = _LRSchedule(config, math.ceil(n_samples / self.batch_size))
        self.objective = dist.wrap_objective(model, ctx) if ctx.world_size > 1 else None
        self.history: dict[str, list[float]] = {"step_loss": [], "epoch_loss": [], "epoch_seconds": []}
        self.step, self.epoch, self.good_epoch = 0, 0, cast(int | None, None)

    def rng_state(self) -> tuple[Tensor, Tensor]:
        return self.order_gen.get_state(), self.noise_gen.get_state()

    def resume(self) -> tuple[int, int, list[float]]:
        """Continue from the checkpoint where there is one (rank 0 reads it, the others receive it: they need
        no access to the folder); returns the epoch to start at, the batches of it already done and their losses."""
        state = None
        if self.checkpoint is not None:
            if self.ctx.rank == 0 and self.checkpoint.is_file():
                state = load_checkpoint(self.checkpoint)  # RNG states must stay on the CPU
            if self.ctx.world_size > 1:
                state = dist.broadcast_object(state)
        if state is None:
            return 0, 0, []
        _check_fingerprint(state, self.config, self.checkpoint)
        with torch.no_grad():
            try:
                self.model.load_state_dict(state["model"])
            except RuntimeError as err:  # missing, unexpected or differently shaped weights
                first = str(err).splitlines()[-1].strip()
                raise ValueError(
                    f"cannot resume from {self.checkpoint}: it holds a model of another architecture ({first}); "
                    "use the model options it was written with, or another checkpoint folder"
                ) from None
        self.optimizer.load_state_dict(state["optimizer"])
        self.order_gen.set_state(state["rng"]["order"])
        self.noise_gen.set_state(state["rng"]["noise"])
        torch.set_rng_state(state["rng"]["torch"])
        self.history = {k: list(v) for k, v in state["history"].items()}
        self.step, self.good_epoch = int(state["step"]), int(state["epoch"])
        return int(state["epoch"]), int(state.get("batch", 0)), list(state.get("partial_losses", []))

    def snapshot(
        self, epoch_done: int, rng: tuple[Tensor, Tensor], batch: int = 0, partial_losses: Sequence[float] = ()
    ) -> dict[str, Any]:
        """The checkpoint: after ``epoch_done`` epochs and ``batch`` batches of the next (an interrupt)."""
        return {
            "model": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": {"step": self.step, "lr": self.optimizer.param_groups[0]["lr"]},
            "epoch": epoch_done,
            "step": self.step,
            "batch": batch,
            "partial_losses": list(partial_losses),
            "rng": {"order": rng[0], "noise": rng[1].cpu(), "torch": torch.get_rng_state()},
            "history": self.history,
            "config": _config_fingerprint(self.config),
        }

    def diverged(self, what: str, step: int) -> DivergenceError:
        return _divergence(what, self.epoch + 1, step, self.config, self.checkpoint, self.good_epoch)

    def _loss_and_gradient(self, xb: Tensor, ub: Tensor) -> float:
        """The batch's loss, its gradient left in the parameters' ``.grad``."""
        if self.fused is not None:
            return self.fused(xb, ub)
        if self.objective is None:
            assert self.flat is not None  # one process: the parameters live in the flat buffer
            loss = self.model.loss(xb, ub)
            self.flat.grad.zero_()
            loss.backward()
            return loss.item()
        assert isinstance(self.optimizer, torch.optim.Adam)  # several processes: torch's Adam
        self.optimizer.zero_grad(set_to_none=True)
        loss, value = self.objective(xb, ub)
        loss.backward()
        return value

    def optimise(self, xb: Tensor, ub: Tensor) -> float:
        """One optimizer step on the batch (schedule, clipping, Adam); returns its loss."""
        value = self._loss_and_gradient(xb, ub)
        if not math.isfinite(value):
            raise self.diverged("loss", self.step + 1)
        self.optimizer.param_groups[0]["lr"] = self.config.lr * self.schedule(self.step)
        self.step += 1
        if isinstance(self.optimizer, FlatAdam):  # clipping and update in one kernel
            norm = self.optimizer.step(self.config.grad_clip)
        else:
            norm = _clip_gradients(
                self.flat.grad if self.flat is not None else None, self.params, self.config.grad_clip
            )
            if math.isfinite(norm):
                self.optimizer.step()
        if not math.isfinite(norm):
            raise self.diverged("gradient", self.step)
        return value

    def parameters_finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for p in ([self.flat.flat] if self.flat is not None else self.params))


def train(
    model: GINModel,
    x: Tensor,
    u: Tensor,
    config: TrainConfig,
    *,
    progress: bool = True,
    on_epoch: Callable[[int, float], None] | None = None,
    on_step: Callable[[int, float], None] | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
) -> dict[str, list[float]]:
    """Train ``model`` in place on ``(x, u)`` and return the loss history.

    ``u`` holds class indices ``0..n_classes-1``. With batch statistics, batches in which a
    class has fewer than 2 samples are skipped (their std is undefined), as in the reference.
    ``on_step(step, loss)`` is called after every optimizer step (``step`` counts from 1) and
    ``on_epoch(epoch, loss)`` after every epoch (``epoch`` counts from 0), on the main process.
    With ``checkpoint_dir``, ``checkpoint.pt`` is written there (see :class:`TrainConfig`);
    with ``config.resume`` training continues from it when it exists.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) the model is trained data-parallel with
    ``DistributedDataParallel``: every process draws the same global batch and takes its share,
    so the result equals one process with the same ``batch_size``.
    """
    _check_inputs(model, x, u)
    with cpu_threads(config, model):
        ctx = dist.init_from_env(config.device)
        device = training_device(config, model)
        torch.manual_seed(config.seed)
        model.to(device).train()
        x, u = x.to(device), u.to(device)
        ckpt_path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None
        run = _Run(model, len(x), config, ctx, device, ckpt_path)
        start_epoch, skip_batches, partial = run.resume() if config.resume else (0, 0, [])
        epochs, main = run.schedule.epochs, ctx.rank == 0
        bar = tqdm(
            range(start_epoch, epochs),
            desc="training",
            unit="epoch",
            disable=not (progress and main),
            leave=False,
            initial=start_epoch,
            total=epochs,
        )
        last_save = time.perf_counter()
        autotune = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = autotune or device.type == "cuda"  # fixed shapes: let cuDNN pick its kernels
        stop = _InterruptFlag(enabled=ckpt_path is not None and ctx.world_size == 1)  # in threads: _STOP_THREADS
        try:
            for epoch in bar:
                run.epoch, t0, losses = epoch, time.perf_counter(), partial
                epoch_rng = run.rng_state()
                xe, ue = _epoch_data(x, u, config, run.order_gen, run.noise_gen)
                skipped = _skipped_batches(model, ue, run.batch_size)
                for i, (xb, ub) in enumerate(zip(xe.split(run.batch_size), ue.split(run.batch_size))):
                    if stop.raised:  # Ctrl-C: checkpoint at this step boundary, then stop
                        if ckpt_path is None:
                            raise KeyboardInterrupt
                        if main:
                            save_checkpoint(ckpt_path, run.snapshot(epoch, epoch_rng, batch=i, partial_losses=losses))
                        raise TrainingInterrupted(ckpt_path, epoch, epochs, run.step)
                    if skipped[i] or i < skip_batches:
                        continue
                    value = run.optimise(xb, ub)
                    losses.append(value)
                    if on_step is not None and main:
                        on_step(run.step, value)
                skip_batches, partial = 0, []
                if not run.parameters_finite():
                    raise run.diverged("parameter", run.step)
                epoch_loss = float(np.mean(losses)) if losses else math.nan
                run.history["step_loss"].extend(losses)
                run.history["epoch_loss"].append(epoch_loss)
                run.history["epoch_seconds"].append(time.perf_counter() - t0)
                bar.set_postfix(loss=f"{epoch_loss:.4f}")
                every = config.checkpoint_every
                due = (
                    every > 0
                    and (epoch + 1) % every == 0
                    and time.perf_counter() - last_save >= config.checkpoint_seconds
                )
                if ckpt_path is not None and (epoch + 1 == epochs or due):
                    last_save = time.perf_counter()
                    if main:
                        save_checkpoint(ckpt_path, run.snapshot(epoch + 1, run.rng_state()))
                    run.good_epoch = epoch + 1
                if on_epoch is not None and main:
                    on_epoch(epoch, epoch_loss)
            if stop.raised:  # Ctrl-C during the last step: training is done and saved, but stop as asked
                raise TrainingInterrupted(ckpt_path, epochs - 1, epochs, run.step) if ckpt_path else KeyboardInterrupt()
        finally:
            stop.restore()
            torch.backends.cudnn.benchmark = autotune
            if run.flat is not None:
                run.flat.unpack()
            bar.close()
        model.eval()
        if model.stats == "batch":
            with torch.no_grad():
                model.set_class_statistics(_batched_transform(model, x), u)
        return run.history


def train_many(
    models: Sequence[GINModel],
    xs: Sequence[Tensor] | Tensor,
    us: Sequence[Tensor] | Tensor,
    config: TrainConfig,
    *,
    seeds: Sequence[int] | None = None,
    progress: bool = True,
    checkpoint_dirs: Sequence[str | os.PathLike | None] | None = None,
    callbacks: Sequence[dict[str, Callable[[int, float], None]]] | None = None,
) -> list[dict[str, list[float]]]:
    """Train several independent models of one architecture at once, each on its own data.

    Model ``k`` follows :func:`train` with ``seed = seeds[k]`` (default ``config.seed + k``): same
    batch order, input noise, Adam state, clipping (per model) and schedule. Models that the fused
    CPU step supports (:mod:`ginmi.fused`, whose kernels release the GIL) are trained by
    :func:`train` itself in parallel threads, ``config.threads`` of them (0: one per CPU core), so
    each equals its own ``train`` run exactly. Others are stacked and one step updates all of
    them (``baddbmm`` over stacked weights where the blocks declare the stacked step, else one
    ``functional_call`` per model), equal to ``train`` up to rounding. All data sets must have the same size.
    Returns one history per model.

    In the threads, model ``k`` gets ``checkpoint_dirs[k]`` and the callbacks ``callbacks[k]``
    (``on_step``, ``on_epoch``) of :func:`train`, so it writes (and with ``config.resume`` reads)
    its own checkpoint; Ctrl-C stops every thread at its next step, each saving its checkpoint,
    and raises :class:`TrainingInterrupted`. The stacked path takes neither.
    """
    with cpu_threads(config, models[0]):
        from torch.func import stack_module_state

        n_models = len(models)
        if n_models == 0:
            raise ValueError("train_many needs at least one model")
        if len(xs) != n_models or len(us) != n_models:
            raise ValueError(f"{n_models} models but {len(xs)} data sets and {len(us)} label sets")
        sizes = {len(x) for x in xs}
        if len(sizes) != 1:
            raise ValueError(f"train_many needs data sets of equal size, got sizes {sorted(sizes)}")

        def shape_of(m: GINModel) -> tuple[Any, ...]:
            return {k: v for k, v in m.arch.items() if k != "seed"}, m.stats, m.n_classes

        if any(shape_of(m) != shape_of(models[0]) for m in models):
            raise ValueError("train_many needs models of the same architecture and statistics")
        seeds = list(seeds) if seeds is not None else [config.seed + k for k in range(n_models)]
        device = resolve_device(config.device, models[0] if config.fused else None)
        if device.type == "cpu" and config.fused:
            why = next(filter(None, (unsupported_reason(m.cpu()) for m in models)), None)
            if why is None:
                return _train_in_threads(models, xs, us, config, seeds, progress, checkpoint_dirs, callbacks)
            _autograd_fallback(models[0], why)
        torch.manual_seed(seeds[0])
        for m in models:
            m.to(device).train()
        x_all = torch.stack([torch.as_tensor(x) for x in xs]).to(device)
        u_all = torch.stack([torch.as_tensor(u) for u in us]).to(device)
        n = x_all.shape[1]
        params, buffers = stack_module_state(list(models))
        trainable = {k: v for k, v in params.items() if dict(models[0].named_parameters())[k].requires_grad}
        frozen = {k: v.detach() for k, v in params.items() if k not in trainable}
        names = list(trainable)
        leaves = [nn.Parameter(trainable[k].detach().clone()) for k in names]
        batched_loss = _stacked_objective(models[0])
        flat = FlatParameters(leaves, n_models)
        grads = flat.grad
        stacked = dict(zip(names, leaves)) | frozen
        optimizer = _adam([flat.flat], config)
        batch_size = config.batch_size_for(n)
        schedule = _LRSchedule(config, math.ceil(n / batch_size))
        gens = [_generators(s, device) for s in seeds]
        histories: list[dict[str, list[float]]] = [
            {"step_loss": [], "epoch_loss": [], "epoch_seconds": []} for _ in models
        ]
        bar = tqdm(
            range(schedule.epochs), desc=f"training {n_models} models", unit="epoch", disable=not progress, leave=False
        )
        step = 0
        for epoch in bar:
            t0 = time.perf_counter()
            epoch_data = [_epoch_data(x_all[k], u_all[k], config, *gens[k]) for k in range(n_models)]
            xe = torch.stack([d[0] for d in epoch_data])
            ue = torch.stack([d[1] for d in epoch_data])
            skipped = [_skipped_batches(models[k], ue[k], batch_size) for k in range(n_models)]
            if any(any(s) != any(skipped[0]) or s != skipped[0] for s in skipped):
                raise ValueError(
                    "with batch statistics, train_many needs the same batches skipped in every model; "
                    "train these models one by one with train()"
                )
            losses = []
            for i, (xb, ub) in enumerate(zip(xe.split(batch_size, 1), ue.split(batch_size, 1))):
                if skipped[0][i]:
                    continue
                grads.zero_()
                optimizer.param_groups[0]["lr"] = config.lr * schedule(step)
                loss = batched_loss(stacked, buffers, xb, ub)
                with warnings.catch_warnings():  # stacked grads are strided views of the flat buffer, by design
                    warnings.filterwarnings("ignore", message="grad and param do not obey")
                    loss.sum().backward()
                step += 1
                value = loss.detach()
                if not torch.isfinite(value).all():
                    bad = int(torch.nonzero(~torch.isfinite(value))[0])
                    raise _divergence(f"loss of model {bad}", epoch + 1, step, config, None, None)
                if config.grad_clip is not None:
                    norms = torch.linalg.vector_norm(grads, dim=1, keepdim=True)  # one norm per model
                    grads.mul_(torch.clamp(config.grad_clip / (norms + 1e-6), max=1.0))
                optimizer.step()
                losses.append(value)
            seconds = time.perf_counter() - t0
            table = torch.stack(losses).T.tolist() if losses else [[] for _ in models]
            for k, h in enumerate(histories):
                h["step_loss"].extend(table[k])
                h["epoch_loss"].append(float(np.mean(table[k])) if table[k] else math.nan)
                h["epoch_seconds"].append(seconds)
        with torch.no_grad():
            for k, m in enumerate(models):
                for name, p in zip(names, leaves):
                    dict(m.named_parameters())[name].copy_(p[k])
                if not all(bool(torch.isfinite(p).all()) for p in m.parameters()):
                    raise _divergence(f"parameter of model {k}", schedule.epochs, step, config, None, None)
                m.eval()
                if m.stats == "batch":
                    m.set_class_statistics(_batched_transform(m, x_all[k]), u_all[k])
        return histories


def _train_in_threads(
    models: Sequence[GINModel],
    xs: Sequence[Tensor] | Tensor,
    us: Sequence[Tensor] | Tensor,
    config: TrainConfig,
    seeds: Sequence[int],
    progress: bool,
    checkpoint_dirs: Sequence[str | os.PathLike | None] | None = None,
    callbacks: Sequence[dict[str, Any]] | None = None,
) -> list[dict[str, list[float]]]:
    """:func:`train` of every model in a pool of threads (the fused kernels run without the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    workers = min(len(models), config.threads or usable_cores())
    dirs = list(checkpoint_dirs) if checkpoint_dirs is not None else [None] * len(models)
    hooks = list(callbacks) if callbacks is not None else [{}] * len(models)

    def one(k: int) -> dict[str, list[float]]:
        return train(
            models[k],
            torch.as_tensor(xs[k]),
            torch.as_tensor(us[k]),
            replace(config, seed=seeds[k]),
            progress=False,
            checkpoint_dir=dirs[k],
            **hooks[k],
        )

    flag = _InterruptFlag(enabled=True, event=_STOP_THREADS)  # Ctrl-C: every thread stops at its next step
    try:
        with ThreadPoolExecutor(workers) as pool:
            jobs = pool.map(one, range(len(models)))
            return list(
                tqdm(
                    jobs,
                    total=len(models),
                    desc=f"training {len(models)} models",
                    unit="model",
                    disable=not progress,
                    leave=False,
                )
            )
    finally:
        flag.restore()
        _STOP_THREADS.clear()


StackedLoss = Callable[[dict[str, Tensor], dict[str, Tensor], Tensor, Tensor], Tensor]


def _stacked_objective(model: GINModel) -> StackedLoss:
    """``loss(params, buffers, x, u)`` of N stacked models of ``model``'s architecture (parameters and
    buffers with a leading model dimension, ``x`` of shape ``(N, B, ...)``): :func:`_stacked_loss`
    where every block declares the stacked step, else one ``functional_call`` per model (generic)."""
    if _stackable(model):
        return functools.partial(_stacked_loss, model)
    from torch.func import functional_call

    base = copy.deepcopy(model).to("meta")
    base.forward = base.loss  # type: ignore[method-assign,assignment]  # functional_call calls forward: the loss

    def loss(p: dict[str, Tensor], b: dict[str, Tensor], x: Tensor, u: Tensor) -> Tensor:
        return torch.stack(
            [
                functional_call(
                    base,
                    ({k: v[i] for k, v in p.items()}, {k: v[i] for k, v in b.items()}),
                    (x[i], u[i]),
                    strict=False,
                    tie_weights=False,
                )
                for i in range(len(x))
            ]
        )

    return loss


def _stackable(model: GINModel) -> bool:
    """Every block declares the stacked step (:func:`ginmi.flows.declared_backends`) and every coupling
    subnet is a Sequential of Linear and ReLU layers (exact types), as :func:`_stacked_loss` computes."""

    def plain(net: nn.Module) -> bool:
        return type(net) is nn.Sequential and all(type(m) in (nn.Linear, nn.ReLU) for m in net)

    blocks = getattr(model.flow, "blocks", None)
    return blocks is not None and all(
        "stacked" in declared_backends(b) and (type(b) is Permutation or plain(b.subnet1) and plain(b.subnet2))
        for b in blocks
    )


def _stacked_loss(model: GINModel, p: dict[str, Tensor], b: dict[str, Tensor], x: Tensor, u: Tensor) -> Tensor:
    """:meth:`GINModel.loss` of N stacked models at once: ``x`` is ``(N, B, dim)``, returns ``(N,)``.

    Each coupling runs its own :meth:`~ginmi.flows.AffineCoupling.couple` along dimension 2 with
    subnets batched over the models (``baddbmm`` over stacked weights); the loss is
    :func:`ginmi.model.gaussian_nll`.
    """

    def mlp(prefix: str, net: nn.Module) -> Callable[[Tensor], Tensor]:
        def run(h: Tensor) -> Tensor:
            for j, layer in enumerate(net.children()):
                if type(layer) is nn.Linear:
                    h = torch.baddbmm(p[f"{prefix}{j}.bias"][:, None, :], h, p[f"{prefix}{j}.weight"].transpose(1, 2))
                else:
                    h = torch.relu(h)
            return h

        return run

    h = prepare_inputs(x, b["shift"][:, None], b["scale"][:, None], b.get("linear"))
    log_det = None
    for i, block in enumerate(model.flow.blocks):
        pre = f"flow.blocks.{i}."
        if type(block) is Permutation:
            h = torch.take_along_dim(h, b[pre + "perm"][:, None, :], dim=2)
            continue
        coupling = cast(AffineCoupling, block)  # _stackable: every other block declares the stacked step
        h, ld = coupling.couple(
            h, mlp(pre + "subnet1.", coupling.subnet1), mlp(pre + "subnet2.", coupling.subnet2), dim=2
        )
        if ld is not None:
            log_det = ld if log_det is None else log_det + ld
    if model.stats == "trainable":
        rows = torch.arange(len(u), device=u.device)[:, None]
        nll = gaussian_nll(h, p["log_sigma"][rows, u], p["mu"][rows, u], log_det)
    else:
        log_std = torch.stack(
            [torch.log(class_statistics(h[k], u[k], model.n_classes)[1][u[k]]) for k in range(len(h))]
        )
        nll = gaussian_nll(h, log_std, None, log_det)
    return nll.mean(1)


@torch.no_grad()
def evaluate_loss(model: GINModel, x: Tensor, u: Tensor, batch_size: int = 4096) -> float:
    """Mean negative log-likelihood per dimension of ``(x, u)`` under the model's class statistics."""
    model.eval()
    device = next(model.parameters()).device
    total = 0.0
    for xb, ub in zip(x.split(batch_size), u.split(batch_size)):
        w, log_det = model.flow(model.prepare(xb.to(device)))
        ub = ub.to(device)
        total += float(gaussian_nll(w.reshape(len(w), -1), model.log_sigma[ub], model.mu[ub], log_det).sum())
    return total / len(x)
