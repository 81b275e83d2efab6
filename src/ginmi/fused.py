"""Fused CPU training step of the vector GIN network: forward, loss and gradient in one compiled pass.

The paper's 10-D network is tiny (8 couplings with width-10 subnets), so a PyTorch step is
hundreds of kernel launches and autograd nodes whose fixed overhead dwarfs the arithmetic. Here
the whole step (flow forward, the negative log-likelihood of :meth:`ginmi.model.GINModel.loss`
with trainable or batch class statistics, and the backward pass through every coupling) is one
numba kernel working feature-major (``(features, batch)``, so every inner loop runs over the
batch and vectorises). It writes the gradient of every trainable parameter straight into the
trainer's flat gradient buffer (:class:`FlatParameters`); :class:`FlatAdam` then clips that
gradient and takes the Adam step in a second kernel.

The function computed is the reference one (:class:`ginmi.flows.GINCoupling`,
:func:`ginmi.model.gaussian_nll`); the soft clamp's derivative is :func:`ginmi.flows.soft_clamp_derivative`
itself, compiled. The first :class:`FusedStep` built for an architecture checks itself against
autograd in float64 on a tiny batch. Used by :func:`ginmi.training.train` for the models it
supports (:func:`unsupported_reason` says why not): vector flows whose blocks declare the
``"fused"`` step (:func:`ginmi.flows.declared_backends`: GIN couplings with
``Linear-ReLU-Linear-ReLU-Linear`` subnets, each followed by a permutation), on the CPU, in one process.

Example:
    >>> import torch
    >>> from ginmi.fused import FlatParameters, FusedStep, supports
    >>> from ginmi.model import GINModel
    >>> model = GINModel({"name": "vector", "dim": 4, "width": 8, "init_identity": False}, n_classes=2)
    >>> params = [p for p in model.parameters() if p.requires_grad]
    >>> flat = FlatParameters(params)  # the trainer's flat buffer: parameters become views of it
    >>> x, u = torch.randn(8, 4), torch.tensor([0, 1] * 4)
    >>> loss = FusedStep(model, flat.flat.data, flat.flat.grad)(x, u)
    >>> autograd = torch.autograd.grad(model.loss(x, u), params)
    >>> supports(model), abs(loss - model.loss(x, u).item()) < 1e-5
    (True, True)
    >>> bool(torch.allclose(flat.flat.grad, torch.cat([g.flatten() for g in autograd]), atol=1e-5))
    True
"""

from __future__ import annotations

import copy
import math
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from ginmi.flows import SOFT_CLAMP_SCALE, Permutation, declared_backends, soft_clamp_derivative

if TYPE_CHECKING:
    from ginmi.model import GINModel

try:
    import numba
except ImportError:  # pragma: no cover - exercised when numba is absent
    numba = None  # type: ignore[assignment]

__all__ = [
    "supports",
    "unsupported_reason",
    "compiled",
    "FusedStepUnavailable",
    "FusedStepWarning",
    "FlatParameters",
    "FusedStep",
    "FlatAdam",
]

_LOG_2PI = math.log(2 * math.pi)
# Reassociation lets the batch reductions vectorise; no "nnan"/"ninf", so a diverging run still
# produces the NaN or inf that the trainer's divergence guard looks for.
_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
_BLAS_MIN = 32 * 32  # layers with at least this many weights multiply with BLAS (np.dot), smaller ones in loops
_MLP = (nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear)  # the subnet shape the kernel computes
_SELF_CHECK_RTOL = 1e-9  # float64 agreement with autograd that the self-check asks for


class FusedStepUnavailable(ValueError):
    """The fused step cannot train this model: unsupported, or it disagrees with autograd on it."""


class FusedStepWarning(UserWarning):
    """A CPU vector model trains with autograd instead of the fused step (the message says why)."""


def _is_mlp(net: nn.Module) -> bool:
    """Exactly ``Linear-ReLU-Linear-ReLU-Linear`` (exact types: a subclass may compute something else)."""
    return type(net) is nn.Sequential and tuple(type(m) for m in net) == _MLP


