"""Training of a :class:`~ginmi.model.GINModel` by maximum likelihood (paper Eq. 5).

One trainer serves vector and image data. Data already in memory are batched by index slices
of one shuffled permutation per epoch (no DataLoader overhead). Adam with a multi-step decay
by ``gamma``; small Gaussian input noise as in the GIN reference; optional gradient clipping and
learning-rate warm-up; a non-finite loss stops training with a message naming the step.

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

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from ginmi.config import option
from ginmi.model import GINModel

__all__ = ["TrainConfig", "DivergenceError", "resolve_device", "fit_standardization", "lr_factor", "train", "evaluate_loss"]


@dataclass
class TrainConfig:
    """Optimisation settings; defaults are the paper's (Adam, lr 1e-2, batch 240, decay by 0.1)."""

    epochs: int = option(60, "training epochs")
    batch_size: int = option(240, "batch size (the paper's 240)")
    lr: float = option(1e-2, "initial Adam learning rate (the paper's 1e-2)")
    milestones: tuple[float, ...] = option(
        (0.5, 0.8), "epochs at which the learning rate is multiplied by --gamma; values < 1 are fractions of --epochs"
    )
    gamma: float = option(0.1, "learning-rate decay factor at each milestone (the paper's 0.1)")
    input_noise: float = option(1e-2, "std of Gaussian noise added to each training batch, as in the GIN reference")
    warmup_steps: int = option(100, "steps of linear learning-rate warm-up (0 disables)")
    grad_clip: float | None = option(10.0, "clip the gradient norm at this value (none disables)")
    weight_decay: float = option(0.0, "Adam weight decay")
    seed: int = option(0, "random seed of data, initialisation and batching")
    device: str = option("auto", "torch device: auto (CUDA when available), cpu, cuda, cuda:1, ...")

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be positive or None, got {self.grad_clip}")

    def milestone_epochs(self) -> list[int]:
        """Milestones given as fractions of the run (< 1) or as epoch numbers (>= 1)."""
        return sorted({int(round(m * self.epochs)) if m < 1 else int(m) for m in self.milestones})


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss or parameter."""


def resolve_device(device: str) -> torch.device:
    """``"auto"`` picks CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but CUDA is not available here; use --device cpu")
    return dev


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
    """Learning-rate multiplier at ``step``: linear warm-up, then ``gamma`` per milestone passed."""
    warmup = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps > 0 else 1.0
    epoch = step // steps_per_epoch
    return warmup * config.gamma ** sum(epoch >= m for m in config.milestone_epochs())


def _batches(n: int, batch_size: int, generator: torch.Generator) -> list[Tensor]:
    perm = torch.randperm(n, generator=generator)
    return list(perm.split(batch_size))


def train(
    model: GINModel,
    x: Tensor,
    u: Tensor,
    config: TrainConfig,
    *,
    progress: bool = True,
    on_epoch: Callable[[int, float], None] | None = None,
) -> dict[str, list[float]]:
    """Train ``model`` in place on ``(x, u)`` and return the loss history.

    ``u`` holds class indices ``0..n_classes-1``. With batch statistics, batches in which a
    class has fewer than 2 samples are skipped (their std is undefined), as in the reference.
    """
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model.to(device).train()
    x, u = x.to(device), u.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(x) / config.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(config, s, steps_per_epoch))
    history: dict[str, list[float]] = {"step_loss": [], "epoch_loss": [], "epoch_seconds": []}
    step = 0
    bar = tqdm(range(config.epochs), desc="training", unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        t0, losses = time.perf_counter(), []
        for idx in _batches(len(x), config.batch_size, generator):
            xb, ub = x[idx], u[idx]
            if model.stats == "batch" and torch.bincount(ub, minlength=model.n_classes).min() < 2:
                continue
            if config.input_noise > 0:
                xb = xb + config.input_noise * torch.randn_like(xb)
            loss = model.loss(xb, ub)
            if not torch.isfinite(loss):
                raise DivergenceError(
                    f"non-finite loss at epoch {epoch + 1}, step {step + 1}; lower the learning rate "
                    f"(--lr, now {config.lr:g}) or enable gradient clipping (--grad-clip)"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            step += 1
        epoch_loss = float(np.mean(losses)) if losses else math.nan
        history["step_loss"].extend(losses)
        history["epoch_loss"].append(epoch_loss)
        history["epoch_seconds"].append(time.perf_counter() - t0)
        bar.set_postfix(loss=f"{epoch_loss:.4f}")
        if on_epoch is not None:
            on_epoch(epoch, epoch_loss)
    model.eval()
    if model.stats == "batch":
        with torch.no_grad():
            model.set_class_statistics(model.transform(x), u)
    return history


@torch.no_grad()
def evaluate_loss(model: GINModel, x: Tensor, u: Tensor, batch_size: int = 4096) -> float:
    """Mean negative log-likelihood per dimension of ``(x, u)`` under the model's class statistics."""
    model.eval()
    device = next(model.parameters()).device
    total = 0.0
    for xb, ub in zip(x.split(batch_size), u.split(batch_size)):
        w, log_det = model.flow((xb.to(device) - model.shift) / model.scale)
        log_p = model.class_log_density(w.reshape(len(w), -1))
        nll = -(log_p.gather(1, ub.to(device)[:, None])[:, 0] + log_det) / model.dim
        total += float(nll.sum())
    return total / len(x)
