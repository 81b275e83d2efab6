"""Mixed precision of the coupling subnets: bf16 convolutions and linear layers, fp32 everything else.

With ``precision="bf16"`` each coupling subnet runs, while the model trains, under ``torch.autocast``
in bfloat16 and hands its output back in the input's dtype, so the subnets' matrix products use the
CPU's bf16 units (AVX-512-BF16, AMX) or a GPU's tensor cores. Everything the density depends on
stays in the model's dtype (float32): the affine coupling ``x * exp(s) + t`` and its inverse, the
log-scales, the loss, the class statistics, the weights and the optimizer state. In eval mode the
subnets compute in float32 (see :class:`AutocastSequential`), so latents, densities and the inverse
come from one exactly invertible float32 flow.

``"auto"`` resolves to bf16 where the device computes it natively (a CPU with ``avx512_bf16`` or
``amx_bf16``, a CUDA GPU with bf16 support) and to fp32 elsewhere, where bf16 would be emulated
and slower.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from ginmi.precision import AutocastSequential, resolve_precision
    >>> net = AutocastSequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 4))
    >>> x = torch.randn(3, 4)
    >>> net(x).dtype, bool((net(x) - net.eval()(x)).abs().max() > 0)  # training: bf16; eval: fp32
    (torch.float32, True)
    >>> resolve_precision("fp32"), resolve_precision("auto") in ("fp32", "bf16")
    ('fp32', True)
"""

from __future__ import annotations

import functools
import sys

import torch
from torch import Tensor, nn

__all__ = ["PRECISIONS", "native_bf16", "resolve_precision", "AutocastSequential", "set_subnet_precision"]

PRECISIONS = ("fp32", "bf16", "auto")
_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=1)
def _cpu_flags() -> frozenset[str]:
    """The CPU feature flags of ``/proc/cpuinfo`` (Linux); empty elsewhere or when unreadable."""
    if not sys.platform.startswith("linux"):
        return frozenset()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16(device: str | torch.device = "cpu") -> bool:
    """Whether ``device`` computes bfloat16 matrix products natively (not emulated in fp32).

    CPU: the ``avx512_bf16`` or ``amx_bf16`` flag and a torch built with oneDNN; CUDA: the GPU's bf16
    support (compute capability 8.0 or newer). Other devices: False.
    """
    device = torch.device(device)
    if device.type == "cpu":
        return torch.backends.mkldnn.is_available() and any(f in _cpu_flags() for f in _BF16_CPU_FLAGS)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    return False


def resolve_precision(precision: str, device: str | torch.device = "cpu") -> str:
    """``"fp32"`` or ``"bf16"`` for ``precision`` in :data:`PRECISIONS` on ``device`` (``"auto"``:
    bf16 where :func:`native_bf16`, else fp32)."""
    if precision not in PRECISIONS:
        raise ValueError(f"`precision` must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


class AutocastSequential(nn.Sequential):
    """An ``nn.Sequential`` computed under bfloat16 autocast in training mode, returning its input's dtype.

    Same layers and state-dict keys as the ``nn.Sequential`` it replaces, so a model's weights load
    in either precision. Autocast runs convolutions and linear layers in bf16 from float32
    weights (gradients and optimizer state stay float32); other dtypes (a float64 model) are left alone.

    In eval mode it computes in the input's dtype: rounding the subnet input to bf16 makes the
    subnet a step function of it, so an inverse that recovers a coupling input to float32 rounding
    can land on the other side of a step, and the error cascades through the earlier couplings
    (measured on the image network: inverse error up to 2e-3 in bf16 against 8e-7 in fp32). The
    trained float32 weights evaluated in float32 are the model (as in any mixed-precision training):
    its forward and inverse are exact to float32 rounding, and every density and latent the tasks
    read comes from that one function.
    """

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or x.dtype != torch.float32:
            return super().forward(x)
        # images enter channels-last: oneDNN's bf16 convolutions then skip a reorder of every
        # activation (measured 1.3x on the image network's step); the output goes back to the
        # float32 NCHW layout that the coupling arithmetic expects
        layout = torch.channels_last if x.dim() == 4 else torch.contiguous_format
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            out = super().forward(x.to(torch.bfloat16, memory_format=layout))
        return out.to(x.dtype, memory_format=torch.contiguous_format)


def set_subnet_precision(flow: nn.Module, precision: str) -> None:
    """Make every coupling subnet (``subnet1``/``subnet2`` of the blocks of ``flow``) compute in
    ``precision`` (``"fp32"`` or ``"bf16"``), in place; the layers and their weights are kept."""
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"`precision` must be 'fp32' or 'bf16' here (resolve 'auto' first), got {precision!r}")
    kind = AutocastSequential if precision == "bf16" else nn.Sequential
    for block in flow.modules():
        for name in ("subnet1", "subnet2"):
            net = getattr(block, name, None)
            if net is None or type(net) is kind:
                continue
            if not isinstance(net, nn.Sequential):
                raise ValueError(f"`precision` {precision!r} needs nn.Sequential subnets, got {type(net).__name__}")
            setattr(block, name, kind(*net))