def compiled() -> bool:
    """Whether this process has the fused kernels ready (compiled, or loaded from numba's cache): until then
    the first training step compiles them, which takes about 20-30 s on the first run."""
    return numba is not None and bool(_step.signatures) and bool(_adam.signatures)


def unsupported_reason(model: nn.Module) -> str | None:
    """Why :class:`FusedStep` cannot train ``model``, or None when it can: numba present, parameters on
    the CPU in one float32/64 dtype, a vector flow of couplings that declare the ``"fused"`` step with
    ``Linear-ReLU-Linear-ReLU-Linear`` subnets, each followed by a :class:`~ginmi.flows.Permutation`."""
    if numba is None:
        return "numba is not installed (pip install numba)"
    blocks = list(getattr(getattr(model, "flow", None), "blocks", []))
    if len(getattr(model, "input_shape", ())) != 1 or not blocks:
        return "the fused step trains vector flows only"
    params = list(model.parameters())
    if any(p.device.type != "cpu" for p in params):
        return "the fused step runs on the CPU"
    if {p.dtype for p in params} not in ({torch.float32}, {torch.float64}):
        return f"the fused step computes in float32 or float64, the parameters are {params[0].dtype}"
    for k, block in enumerate(blocks):
        if "fused" not in declared_backends(block):
            return f"{type(block).__name__} (block {k}) does not declare the fused step"
        if (type(block) is Permutation) != (k % 2 == 1):
            return "the fused step needs each coupling followed by one permutation"
        if k % 2 == 0 and not (_is_mlp(block.subnet1) and _is_mlp(block.subnet2)):
            return (
                f"the subnets of block {k} are not Linear-ReLU-Linear-ReLU-Linear, the subnet shape "
                "the fused kernel computes"
            )
    if len(blocks) % 2:
        return "the fused step needs each coupling followed by one permutation"
    return None


def supports(model: nn.Module) -> bool:
    """Whether :class:`FusedStep` can train ``model`` (see :func:`unsupported_reason`)."""
    return unsupported_reason(model) is None


class FlatParameters:
    """Pack parameters into one flat buffer: each ``p.data`` and ``p.grad`` becomes a view of it.

    Autograd accumulates into the existing ``.grad`` views in place, so after ``backward`` the
    whole gradient is ``self.flat.grad``; one fused Adam step on ``self.flat`` updates every
    parameter, and :class:`FusedStep` writes its gradient there. :meth:`unpack` gives each
    parameter its own storage back. With ``n_models``, parameters are stacked (leading model
    dimension) and the buffer is ``(n_models, total)``.
    """

    def __init__(self, params: Sequence[nn.Parameter], n_models: int | None = None) -> None:
        self.params = list(params)
        lead = () if n_models is None else (n_models,)
        with torch.no_grad():
            self.flat = nn.Parameter(torch.cat([p.detach().reshape(*lead, -1) for p in self.params], dim=-1))
        self.grad: Tensor = torch.zeros_like(self.flat)  # the gradient buffer, also ``self.flat.grad``
        self.flat.grad = self.grad
        offset = 0
        for p in self.params:
            n = p.numel() // (n_models or 1)
            p.data = self.flat.data[..., offset : offset + n].view_as(p)
            p.grad = self.grad[..., offset : offset + n].view_as(p)
            offset += n

    def unpack(self) -> None:
        for p in self.params:
            p.data = p.data.clone()
            p.grad = None


_CHECKED: dict[tuple, str | None] = {}  # architecture -> None (agrees with autograd) or the disagreement
_CHECK_LOCK = threading.Lock()  # train_many builds steps in threads


