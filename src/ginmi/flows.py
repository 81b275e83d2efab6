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

from typing import Callable, Sequence

import torch
from torch import Tensor, nn

__all__ = [
    "SubnetConstructor",
    "soft_clamp",
    "AffineCoupling",
    "GINCoupling",
    "GLOWCoupling",
    "Permutation",
    "Flatten",
    "IRevNetDownsampling",
    "SequentialFlow",
]

SubnetConstructor = Callable[[int, int], nn.Module]


SOFT_CLAMP_SCALE = 0.636  # FrEIA's: clamp * 0.636 * atan(s) stays within ±clamp


def soft_clamp(s: Tensor, clamp: float) -> Tensor:
    """FrEIA's arctan soft clamp: ``clamp * 0.636 * atan(s)``, bounded by ``±clamp``."""
    return clamp * SOFT_CLAMP_SCALE * torch.atan(s)


def _log_scales(o: Tensor, n: int, clamp: float, centre: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Split a subnet output into raw log-scales (first ``n`` of dimension 1) and shifts; return
    ``(s_raw, s, t)`` with ``s`` the soft-clamped log-scales, centred over dimension 1 if ``centre``."""
    s_raw, t = torch.split(o, n, dim=1)  # one split node instead of two slices
    s = soft_clamp(s_raw, clamp)
    if centre:
        s = s - s.mean(1, keepdim=True)
    return s_raw, s, t


class _Affine(torch.autograd.Function):
    """``y = x * exp(s) + t`` with ``(s_raw, t)`` the halves of the subnet output ``o`` and ``s`` the
    soft-clamped ``s_raw``, centred over dimension 1 when ``centre`` (GIN). One autograd node with a
    hand-written backward: about half the kernels of differentiating the dozen elementwise ops.
    """

    @staticmethod
    def forward(ctx, x: Tensor, o: Tensor, clamp: float, centre: bool) -> Tensor:
        s_raw, s, t = _log_scales(o, x.shape[1], clamp, centre)
        e = torch.exp(s)
        ctx.save_for_backward(x, e, s_raw)
        ctx.clamp, ctx.centre = clamp, centre
        return torch.addcmul(t, x, e)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, None, None]:
        x, e, s_raw = ctx.saved_tensors
        grad_x = grad * e
        grad_s = grad_x * x
        if ctx.centre:
            grad_s = grad_s - grad_s.mean(1, keepdim=True)
        grad_s = grad_s.div_(s_raw.square().add_(1)).mul_(ctx.clamp * SOFT_CLAMP_SCALE)  # d atan(s)/ds = 1 / (1 + s^2)
        return grad_x, torch.cat((grad_s, grad), 1), None, None


class AffineCoupling(nn.Module):
    """Two-sided affine coupling (RealNVP/GLOW design with one subnet per half).

    The input is split along dimension 1 into ``x1`` (first ``round(C/2)`` channels) and
    ``x2``. Then ``y1 = x1 * exp(s2(x2)) + t2(x2)`` and ``y2 = x2 * exp(s1(y1)) + t1(y1)``.
    Log-scales are soft-clamped. With ``volume_preserving=True`` (GIN, paper Eq. 15) the
    log-scales have their mean over dimension 1 subtracted, so they sum to zero at every
    position and the Jacobian determinant is exactly 1.
    """

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
        _, s, t = _log_scales(subnet(u), n, self.clamp, self.volume_preserving)
        return s, t

    def _half(self, subnet: nn.Module, u: Tensor, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """``x * exp(s) + t`` with ``(s, t)`` from ``subnet(u)``, and the log-scale sum unless volume-preserving."""
        o = subnet(u)
        y = _Affine.apply(x, o, self.clamp, self.volume_preserving)
        if self.volume_preserving:
            return y, None
        return y, soft_clamp(o[:, :x.shape[1]], self.clamp).flatten(1).sum(1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        y, log_det = self._forward(x)
        return y, log_det if log_det is not None else x.new_zeros(x.shape[0])

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        # log-det None means exactly 0: SequentialFlow then skips allocating and adding zeros
        x1, x2 = torch.split(x, [self.split1, self.split2], dim=1)
        y1, ld1 = self._half(self.subnet2, x2, x1)
        y2, ld2 = self._half(self.subnet1, y1, x2)
        return torch.cat((y1, y2), 1), None if self.volume_preserving else ld1 + ld2

    def inverse(self, y: Tensor) -> Tensor:
        y1, y2 = torch.split(y, [self.split1, self.split2], dim=1)
        s1, t1 = self._scale_shift(self.subnet1, y1, self.split2)
        x2 = (y2 - t1) * torch.exp(-s1)
        s2, t2 = self._scale_shift(self.subnet2, x2, self.split1)
        x1 = (y1 - t2) * torch.exp(-s2)
        return torch.cat((x1, x2), 1)


class GINCoupling(AffineCoupling):
    """Volume-preserving GIN coupling (paper Eq. 14-15): log|det J| is exactly 0."""

    def __init__(self, channels: int, subnet_constructor: SubnetConstructor, *, clamp: float = 2.0) -> None:
        super().__init__(channels, subnet_constructor, clamp=clamp, volume_preserving=True)


class GLOWCoupling(AffineCoupling):
    """Non-volume-preserving affine coupling (GLOW/RealNVP), for ablations and data generation."""

    def __init__(self, channels: int, subnet_constructor: SubnetConstructor, *, clamp: float = 2.0) -> None:
        super().__init__(channels, subnet_constructor, clamp=clamp, volume_preserving=False)


class Permutation(nn.Module):
    """Fixed random permutation of dimension 1, drawn from a private generator.

    The permutation is a buffer, so it is saved with the model and restored exactly.
    """

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
            w = block.inverse(w)
        return w
