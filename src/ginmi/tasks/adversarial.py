"""Adversarial attack and rejection defence on the Bayes classifier of selected latents (paper Sec. 4).

The attacked classifier is ``p_S(u | x) ∝ p(w_S(x) | u) p(u)`` (:mod:`ginmi.tasks.classification`).
The attack is FGSM (Goodfellow et al. 2015): ``x_adv = clip(x + eta * sign(grad_x CE(p_S(. | x), u)), 0, 1)``.
The defence rejects ``x`` when its selected latents are unlikely under every class:
``log p_S(w_S(x) | u) < log p_S(mu_u - k sigma_u | u)`` for all ``u`` (paper, ``k = 1``); the right-hand
side is the class density one ``k sigma`` away from the mean in every selected dim,
``-sum_S (k^2 / 2 + log sigma_u,i + log(2 pi) / 2)``.

Every function takes any trained :class:`~ginmi.model.GINModel`, works in batches (bounded memory)
and on the model's device, and checks the images: finite, in ``[0, 1]``, shaped as the model's input.

Example:
    >>> import torch
    >>> from ginmi.model import GINModel
    >>> from ginmi.tasks.adversarial import evaluate_defence
    >>> model = GINModel({"name": "image", "input_shape": [1, 8, 8], "conv_widths": [4, 4],
    ...                   "n_conv_blocks": 1, "fc_width": 8, "n_fc_blocks": 1}, n_classes=2)
    >>> x, u = torch.rand(6, 1, 8, 8), torch.tensor([0, 1, 0, 1, 0, 1])
    >>> table = evaluate_defence(model, x, u, dims=[0, 1, 2], etas=[0.0, 0.02])
    >>> sorted(table[0.02])
    ['error_rate_with_defence', 'error_rate_without_defence', 'n_passed', 'n_samples', 'pass_rate', 'passed_error_rate']
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ginmi.data.images import check_pixel_range
from ginmi.model import GINModel
from ginmi.tasks.classification import log_prior

__all__ = [
    "TABLE1_COLUMNS",
    "check_images",
    "fgsm",
    "rejection_thresholds",
    "rejected",
    "evaluate_defence",
]

#: The four columns of the paper's Table 1, in its order.
TABLE1_COLUMNS = ("error_rate_without_defence", "pass_rate", "passed_error_rate", "error_rate_with_defence")


def check_images(model: GINModel, x: np.ndarray | Tensor) -> Tensor:
    """``x`` as a float32 CPU tensor after checking it fits ``model``: shape ``(N, *input_shape)``,
    finite pixels in ``[0, 1]``; otherwise a ValueError saying what is wrong."""
    xt = torch.as_tensor(x).detach().cpu()
    if tuple(xt.shape[1:]) != tuple(model.input_shape):
        raise ValueError(
            f"images of shape {tuple(xt.shape[1:])} do not fit this model, which was trained on images of "
            f"shape {tuple(model.input_shape)}; resize them or use a model trained on this image size"
        )
    check_pixel_range(xt.numpy())
    return xt.float()


def _dims(model: GINModel, dims: Sequence[int] | Tensor | None) -> Tensor:
    d = torch.as_tensor(list(range(model.dim)) if dims is None else list(dims), dtype=torch.long)
    if d.numel() == 0 or d.min() < 0 or d.max() >= model.dim:
        raise ValueError(f"selected dims must be a non-empty subset of 0..{model.dim - 1}")
    return d.to(model.mu.device)


def _logits(model: GINModel, x: Tensor, dims: Tensor, prior: str) -> Tensor:
    w = model.transform(x)
    return model.class_log_density(w, dims) + log_prior(model, prior)


def fgsm(
    model: GINModel,
    x: np.ndarray | Tensor,
    u: np.ndarray | Tensor,
    eta: float,
    dims: Sequence[int] | None = None,
    *,
    prior: str = "empirical",
    batch_size: int = 500,
) -> Tensor:
    """FGSM examples against ``p_S(u | x)``: ``clip(x + eta * sign(grad_x CE), 0, 1)`` (CPU tensor).

    ``u`` holds the true class indices; ``dims`` is the selected set ``S`` (default all).
    """
    _check_eta(eta)
    xt, ut = _images_and_labels(model, x, u)
    if eta == 0:
        return xt.clone()
    return _step(xt, _gradient_sign(model, xt, ut, _dims(model, dims), prior, batch_size), eta)


def _check_eta(eta: float) -> None:
    if not eta >= 0:
        raise ValueError(f"the FGSM step eta must be >= 0, got {eta}")


def _images_and_labels(model: GINModel, x: np.ndarray | Tensor, u: np.ndarray | Tensor) -> tuple[Tensor, Tensor]:
    xt = check_images(model, x)
    ut = torch.as_tensor(np.asarray(u), dtype=torch.long)
    if len(ut) != len(xt):
        raise ValueError(f"{len(ut)} labels for {len(xt)} images")
    return xt, ut


def _gradient_sign(model: GINModel, x: Tensor, u: Tensor, dims: Tensor, prior: str, batch_size: int) -> Tensor:
    """``sign(grad_x CE)`` of every image (CPU): the direction FGSM steps along, the same for every eta."""
    device = model.mu.device
    was_training = model.training
    model.eval()
    out = []
    try:
        for xb, ub in zip(x.split(batch_size), u.split(batch_size)):
            xb = xb.to(device).requires_grad_(True)
            loss = torch.nn.functional.cross_entropy(_logits(model, xb, dims, prior), ub.to(device), reduction="sum")
            (grad,) = torch.autograd.grad(loss, xb)
            out.append(grad.sign().cpu())
    finally:
        model.train(was_training)
    return torch.cat(out)


def _step(x: Tensor, sign: Tensor, eta: float) -> Tensor:
    return (x + eta * sign).clamp_(0.0, 1.0)


def rejection_thresholds(model: GINModel, dims: Sequence[int] | Tensor | None = None, k: float = 1.0) -> Tensor:
    """``log p_S(mu_u - k sigma_u | u)`` for every class ``u``: shape ``(n_classes,)``."""
    d = _dims(model, dims)
    log_sigma = model.log_sigma.detach()[:, d]
    return -(0.5 * k**2 + log_sigma + 0.5 * math.log(2 * math.pi)).sum(1)


@torch.no_grad()
def _predict_and_reject(
    model: GINModel, x: Tensor, dims: Tensor, k: float, prior: str, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    device = model.mu.device
    thresholds = rejection_thresholds(model, dims, k)
    preds, rejects = [], []
    for xb in x.split(batch_size):
        w = model.transform(xb.to(device))
        log_p = model.class_log_density(w, dims)
        preds.append((log_p + log_prior(model, prior)).argmax(1).cpu())
        rejects.append((log_p < thresholds[None]).all(1).cpu())
    return torch.cat(preds).numpy(), torch.cat(rejects).numpy()


def rejected(
    model: GINModel,
    x: np.ndarray | Tensor,
    dims: Sequence[int] | None = None,
    k: float = 1.0,
    *,
    batch_size: int = 2048,
) -> np.ndarray:
    """Boolean mask of the images the defence rejects (unlikely under every class)."""
    model.eval()
    return _predict_and_reject(model, check_images(model, x), _dims(model, dims), k, "empirical", batch_size)[1]


def evaluate_defence(
    model: GINModel,
    x: np.ndarray | Tensor,
    u: np.ndarray | Tensor,
    dims: Sequence[int] | None = None,
    etas: Sequence[float] = (0.0, 0.001, 0.02),
    *,
    k: float = 1.0,
    prior: str = "empirical",
    batch_size: int = 500,
) -> dict[float, dict[str, Any]]:
    """The paper's Table 1 for one selected set: for every ``eta``, attack ``(x, u)`` with FGSM and
    report :data:`TABLE1_COLUMNS` (plus the counts). The gradient is taken once: FGSM's direction
    ``sign(grad_x CE)`` does not depend on ``eta``.

    ``error_rate_without_defence`` is the fraction of attacked images misclassified; ``pass_rate``
    the fraction the defence lets through; ``passed_error_rate`` the misclassified fraction among
    those (NaN when none passes); ``error_rate_with_defence`` = pass rate x passed error rate, the
    fraction of all images that pass and are misclassified.
    """
    for eta in etas:
        _check_eta(eta)
    xt, u_t = _images_and_labels(model, x, u)
    ut = u_t.numpy()
    d = _dims(model, dims)
    sign = _gradient_sign(model, xt, u_t, d, prior, batch_size) if any(eta > 0 for eta in etas) else None
    table: dict[float, dict[str, Any]] = {}
    for eta in etas:
        x_adv = xt if sign is None or eta == 0 else _step(xt, sign, float(eta))
        pred, reject = _predict_and_reject(model, x_adv, d, k, prior, batch_size)
        wrong = pred != ut
        passed = ~reject
        n, n_pass = len(ut), int(passed.sum())
        n_wrong_passed = int((wrong & passed).sum())
        table[float(eta)] = {
            "error_rate_without_defence": float(wrong.mean()),
            "pass_rate": n_pass / n,
            "passed_error_rate": n_wrong_passed / n_pass if n_pass else float("nan"),
            "error_rate_with_defence": n_wrong_passed / n,
            "n_samples": n,
            "n_passed": n_pass,
        }
    return table
