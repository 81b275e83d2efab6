"""Invertible building blocks: affine couplings (GIN and GLOW), permutations, reshapes.

Direction convention (as in zuko): the forward call maps data to latent, ``w = g(x)``, and
returns ``(w, log_abs_det)`` with one log-determinant per sample; ``inverse(w)`` maps back.
Every block acts along dimension 1 (features of a vector, channels of an image), so the
same coupling serves ``(N, C)`` and ``(N, C, H, W)`` tensors.

Example:
    >>> import torch
    >>> from ginmi.flows import GINCoupling, Permutation, SequentialFlow
    >>> from ginmi.architectures import mlp_subnet
    >>> flow = SequentialFlow([GINCoupling(4, mlp_subnet(8)), Permutation(4, seed=0)])
    >>> x = torch.randn(3, 4)
    >>> w, log_det = flow(x)
    >>> bool(torch.allclose(flow.inverse(w), x, atol=1e-6)), log_det.tolist()
    (True, [0.0, 0.0, 0.0])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

__all__ = [
    "SubnetConstructor",
    "soft_clamp",
    "soft_clamp_derivative",
    "affine_log_scales",
    "affine",
    "declared_backends",
    "AffineCoupling",
    "GINCoupling",
    "GLOWCoupling",
    "Permutation",
    "Flatten",
    "IRevNetDownsampling",
    "SequentialFlow",
]

SubnetConstructor = Callable[[int, int], nn.Module]


def declared_backends(block: nn.Module) -> frozenset[str]:
    """The training-step backends besides autograd that ``block``'s class declares it computes exactly
    (``"stacked"``: :func:`ginmi.training.train_many`'s batched step, ``"fused"``: :mod:`ginmi.fused`).

    Read from the block's own class only, never inherited: a subclass that changes the math trains
    with autograd until it declares (and tests, see ``tests/test_contract.py``) a backend itself.
    """
    return type(block).__dict__.get("step_backends", frozenset())


SOFT_CLAMP_SCALE = 0.636  # FrEIA's: clamp * 0.636 * atan(s) stays within ±clamp


def soft_clamp(s: Tensor, clamp: float) -> Tensor:
    """FrEIA's arctan soft clamp: ``clamp * 0.636 * atan(s)``, bounded by ``±clamp``."""
    return clamp * SOFT_CLAMP_SCALE * torch.atan(s)


def soft_clamp_derivative(s: Any, clamp: float) -> Any:
    """``d soft_clamp(s) / ds = clamp * 0.636 / (1 + s^2)``. Plain arithmetic, so the same function serves
    tensors, floats and the compiled kernels of :mod:`ginmi.fused` (which jit it)."""
    return clamp * SOFT_CLAMP_SCALE / (1 + s * s)


def affine_log_scales(o: Tensor, n: int, clamp: float, centre: bool, dim: int = 1) -> tuple[Tensor, Tensor, Tensor]:
    """Split a subnet output along ``dim`` into raw log-scales (its first ``n`` entries) and shifts; return
    ``(s_raw, s, t)`` with ``s`` the soft-clamped log-scales, centred over ``dim`` if ``centre`` (GIN)."""
    s_raw, t = torch.split(o, n, dim=dim)  # one split node instead of two slices
    s = soft_clamp(s_raw, clamp)
    if centre:
        s = s - s.mean(dim, keepdim=True)
    return s_raw, s, t


class _Affine(torch.autograd.Function):
    """``y = x * exp(s) + t`` with ``(s, t)`` from the subnet output ``o`` by :func:`affine_log_scales`
    along ``dim``. One autograd node with a hand-written backward: about half the kernels of
    differentiating the dozen elementwise ops. The classic ``forward(ctx, ...)`` form: torch.func
    transforms refuse it (nothing vmaps the flows), and the ``setup_context`` form they need costs a
    quarter more per call.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, o: Tensor, clamp: float, centre: bool, dim: int) -> Tensor:
        s_raw, s, t = affine_log_scales(o, x.shape[dim], clamp, centre, dim)
        e = torch.exp(s)
        ctx.save_for_backward(x, e, s_raw)
        ctx.clamp, ctx.centre, ctx.dim = clamp, centre, dim
        return torch.addcmul(t, x, e)

    @staticmethod
    @torch.autograd.function.once_differentiable  # e and s_raw are saved as constants: no double backward
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, None, None, None]:
        x, e, s_raw = ctx.saved_tensors
        grad_x = grad * e
        grad_s = grad_x * x
        if ctx.centre:
            grad_s = grad_s - grad_s.mean(ctx.dim, keepdim=True)
        grad_s.mul_(soft_clamp_derivative(s_raw, ctx.clamp))
        return grad_x, torch.cat((grad_s, grad), ctx.dim), None, None, None


def affine(x: Tensor, o: Tensor, clamp: float, centre: bool, dim: int = 1) -> Tensor:
    """``x * exp(s) + t`` with ``(s, t)`` from the subnet output ``o`` (:func:`affine_log_scales`)."""
    return _Affine.apply(x, o, clamp, centre, dim)


class AffineCoupling(nn.Module):
    """Two-sided affine coupling (RealNVP/GLOW design with one subnet per half).

    The input is split along dimension 1 into ``x1`` (first ``round(C/2)`` channels) and
    ``x2``. Then ``y1 = x1 * exp(s2(x2)) + t2(x2)`` and ``y2 = x2 * exp(s1(y1)) + t1(y1)``.
    Log-scales are soft-clamped. With ``volume_preserving=True`` (GIN, paper Eq. 15) the
    log-scales have their mean over dimension 1 subtracted, so they sum to zero at every
    position and the Jacobian determinant is exactly 1.
    """

    # the speed paths that compute exactly this class's function (see declared_backends)
    step_backends: ClassVar[frozenset[str]] = frozenset({"stacked"})

    def __init__(
        self,
        channels: int,
        subnet_constructor: SubnetConstructor,
        *,
        clamp: float = 2.0,
        volume_preserving: bool = True,
    ) -> None:
        super().__init__()
        if channels < 2:
            raise ValueError(f"a coupling needs at least 2 channels to split, got {channels}")
        self.split1 = round(channels * 0.5)
        self.split2 = channels - self.split1
        self.clamp = clamp
        self.volume_preserving = volume_preserving
        self.subnet1 = subnet_constructor(self.split1, 2 * self.split2)
        self.subnet2 = subnet_constructor(self.split2, 2 * self.split1)

    def _scale_shift(self, subnet: nn.Module, u: Tensor, n: int) -> tuple[Tensor, Tensor]:
        _, s, t = affine_log_scales(subnet(u), n, self.clamp, self.volume_preserving)
        return s, t

    def _half(self, o: Tensor, x: Tensor, dim: int) -> tuple[Tensor, Tensor | None]:
        """``x * exp(s) + t`` with ``(s, t)`` from the subnet output ``o``, and the log-scale sum over
        ``dim`` and the dimensions after it, unless volume-preserving."""
        y = affine(x, o, self.clamp, self.volume_preserving, dim)
        if self.volume_preserving:
            return y, None
        return y, soft_clamp(o.narrow(dim, 0, x.shape[dim]), self.clamp).flatten(dim).sum(dim)

    def couple(
        self, x: Tensor, subnet1: Callable[[Tensor], Tensor], subnet2: Callable[[Tensor], Tensor], dim: int = 1
    ) -> tuple[Tensor, Tensor | None]:
        """The coupling along ``dim`` with the given subnets; ``None`` for an exactly-zero log-det.

        The forward pass is ``couple(x, self.subnet1, self.subnet2)``; the stacked trainer of
        :func:`ginmi.training.train_many` passes subnets batched over a leading model dimension.
        """
        x1, x2 = torch.split(x, [self.split1, self.split2], dim=dim)
        y1, ld1 = self._half(subnet2(x2), x1, dim)
        y2, ld2 = self._half(subnet1(y1), x2, dim)
        return torch.cat((y1, y2), dim), None if ld1 is None or ld2 is None else ld1 + ld2

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        y, log_det = self._forward(x)
        return y, log_det if log_det is not None else x.new_zeros(x.shape[0])

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        # log-det None means exactly 0: SequentialFlow then skips allocating and adding zeros
        return self.couple(x, self.subnet1, self.subnet2)

    def inverse(self, y: Tensor) -> Tensor:
        y1, y2 = torch.split(y, [self.split1, self.split2], dim=1)
        s1, t1 = self._scale_shift(self.subnet1, y1, self.split2)
        x2 = (y2 - t1) * torch.exp(-s1)
        s2, t2 = self._scale_shift(self.subnet2, x2, self.split1)
        x1 = (y1 - t2) * torch.exp(-s2)
        return torch.cat((x1, x2), 1)


class GINCoupling(AffineCoupling):
    """Volume-preserving GIN coupling (paper Eq. 14-15): log|det J| is exactly 0."""

    step_backends: ClassVar[frozenset[str]] = frozenset({"stacked", "fused"})

    def __init__(self, channels: int, subnet_constructor: SubnetConstructor, *, clamp: float = 2.0) -> None:
        super().__init__(channels, subnet_constructor, clamp=clamp, volume_preserving=True)


class GLOWCoupling(AffineCoupling):
    """Non-volume-preserving affine coupling (GLOW/RealNVP), for ablations and data generation."""

    step_backends: ClassVar[frozenset[str]] = frozenset({"stacked"})

    def __init__(self, channels: int, subnet_constructor: SubnetConstructor, *, clamp: float = 2.0) -> None:
        super().__init__(channels, subnet_constructor, clamp=clamp, volume_preserving=False)


class Permutation(nn.Module):
    """Fixed random permutation of dimension 1, drawn from a private generator.

    The permutation is a buffer, so it is saved with the model and restored exactly.
    """

    step_backends: ClassVar[frozenset[str]] = frozenset({"stacked", "fused"})

    perm: Tensor  # buffers, declared for type checkers
    inv_perm: Tensor

    def __init__(self, channels: int, *, seed: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(int(seed))
        perm = torch.randperm(channels, generator=generator)
        self.register_buffer("perm", perm)
        self.register_buffer("inv_perm", torch.argsort(perm))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x.index_select(1, self.perm), x.new_zeros(x.shape[0])

    def _forward(self, x: Tensor) -> tuple[Tensor, None]:
        return x.index_select(1, self.perm), None

    def inverse(self, y: Tensor) -> Tensor:
        return y.index_select(1, self.inv_perm)


class Flatten(nn.Module):
    """Flatten ``(N, *shape)`` to ``(N, prod(shape))``; the inverse restores ``shape``."""

    def __init__(self, shape: Sequence[int]) -> None:
        super().__init__()
        self.shape = tuple(int(s) for s in shape)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x.reshape(x.shape[0], -1), x.new_zeros(x.shape[0])

    def inverse(self, y: Tensor) -> Tensor:
        return y.reshape(y.shape[0], *self.shape)


class IRevNetDownsampling(nn.Module):
    """i-RevNet invertible downsampling (Jacobsen et al. 2018): ``(N, C, H, W) -> (N, 4C, H/2, W/2)``.

    Each 2x2 patch of a channel becomes 4 channels, in FrEIA's ``IRevNetDownsampling`` order
    (its default, non-legacy backend): output channel ``4c + 2i + j`` holds pixel ``(2h + i, 2w + j)``
    of input channel ``c``. A pure reordering of values, so ``log|det J| = 0``.
    """

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        n, c, h, w = x.shape
        if h % 2 or w % 2:
            raise ValueError(f"i-RevNet downsampling needs even height and width, got {h}x{w}")
        y = x.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
        return y.reshape(n, 4 * c, h // 2, w // 2), x.new_zeros(n)

    def inverse(self, y: Tensor) -> Tensor:
        n, c4, h, w = y.shape
        x = y.reshape(n, c4 // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
        return x.reshape(n, c4 // 4, 2 * h, 2 * w)


class SequentialFlow(nn.Module):
    """A chain of invertible blocks; forward sums their log-determinants."""

    def __init__(self, blocks: Sequence[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        # Blocks with ``_forward`` return None for an exactly-zero log-det (GIN couplings,
        # permutations); skipping those zeros saves two ops and two autograd nodes per block.
        log_det = None
        for block in self.blocks:
            fast = getattr(block, "_forward", None)
            x, ld = fast(x) if fast is not None else block(x)
            if ld is not None:
                log_det = ld if log_det is None else log_det + ld
        return x, log_det if log_det is not None else x.new_zeros(x.shape[0])

    def inverse(self, w: Tensor) -> Tensor:
        for block in reversed(self.blocks):
            w = block.inverse(w)  # type: ignore[operator]  # a ModuleList's items are typed as plain Modules
        return w
