"""Bayes classification on selected latents (paper Eq. 6): ``p_S(u | x) ∝ p(w_S | u) p(u)``.

``p(w_S | u)`` is the model's class-conditional diagonal Gaussian restricted to the dims ``S``;
the prior is the training set's class frequencies (``"empirical"``) or uniform. Curves over
``k`` (the top-``k`` dims of an order) come from one cumulative sum over the ordered dims, in
batches of samples, so a 784-dim sweep costs one pass and bounded memory.

Example:
    >>> import torch
    >>> from ginmi.model import GINModel
    >>> from ginmi.tasks.classification import posterior
    >>> model = GINModel({"name": "vector", "dim": 2, "width": 4}, n_classes=2)
    >>> with torch.no_grad():
    ...     _ = model.mu.copy_(torch.tensor([[-1.0, 0.0], [1.0, 0.0]]))
    >>> posterior(model, torch.tensor([[0.0, 5.0]]), dims=[0]).tolist()
    [[0.5, 0.5]]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from ginmi.model import GINModel

__all__ = [
    "PRIORS",
    "log_prior",
    "cumulative_log_likelihood",
    "posterior",
    "predict",
    "accuracy",
    "accuracy_vs_k",
    "bayes_accuracy",
]

PRIORS = ("empirical", "uniform")


def log_prior(model: GINModel, prior: str = "empirical") -> Tensor:
    """Log class prior: the training frequencies stored in the model, or uniform."""
    if prior == "empirical":
        return model.log_prior
    if prior == "uniform":
        return torch.full_like(model.log_prior, -float(np.log(model.n_classes)))
    raise ValueError(f"`prior` must be one of {PRIORS}, got {prior!r}")


def _as_tensor(w: np.ndarray | Tensor, model: GINModel) -> Tensor:
    return torch.as_tensor(w, dtype=model.mu.dtype, device=model.mu.device)


@torch.no_grad()
def cumulative_log_likelihood(
    model: GINModel, w: np.ndarray | Tensor, order: Sequence[int], ks: Sequence[int], batch_size: int = 2048
) -> Iterator[Tensor]:
    """Yield, per batch of samples, ``log p(w_S | u)`` for ``S`` = the first ``k`` dims of ``order``,
    for every ``k`` in ``ks``: tensors of shape ``(batch, n_classes, len(ks))``."""
    w = _as_tensor(w, model)
    order_t = torch.as_tensor(np.asarray(order), dtype=torch.long, device=w.device)
    ks_t = torch.as_tensor(np.asarray(ks), dtype=torch.long, device=w.device) - 1
    if len(ks_t) and (ks_t.min() < 0 or ks_t.max() >= len(order_t)):
        raise ValueError(f"every k must lie in 1..{len(order_t)}")
    mu, log_sigma = model.mu[:, order_t], model.log_sigma[:, order_t]
    inv_sigma = torch.exp(-log_sigma)
    for wb in w.split(batch_size):
        z = (wb[:, None, order_t] - mu[None]) * inv_sigma[None]
        per_dim = -(0.5 * z**2 + log_sigma[None] + 0.5 * np.log(2 * np.pi))
        yield per_dim.cumsum(-1).index_select(-1, ks_t)


@torch.no_grad()
def posterior(
    model: GINModel, w: np.ndarray | Tensor, dims: Sequence[int] | None = None, prior: str = "empirical"
) -> np.ndarray:
    """``p_S(u | w)`` for every class, a NumPy array like its siblings' results: rows sum to 1,
    columns ordered as ``model.classes``."""
    w = _as_tensor(w, model)
    dims = list(range(model.dim)) if dims is None else list(dims)
    logits = torch.cat([b[..., 0] for b in cumulative_log_likelihood(model, w, dims, [len(dims)])])
    return torch.softmax(logits + log_prior(model, prior), dim=1).cpu().numpy()


def predict(
    model: GINModel, w: np.ndarray | Tensor, dims: Sequence[int] | None = None, prior: str = "empirical"
) -> np.ndarray:
    """Class indices of the maximum posterior."""
    return posterior(model, w, dims, prior).argmax(1)


def accuracy(
    model: GINModel, w: np.ndarray | Tensor, u: np.ndarray, dims: Sequence[int] | None = None, prior: str = "empirical"
) -> float:
    """Fraction of samples whose maximum-posterior class is ``u`` (class indices)."""
    return float(np.mean(predict(model, w, dims, prior) == np.asarray(u)))


def accuracy_vs_k(
    model: GINModel,
    w: np.ndarray | Tensor,
    u: np.ndarray,
    order: Sequence[int],
    ks: Sequence[int] | None = None,
    prior: str = "empirical",
) -> list[float]:
    """Accuracy with the top-``k`` dims of ``order`` for each ``k`` (default ``1..len(order)``)."""
    ks = list(range(1, len(order) + 1)) if ks is None else list(ks)
    lp = log_prior(model, prior)[None, :, None]
    u_t = torch.as_tensor(np.asarray(u), dtype=torch.long, device=model.mu.device)
    correct = torch.zeros(len(ks), dtype=torch.long)
    start = 0
    for block in cumulative_log_likelihood(model, w, order, ks):
        pred = (block + lp).argmax(1)
        correct += (pred == u_t[start : start + len(block), None]).sum(0).cpu()
        start += len(block)
    return (correct.double() / max(start, 1)).tolist()


def bayes_accuracy(
    latent: np.ndarray, u: np.ndarray, means: np.ndarray, stds: np.ndarray, priors: np.ndarray | None = None
) -> float:
    """Accuracy of the Bayes classifier of the true generating mixture on the true latents
    (the asymptotic bound of paper Fig. 4); ``latent`` holds only the informative dims."""
    priors = np.full(len(means), 1.0 / len(means)) if priors is None else np.asarray(priors)
    z = (latent[:, None, :] - means[None]) / stds[None]
    log_p = -(0.5 * z**2 + np.log(stds)[None]).sum(-1) + np.log(priors)[None]
    return float(np.mean(log_p.argmax(1) == np.asarray(u)))
