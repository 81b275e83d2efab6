"""The GIN model: an invertible flow plus the class-conditional diagonal Gaussian of ``w`` given ``u``.

``w = g(L (x - shift) / scale)``: a fixed per-feature standardisation and, for vector data
optionally, a fixed volume-preserving linear stage ``L`` (``|det L| = 1``; both fitted on the
training data before training and stored in the model), followed by the flow. Given the class ``u``, ``w`` is modelled as
``N(mu[u], diag(exp(log_sigma[u]))^2)`` (paper Eq. 5); ``log_prior`` holds the empirical class
frequencies of the training set. With ``stats="batch"`` (paper Appendix C) the loss uses the
statistics of each batch, and ``mu``/``log_sigma`` are set from the whole training set after
training, so every downstream task reads the same attributes.

Example:
    >>> import torch
    >>> from ginmi.model import GINModel
    >>> model = GINModel({"name": "vector", "dim": 4, "width": 8, "seed": 0}, n_classes=3)
    >>> x, u = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    >>> model.loss(x, u).shape
    torch.Size([])
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ginmi.architectures import build_flow
from ginmi.flows import SequentialFlow
from ginmi.io import atomic_torch_save, safe_torch_load
from ginmi.precision import resolve_precision, set_subnet_precision

__all__ = ["STATS", "GINModel", "prepare_inputs", "load_model"]

STATS = ("trainable", "batch")
_LOG_2PI = math.log(2 * math.pi)
FORMAT_VERSION = 1


class GINModel(nn.Module):
    """Flow ``g`` and the class-conditional Gaussian of its output.

    Parameters
    ----------
    arch : dict
        Architecture spec for :func:`ginmi.architectures.build_flow`.
    n_classes : int
        Number of classes of the label ``u``.
    stats : {"trainable", "batch"}
        Trainable per-class means and log-stds (paper Eq. 5, default) or batch statistics.
    classes : sequence, optional
        The original label values (ints or strings), in the order of the class indices.
    linear_stage : bool
        Hold a fixed volume-preserving linear map between the standardisation and the flow
        (vector data; fitted by :func:`ginmi.training.fit_linear_stage` before training).
    precision : {"fp32", "bf16", "auto"}
        Precision of the coupling subnets (see :meth:`set_precision`); saved with the model.
    """

    flow: SequentialFlow
    log_prior: Tensor  # buffers, declared for type checkers
    shift: Tensor
    scale: Tensor
    linear: Tensor | None

    def __init__(
        self,
        arch: dict[str, Any],
        n_classes: int,
        *,
        stats: str = "trainable",
        classes: Sequence[Any] | None = None,
        linear_stage: bool = False,
        precision: str = "fp32",
    ) -> None:
        super().__init__()
        if stats not in STATS:
            raise ValueError(f"`stats` must be one of {STATS}, got {stats!r}")
        if n_classes < 2:
            raise ValueError(f"need at least 2 classes, got {n_classes}")
        self.arch = dict(arch)
        self.stats = stats
        self.classes = list(classes) if classes is not None else list(range(n_classes))
        if len(self.classes) != n_classes:
            raise ValueError(f"{len(self.classes)} class names given for {n_classes} classes")
        self.feature_names: list[str] | None = None  # names of the input columns, where known (saved)
        self.flow = build_flow(self.arch)
        self.input_shape = tuple(self.arch.get("input_shape", (self.arch.get("dim"),)))
        dim = int(np.prod(self.input_shape))
        self.dim = dim
        self.mu = nn.Parameter(torch.zeros(n_classes, dim), requires_grad=stats == "trainable")
        self.log_sigma = nn.Parameter(torch.zeros(n_classes, dim), requires_grad=stats == "trainable")
        self.register_buffer("log_prior", torch.full((n_classes,), -math.log(n_classes)))
        self.register_buffer("shift", torch.zeros(self.input_shape))
        self.register_buffer("scale", torch.ones(self.input_shape))
        # optional fixed volume-preserving linear stage after the standardisation (vector data)
        self.register_buffer("linear", torch.eye(dim) if linear_stage else None)
        self.precision = "fp32"
        self.set_precision(precision)

    @property
    def n_classes(self) -> int:
        return self.mu.shape[0]

    def set_precision(self, precision: str, device: str | torch.device = "cpu") -> GINModel:
        """Compute the coupling subnets in ``precision``: ``"fp32"``, ``"bf16"`` (convolutions and linear
        layers under bf16 autocast, see :mod:`ginmi.precision`) or ``"auto"`` (bf16 for image networks
        where ``device`` computes bf16 natively, else fp32). bf16 applies while the model trains; in
        eval mode the subnets compute in float32, so latents, densities and the inverse come from one
        exactly invertible float32 flow. The coupling arithmetic, loss, class statistics, weights and
        optimizer state stay float32. Vector networks stay fp32: their fused CPU step has no bf16 path
        and their tiny layers gain nothing from it. Returns the model.
        """
        resolved = resolve_precision(precision, device)
        if self.arch.get("name") == "vector":
            if precision == "bf16":
                raise ValueError(
                    "`precision` 'bf16' is for image networks; vector networks train in fp32 "
                    "(use precision='fp32' or 'auto')"
                )
            resolved = "fp32"
        set_subnet_precision(self.flow, resolved)
        self.precision = resolved
        return self

    def set_standardization(self, shift: Tensor, scale: Tensor) -> None:
        """Store the fixed input standardisation ``(x - shift) / scale``."""
        if torch.any(scale <= 0) or not torch.all(torch.isfinite(scale)):
            raise ValueError("standardisation scales must be finite and positive")
        self.shift.copy_(shift.reshape(self.input_shape))
        self.scale.copy_(scale.reshape(self.input_shape))

    def set_linear_stage(self, matrix: Tensor) -> None:
        """Store the fixed linear stage ``h -> matrix @ h``, rescaled to ``|det| = 1`` (volume-preserving)."""
        if self.linear is None:
            raise ValueError("this model has no linear stage; build it with linear_stage=True")
        m = matrix.detach().double().reshape(self.dim, self.dim)
        sign, logabsdet = torch.linalg.slogdet(m)
        if sign == 0 or not torch.isfinite(logabsdet) or not torch.isfinite(m).all():
            raise ValueError("the linear stage must be a finite invertible matrix")
        self.linear.copy_(m * torch.exp(-logabsdet / self.dim))

    def prepare(self, x: Tensor) -> Tensor:
        """The fixed input transforms before the flow: standardisation, then the linear stage if any."""
        return prepare_inputs(x, self.shift, self.scale, self.linear)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(w, log|det dw/dx|)`` for data ``x``, ``w`` flattened to ``(N, dim)``."""
        w, log_det = self.flow(self.prepare(x))
        return w.reshape(w.shape[0], -1), log_det - torch.log(self.scale).sum()

    def transform(self, x: Tensor) -> Tensor:
        """Latent ``w = g(x)`` of shape ``(N, dim)``."""
        return self(x)[0]

    def inverse(self, w: Tensor) -> Tensor:
        """Data ``x = g^{-1}(w)`` for latents of shape ``(N, dim)``."""
        h = self.flow.inverse(w)
        if self.linear is not None:
            h = torch.linalg.solve(self.linear, h.T).T
        return h * self.scale + self.shift

    def loss(self, x: Tensor, u: Tensor) -> Tensor:
        """Negative log-likelihood per dimension (paper Eq. 5), averaged over the batch.

        The flow's own log-determinant (zero for GIN) is subtracted; the constant of the
        fixed standardisation is not, so the loss is in units of the standardised data.
        """
        w, log_det = self.flow(self.prepare(x))
        w = w.reshape(w.shape[0], -1)
        if self.stats == "trainable":
            return gaussian_nll(w, self.log_sigma[u], self.mu[u], log_det).mean()
        return gaussian_nll(w, torch.log(class_statistics(w, u, self.n_classes)[1][u]), None, log_det).mean()

    def class_log_density(self, w: Tensor, dims: Sequence[int] | Tensor | None = None) -> Tensor:
        """``log p(w_S | u)`` for every class: shape ``(N, n_classes)``; ``dims`` selects ``S``."""
        mu: Tensor = self.mu
        log_sigma: Tensor = self.log_sigma
        if dims is not None:
            dims = torch.as_tensor(dims, dtype=torch.long, device=w.device)
            w, mu, log_sigma = w[:, dims], mu[:, dims], log_sigma[:, dims]
        z = (w[:, None, :] - mu[None]) * torch.exp(-log_sigma)[None]
        return -(0.5 * z**2 + log_sigma[None] + 0.5 * _LOG_2PI).sum(-1)

    @torch.no_grad()
    def set_class_statistics(self, w: Tensor, u: Tensor) -> None:
        """Set ``mu``/``log_sigma`` to the empirical per-class statistics of ``w``."""
        mean, std = class_statistics(w, u, self.n_classes)
        self.mu.copy_(mean)
        self.log_sigma.copy_(torch.log(std))

    def describe(self) -> dict[str, Any]:
        """Everything needed to rebuild the model except the weights (all plain types)."""
        desc = {
            "arch": self.arch,
            "n_classes": self.n_classes,
            "stats": self.stats,
            "classes": self.classes,
            "linear_stage": self.linear is not None,
            "precision": self.precision,
        }
        if self.feature_names is not None:
            desc["feature_names"] = list(self.feature_names)
        return desc

    def save(self, path: str | os.PathLike) -> None:
        """Write weights and description atomically; load with :func:`load_model`."""
        state = {k: v.detach().cpu() for k, v in self.state_dict().items()}
        atomic_torch_save({"format_version": FORMAT_VERSION, "model": self.describe(), "state_dict": state}, path)