def _disagreement(model: GINModel) -> str | None:
    """Loss and gradient of the fused step against autograd on a float64 twin of ``model`` with random
    weights (so that every path carries gradient), on a tiny batch: None when they agree."""
    twin = copy.deepcopy(model).double()
    g = torch.Generator().manual_seed(0)
    params = [p for p in twin.parameters() if p.requires_grad]
    with torch.no_grad():
        for p in params:
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype), alpha=0.3)
    n = 4 * twin.n_classes
    x = twin.shift + twin.scale * torch.randn(n, *twin.input_shape, generator=g, dtype=torch.float64)
    u = torch.arange(n) % twin.n_classes
    loss = twin.loss(x, u)
    expected = torch.cat([e.flatten() for e in torch.autograd.grad(loss, params)])
    flat = FlatParameters(params)
    value = FusedStep(twin, flat.flat.data, flat.grad, check=False)(x, u)
    grad_error = float((flat.grad - expected).abs().max() / expected.abs().max().clamp_min(1e-300))
    loss_error = abs(value - loss.item()) / max(1.0, abs(loss.item()))
    if max(grad_error, loss_error) <= _SELF_CHECK_RTOL and math.isfinite(value):
        return None
    return (
        f"the fused step disagrees with autograd on this architecture in float64 (loss {value!r} against "
        f"{loss.item()!r}, gradient off by {grad_error:.1e} relative); please report it"
    )