def prepare_inputs(x: Tensor, shift: Tensor, scale: Tensor, linear: Tensor | None = None) -> Tensor:
    """The model's fixed input transforms: ``(x - shift) / scale``, then ``h @ linear.T`` where there is a
    linear stage. Shapes broadcast as in ``torch.matmul``, so stacked models (leading model dimension on
    every argument, as :func:`ginmi.training.train_many` holds them) go through the same function."""
    h = (x - shift) / scale
    return h if linear is None else h @ linear.transpose(-1, -2)


def class_statistics(w: Tensor, u: Tensor, n_classes: int) -> tuple[Tensor, Tensor]:
    """Per-class mean and (biased) standard deviation of ``w``: two ``(n_classes, dim)`` tensors."""
    onehot = torch.nn.functional.one_hot(u, n_classes).to(w.dtype)
    counts = onehot.sum(0)[:, None]
    mean = onehot.T @ w / counts
    var = onehot.T @ (w - mean[u]) ** 2 / counts
    return mean, torch.sqrt(var + 1e-12)


def gaussian_nll(w: Tensor, log_std: Tensor, mean: Tensor | None = None, log_det: Tensor | None = None) -> Tensor:
    """Negative log-likelihood per dimension of each row of ``w`` (last axis) under
    ``N(mean, diag(exp(log_std))^2)`` (paper Eq. 5), less ``log_det / dim``: the loss of every trainer.

    ``mean`` and ``log_std`` are each row's class statistics, shaped like ``w``. ``mean=None`` says
    they are the per-class fit to these very rows (batch statistics): the quadratic term then
    averages to 1/2 per class and dimension, and is taken as 1/2.
    """
    quad = 0.5 if mean is None else 0.5 * (w - mean) ** 2 * torch.exp(-2 * log_std)
    nll = (quad + log_std).mean(-1) + 0.5 * _LOG_2PI
    return nll if log_det is None else nll - log_det / w.shape[-1]


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> GINModel:
    """Load a model written by :meth:`GINModel.save` (never unpickles code: ``weights_only=True``)."""
    blob = safe_torch_load(Path(path), map_location=map_location)
    try:
        desc = blob["model"]
        model = GINModel(
            desc["arch"],
            desc["n_classes"],
            stats=desc["stats"],
            classes=desc["classes"],
            linear_stage=desc.get("linear_stage", False),
            precision=desc.get("precision", "fp32"),
        )
        model.load_state_dict(blob["state_dict"])
        model.feature_names = desc.get("feature_names")
    except (KeyError, TypeError, RuntimeError) as err:
        raise ValueError(f"{path} is not a ginmi model file ({err}); was it written by GINModel.save?") from err
    return model.eval()