class FusedStep:
    """Loss and gradient of ``model.loss`` for one batch, in one compiled pass.

    ``values`` and ``grads`` are the trainer's flat parameter and gradient buffers
    (:class:`FlatParameters`): every trainable parameter of ``model`` must be a view of ``values``
    (and its ``.grad`` the view of ``grads`` at the same offset). Calling it on a batch ``(x, u)``
    overwrites ``grads`` with the gradient of ``model.loss(x, u)`` and returns the loss as a float;
    parameters are read at call time. The first step built for an architecture (layer shapes,
    splits, clamps, statistics) is checked against autograd in float64 (``check``); raises
    :class:`FusedStepUnavailable` when the model is unsupported or the check fails.
    """

    def __init__(self, model: GINModel, values: Tensor, grads: Tensor, *, check: bool = True) -> None:
        reason = unsupported_reason(model)
        if reason is not None:
            raise FusedStepUnavailable(reason)
        self.model = model
        self.values, self.grads = values.detach().numpy(), grads.numpy()
        base, size = values.data_ptr(), values.element_size()

        def offset(p: Tensor) -> int:
            off = (p.data_ptr() - base) // size
            if not (p.is_contiguous() and 0 <= off and off + p.numel() <= values.numel()):
                raise ValueError("every trainable parameter must be a contiguous view of the flat buffer")
            return off

        blocks = list(model.flow.blocks)
        layers = []
        for coupling in blocks[::2]:
            for net in (coupling.subnet2, coupling.subnet1):  # half 0 scales x1 from x2, half 1 x2 from y1
                for j in (0, 2, 4):
                    layer = cast(nn.Linear, cast(nn.Sequential, net)[j])  # checked by unsupported_reason
                    out_features, in_features = layer.weight.shape
                    layers.append([offset(layer.weight), out_features, in_features, offset(layer.bias)])
        self.layers = np.array(layers, dtype=np.int64).reshape(len(blocks) // 2, 2, 3, 4)
        self.splits = np.array([c.split1 for c in blocks[::2]], dtype=np.int64)
        self.clamps = np.array([c.clamp for c in blocks[::2]], dtype=np.float64)
        self.perms = np.stack([cast(Permutation, p).perm.numpy() for p in blocks[1::2]]).astype(np.int64)
        trainable = model.stats == "trainable"
        self.stats = (offset(model.mu), offset(model.log_sigma)) if trainable else (-1, -1)
        self.width = int(self.layers[..., 1].max())
        self._workspace: dict[int, tuple[np.ndarray, ...]] = {}
        dim = model.shift.numel()
        self._identity = (np.zeros(dim, self.values.dtype), np.ones(dim, self.values.dtype))  # shift, scale
        if check:
            architecture = (
                self.layers[..., 1:3].tobytes(),
                self.splits.tobytes(),
                self.clamps.tobytes(),
                trainable,
                model.n_classes,
                model.linear is not None,
            )
            with _CHECK_LOCK:
                if architecture not in _CHECKED:
                    _CHECKED[architecture] = _disagreement(model)
            if _CHECKED[architecture] is not None:
                raise FusedStepUnavailable(_CHECKED[architecture])

    def _buffers(self, dim: int, batch: int) -> tuple[np.ndarray, ...]:
        """Activations kept for the backward pass, one set per batch size (full and last batch)."""
        if batch not in self._workspace:
            n, w, dtype = len(self.splits), self.width, self.values.dtype
            self._workspace[batch] = (
                np.empty((n + 1, dim, batch), dtype),  # input of each coupling; the last is w
                np.empty((n, dim, batch), dtype),  # output of each coupling before its permutation
                np.empty((n, 2, w, batch), dtype),  # first hidden layer of each subnet
                np.empty((n, 2, w, batch), dtype),  # second hidden layer
                np.empty((n, 2, dim + 1, batch), dtype),  # subnet output: raw log-scales, then shifts
                np.empty((n, 2, dim, batch), dtype),  # exp of the clamped, centred log-scales
            )
        return self._workspace[batch]

    def __call__(self, x: Tensor, u: Tensor) -> float:
        model = self.model
        shift, scale = model.shift.numpy(), model.scale.numpy()
        if model.linear is not None:  # fixed linear stage: prepare the batch here, the kernel only standardises
            x, shift, scale = model.prepare(x), self._identity[0], self._identity[1]
        xs = x.detach().contiguous().numpy()
        mu, log_sigma = self.stats
        return float(
            _step(
                xs,
                shift,
                scale,
                u.numpy(),
                self.values,
                self.grads,
                self.layers,
                self.splits,
                self.clamps,
                self.perms,
                mu,
                log_sigma,
                model.n_classes,
                *self._buffers(xs.shape[1], xs.shape[0]),
            )
        )


class FlatAdam:
    """Adam on one flat parameter buffer with gradient-norm clipping, in one compiled pass.

    The update of ``torch.optim.Adam`` (L2 ``weight_decay``, bias corrections, no amsgrad), to
    rounding, without its per-step Python overhead and without the ~2 s import of ``torch._dynamo``
    that constructing any ``torch.optim`` optimizer costs. ``state_dict`` uses the format of
    ``torch.optim.Adam`` over the one flat parameter, so checkpoints load in either.
    """

    def __init__(
        self,
        values: Tensor,
        grads: Tensor,
        *,
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        if numba is None:  # pragma: no cover - exercised when numba is absent
            raise RuntimeError("FlatAdam needs numba")
        self.values, self.grads = values.detach(), grads
        self.param_groups: list[dict[str, Any]] = [
            {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay, "amsgrad": False}
        ]
        self.exp_avg, self.exp_avg_sq = torch.zeros_like(self.values), torch.zeros_like(self.values)
        self.steps = 0
        # NumPy views for the kernel, made once: the four buffers are only ever updated in place
        self._arrays = tuple(t.numpy() for t in (self.values, self.grads, self.exp_avg, self.exp_avg_sq))

    def step(self, max_norm: float | None = None) -> float:
        """One update; the gradient is first scaled to norm ``<= max_norm``. Returns the gradient norm.

        A non-finite gradient leaves parameters and state untouched (the caller reports it).
        """
        group = self.param_groups[0]
        norm = _adam(
            *self._arrays,
            self.steps + 1,
            group["lr"],
            group["betas"][0],
            group["betas"][1],  # type: ignore[call-arg]
            group["eps"],
            group["weight_decay"],
            -1.0 if max_norm is None else max_norm,
        )
        if math.isfinite(norm):
            self.steps += 1
        return norm

    def state_dict(self) -> dict:
        group = dict(self.param_groups[0], params=[0])
        state = {
            "step": torch.tensor(float(self.steps)),
            "exp_avg": self.exp_avg.clone(),
            "exp_avg_sq": self.exp_avg_sq.clone(),
        }
        return {"state": {0: state} if self.steps else {}, "param_groups": [group]}

    def load_state_dict(self, state_dict: dict) -> None:
        groups = state_dict["param_groups"]
        if len(groups) != 1 or len(groups[0]["params"]) != 1:
            raise ValueError("FlatAdam loads the state of an Adam over one flat parameter buffer only")
        for key in self.param_groups[0]:
            self.param_groups[0][key] = groups[0].get(key, self.param_groups[0][key])
        state = state_dict["state"].get(groups[0]["params"][0])
        if state is None:
            self.steps = 0
            self.exp_avg.zero_()
            self.exp_avg_sq.zero_()
        else:
            self.steps = int(state["step"])
            self.exp_avg.copy_(state["exp_avg"])
            self.exp_avg_sq.copy_(state["exp_avg_sq"])


if numba is not None:
    _njit = numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)

    @numba.njit(cache=True, nogil=True)
    def _adam(p, g, m, v, t, lr, beta1, beta2, eps, weight_decay, max_norm):
        norm = 0.0
        for i in range(len(g)):
            norm += g[i] * g[i]
        norm = math.sqrt(norm)
        if not math.isfinite(norm):
            return norm
        coef = min(1.0, max_norm / (norm + 1e-6)) if max_norm > 0 else 1.0
        step_size = lr / (1 - beta1**t)
        root_bc2 = math.sqrt(1 - beta2**t)
        for i in range(len(g)):
            gi = g[i] * coef + weight_decay * p[i]
            m[i] += (1 - beta1) * (gi - m[i])
            v[i] = beta2 * v[i] + (1 - beta2) * gi * gi
            p[i] -= step_size * m[i] / (math.sqrt(v[i]) / root_bc2 + eps)
        return norm

    # inlined into the kernels' loops (a call per element would stop them vectorising). numba's cache
    # tracks this file only: kernels cached before an edit of flows.soft_clamp_derivative keep the old
    # one until this file changes or the cache is cleared, and the self-check then refuses them loudly
    _inline = numba.njit(cache=True, nogil=True, fastmath=_FASTMATH, inline="always")
    _soft_clamp_derivative = _inline(soft_clamp_derivative)  # the reference definition, compiled

    @_inline
    def _soft_clamp(s, clamp):
        """:func:`ginmi.flows.soft_clamp` of one number (its torch form cannot compile; tests compare them)."""
        return clamp * SOFT_CLAMP_SCALE * math.atan(s)

    @_njit
    def _matrix(flat, offset, rows, cols):
        return flat[offset : offset + rows * cols].reshape(rows, cols)

    @_njit
    def _linear(w, b, inp, out):
        """out = w @ inp + b for feature-major ``inp`` (features, batch)."""
        rows, cols, nb = w.shape[0], w.shape[1], inp.shape[1]
        if rows * cols >= _BLAS_MIN:  # wide layers: one BLAS call beats the loops
            out[:rows] = np.dot(w, inp[:cols])
        else:
            for j in range(rows):
                for i in range(nb):
                    out[j, i] = 0
                for k in range(cols):
                    wjk = w[j, k]
                    for i in range(nb):
                        out[j, i] += wjk * inp[k, i]
        for j in range(rows):
            for i in range(nb):
                out[j, i] += b[j]

    @_njit
    def _relu(a, rows):
        for j in range(rows):
            for i in range(a.shape[1]):
                a[j, i] = max(a[j, i], 0)

    @_njit
    def _linear_backward(w, gw, gb, inp, gout, ginp):
        """gw += gout inp^T, gb += sum(gout) and ginp += w^T gout."""
        rows, cols, nb = w.shape[0], w.shape[1], inp.shape[1]
        for j in range(rows):
            s = gout[j, 0] * 0
            for i in range(nb):
                s += gout[j, i]
            gb[j] += s
        if rows * cols >= _BLAS_MIN:  # C-contiguous operands only: one np.dot to compile, not three
            gw += np.dot(gout[:rows], np.ascontiguousarray(inp[:cols].T))
            ginp[:cols] += np.dot(np.ascontiguousarray(w.T), gout[:rows])
        else:
            for j in range(rows):
                for k in range(cols):
                    s = gout[j, 0] * 0
                    for i in range(nb):
                        s += gout[j, i] * inp[k, i]
                    gw[j, k] += s
            for k in range(cols):
                for j in range(rows):
                    wjk = w[j, k]
                    for i in range(nb):
                        ginp[k, i] += wjk * gout[j, i]

    @_njit
    def _relu_backward(grad, act, rows):
        """Zero ``grad`` where the ReLU output ``act`` is 0."""
        for j in range(rows):
            for i in range(act.shape[1]):
                if act[j, i] <= 0:
                    grad[j, i] = 0

    @_njit
    def _half_forward(p, lay, inp, target, out, a1, a2, o, e, clamp):
        """out = target * exp(s) + t, (s, t) from the subnet on ``inp``; keeps its activations."""
        n = target.shape[0]
        _linear(_matrix(p, lay[0, 0], lay[0, 1], lay[0, 2]), p[lay[0, 3] : lay[0, 3] + lay[0, 1]], inp, a1)
        _relu(a1, lay[0, 1])
        _linear(_matrix(p, lay[1, 0], lay[1, 1], lay[1, 2]), p[lay[1, 3] : lay[1, 3] + lay[1, 1]], a1, a2)
        _relu(a2, lay[1, 1])
        _linear(_matrix(p, lay[2, 0], lay[2, 1], lay[2, 2]), p[lay[2, 3] : lay[2, 3] + lay[2, 1]], a2, o)
        for i in range(inp.shape[1]):
            mean = 0.0
            for j in range(n):
                e[j, i] = _soft_clamp(o[j, i], clamp)
                mean += e[j, i]
            mean /= n
            for j in range(n):
                e[j, i] = math.exp(e[j, i] - mean)
                out[j, i] = target[j, i] * e[j, i] + o[n + j, i]

    @_njit
    def _half_backward(p, g, lay, inp, target, gout, gtarget, ginp, a1, a2, o, e, go, ga1, ga2, clamp):
        """Backward of :func:`_half_forward`: gtarget = gout * e; ginp += gradient through the subnet."""
        n = target.shape[0]
        for i in range(inp.shape[1]):
            mean = 0.0
            for j in range(n):
                gtarget[j, i] = gout[j, i] * e[j, i]
                go[j, i] = gtarget[j, i] * target[j, i]  # d/ds of target * exp(s)
                mean += go[j, i]
            mean /= n
            for j in range(n):
                go[j, i] = (go[j, i] - mean) * _soft_clamp_derivative(o[j, i], clamp)
                go[n + j, i] = gout[j, i]
        for layer in (2, 1, 0):  # output layer first; each fills the gradient of the layer below
            rows, cols, w_at, b_at = lay[layer, 1], lay[layer, 0 + 2], lay[layer, 0], lay[layer, 3]
            below = a2 if layer == 2 else a1 if layer == 1 else inp
            gbelow = ga2 if layer == 2 else ga1 if layer == 1 else ginp
            if layer > 0:
                gbelow[:cols] = 0
            _linear_backward(
                _matrix(p, w_at, rows, cols),
                _matrix(g, w_at, rows, cols),
                g[b_at : b_at + rows],
                below,
                go if layer == 2 else ga2 if layer == 1 else ga1,
                gbelow,
            )
            if layer > 0:
                _relu_backward(gbelow, below, cols)

    @_njit
    def _step(
        x, shift, scale, u, p, g, layers, splits, clamps, perms, i_mu, i_ls, n_classes, h_in, h_cat, a1, a2, o, e
    ):
        nb, dim = x.shape
        n_blocks = len(splits)
        g[:] = 0
        # forward, feature-major from the standardised batch; h_in[n_blocks] is w
        for i in range(nb):
            for d in range(dim):
                h_in[0, d, i] = (x[i, d] - shift[d]) / scale[d]
        for k in range(n_blocks):
            s1 = splits[k]
            _half_forward(
                p,
                layers[k, 0],
                h_in[k, s1:],
                h_in[k, :s1],
                h_cat[k, :s1],
                a1[k, 0],
                a2[k, 0],
                o[k, 0],
                e[k, 0],
                clamps[k],
            )
            _half_forward(
                p,
                layers[k, 1],
                h_cat[k, :s1],
                h_in[k, s1:],
                h_cat[k, s1:],
                a1[k, 1],
                a2[k, 1],
                o[k, 1],
                e[k, 1],
                clamps[k],
            )
            for j in range(dim):
                h_in[k + 1, j] = h_cat[k, perms[k, j]]
        # loss (paper Eq. 5 per dimension, batch mean) and gw = dloss/dw
        w = h_in[n_blocks]
        gw = np.empty_like(w)
        scale = 1.0 / (nb * dim)
        loss = 0.0
        if i_mu >= 0:  # trainable class statistics
            mu = _matrix(p, i_mu, n_classes, dim)
            ls = _matrix(p, i_ls, n_classes, dim)
            gmu = _matrix(g, i_mu, n_classes, dim)
            gls = _matrix(g, i_ls, n_classes, dim)
            for i in range(nb):
                c = u[i]
                for d in range(dim):
                    inv = math.exp(-2 * ls[c, d])
                    diff = w[d, i] - mu[c, d]
                    sq = diff * diff * inv
                    loss += 0.5 * sq + ls[c, d]
                    gw[d, i] = diff * inv * scale
                    gmu[c, d] -= diff * inv * scale
                    gls[c, d] += (1 - sq) * scale
        else:  # batch statistics: loss = 0.5 + mean log std of each sample's class in this batch
            counts = np.zeros(n_classes)
            mean = np.zeros((n_classes, dim))
            var = np.zeros((n_classes, dim))
            for i in range(nb):
                counts[u[i]] += 1
                for d in range(dim):
                    mean[u[i], d] += w[d, i]
            for c in range(n_classes):
                if counts[c] > 0:
                    mean[c] /= counts[c]
            for i in range(nb):
                for d in range(dim):
                    diff = w[d, i] - mean[u[i], d]
                    var[u[i], d] += diff * diff
            for c in range(n_classes):
                if counts[c] > 0:
                    for d in range(dim):
                        var[c, d] = var[c, d] / counts[c] + 1e-12
                        loss += counts[c] * 0.5 * math.log(var[c, d])
            for i in range(nb):
                for d in range(dim):
                    gw[d, i] = (w[d, i] - mean[u[i], d]) / var[u[i], d] * scale
            loss += 0.5 * nb * dim
        loss = loss * scale + 0.5 * _LOG_2PI
        # backward through the couplings, last first
        gcat = np.empty_like(w)
        go = np.empty((dim + 1, nb), dtype=w.dtype)
        ga1 = np.empty((a1.shape[2], nb), dtype=w.dtype)
        ga2 = np.empty((a2.shape[2], nb), dtype=w.dtype)
        for k in range(n_blocks - 1, -1, -1):
            s1 = splits[k]
            for j in range(dim):
                gcat[perms[k, j]] = gw[j]
            # half 1 (y2 = x2 * e1 + t1 from y1): gw[s1:] = d/dx2, gcat[:s1] += through subnet1
            _half_backward(
                p,
                g,
                layers[k, 1],
                h_cat[k, :s1],
                h_in[k, s1:],
                gcat[s1:],
                gw[s1:],
                gcat[:s1],
                a1[k, 1],
                a2[k, 1],
                o[k, 1],
                e[k, 1],
                go,
                ga1,
                ga2,
                clamps[k],
            )
            # half 0 (y1 = x1 * e0 + t0 from x2): gw[:s1] = d/dx1, gw[s1:] += through subnet2
            _half_backward(
                p,
                g,
                layers[k, 0],
                h_in[k, s1:],
                h_in[k, :s1],
                gcat[:s1],
                gw[:s1],
                gw[s1:],
                a1[k, 0],
                a2[k, 0],
                o[k, 0],
                e[k, 0],
                go,
                ga1,
                ga2,
                clamps[k],
            )
        return loss
