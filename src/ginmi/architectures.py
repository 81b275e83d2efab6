"""Network architectures of the GIN paper, built from :mod:`ginmi.flows`.

An architecture is described by a plain dict (``{"name": "vector", "dim": 10, ...}``) so that a
saved model can be rebuilt from its file without pickled code: :func:`build_flow` maps the
name to a builder registered in :data:`ARCHITECTURES`.

Example:
    >>> from ginmi.architectures import build_flow
    >>> flow = build_flow({"name": "vector", "dim": 10, "seed": 0})
    >>> sum(isinstance(b, __import__("ginmi").flows.GINCoupling) for b in flow.blocks)
    8
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ginmi.flows import (
    Flatten,
    GINCoupling,
    GLOWCoupling,
    IRevNetDownsampling,
    Permutation,
    SequentialFlow,
    SubnetConstructor,
)

__all__ = [
    "COUPLINGS",
    "ARCHITECTURES",
    "mlp_subnet",
    "conv_subnet",
    "vector_flow",
    "image_flow",
    "build_flow",
    "register_architecture",
]

COUPLINGS = {"gin": GINCoupling, "glow": GLOWCoupling}


def _initialise(net: nn.Sequential, *, zero_last: bool, xavier: bool) -> nn.Sequential:
    """Xavier-normal weights for every layer (optional); zero last layer for identity initialisation."""
    if xavier:
        for layer in net:
            if isinstance(layer, (nn.Linear, nn.Conv2d)):
                nn.init.xavier_normal_(layer.weight)
    last = net[-1]
    if zero_last and isinstance(last, (nn.Linear, nn.Conv2d)):
        nn.init.zeros_(last.weight)
        if last.bias is not None:
            nn.init.zeros_(last.bias)
    return net


def mlp_subnet(width: int, *, zero_last: bool = True, xavier: bool = False) -> SubnetConstructor:
    """Constructor of fully-connected subnets ``c_in -> width -> width -> c_out`` with ReLUs.

    ``zero_last`` zeroes the last layer so that the coupling starts as the identity (the GIN
    reference's ``init_identity``); ``xavier`` uses Xavier-normal weights as the reference's
    image network does (otherwise PyTorch's default initialisation, as its 10-D network).
    """

    def construct(c_in: int, c_out: int) -> nn.Module:
        net = nn.Sequential(
            nn.Linear(c_in, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, c_out)
        )
        return _initialise(net, zero_last=zero_last, xavier=xavier)

    return construct


def vector_flow(
    dim: int = 10,
    n_blocks: int = 8,
    width: int = 10,
    coupling: str = "gin",
    init_identity: bool = True,
    clamp: float = 2.0,
    seed: int = 0,
) -> SequentialFlow:
    """The GIN paper's network for vector data: ``n_blocks`` couplings, each followed by a permutation.

    The defaults are the 10-D network of the paper (8 GIN couplings, subnets of width 10).
    """
    if coupling not in COUPLINGS:
        raise ValueError(f"`coupling` must be one of {sorted(COUPLINGS)}, got {coupling!r}")
    block = COUPLINGS[coupling]
    subnet = mlp_subnet(width, zero_last=init_identity)
    blocks: list[nn.Module] = []
    for k in range(n_blocks):
        blocks.append(block(dim, subnet, clamp=clamp))
        blocks.append(Permutation(dim, seed=seed * 1000 + k))
    return SequentialFlow(blocks)


def conv_subnet(width: int, *, zero_last: bool = True, xavier: bool = True) -> SubnetConstructor:
    """Constructor of convolutional subnets ``Conv3x3(c_in, width) ReLU Conv3x3(width, width) ReLU
    Conv3x3(width, c_out)`` (padding 1), Xavier-normal weights and a zero last layer by default,
    as the GIN reference's EMNIST network (``subnet_conv1``/``subnet_conv2``)."""

    def construct(c_in: int, c_out: int) -> nn.Module:
        net = nn.Sequential(
            nn.Conv2d(c_in, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, c_out, 3, padding=1),
        )
        return _initialise(net, zero_last=zero_last, xavier=xavier)

    return construct


def image_flow(
    input_shape: Sequence[int] = (1, 28, 28),
    conv_widths: Sequence[int] = (16, 32),
    n_conv_blocks: int = 4,
    fc_width: int = 392,
    n_fc_blocks: int = 2,
    coupling: str = "gin",
    clamp: float = 2.0,
    seed: int = 0,
) -> SequentialFlow:
    """The GIN paper's image network (GIN Appendix D, the reference's ``construct_net_emnist``).

    For each width in ``conv_widths``: i-RevNet downsampling, then ``n_conv_blocks`` convolutional
    couplings (subnets of that width), each followed by a random channel permutation. Then a
    flatten and ``n_fc_blocks`` fully-connected couplings (width ``fc_width``) with permutations.
    The defaults give the 784-dimensional EMNIST network; the last subnet layers are zero, so the
    flow starts as a fixed reordering of the pixels (identity initialisation).
    """
    if coupling not in COUPLINGS:
        raise ValueError(f"`coupling` must be one of {sorted(COUPLINGS)}, got {coupling!r}")
    c, h, w = (int(s) for s in input_shape)
    scale = 2 ** len(conv_widths)
    if h % scale or w % scale:
        raise ValueError(
            f"image height and width must be divisible by {scale} for {len(conv_widths)} downsamplings, got {h}x{w}"
        )
    block = COUPLINGS[coupling]
    blocks: list[nn.Module] = []
    k = 0
    for width in conv_widths:
        blocks.append(IRevNetDownsampling())
        c, h, w = 4 * c, h // 2, w // 2
        for _ in range(n_conv_blocks):
            blocks.append(block(c, conv_subnet(width), clamp=clamp))
            blocks.append(Permutation(c, seed=seed * 1000 + k))
            k += 1
    blocks.append(Flatten((c, h, w)))
    for _ in range(n_fc_blocks):
        blocks.append(block(c * h * w, mlp_subnet(fc_width, xavier=True), clamp=clamp))
        blocks.append(Permutation(c * h * w, seed=seed * 1000 + k))
        k += 1
    return SequentialFlow(blocks)


ARCHITECTURES: dict[str, Callable[..., SequentialFlow]] = {"vector": vector_flow, "image": image_flow}


def register_architecture(name: str, builder: Callable[..., SequentialFlow]) -> None:
    """Make ``builder`` available to :func:`build_flow` (and to saved models) under ``name``."""
    ARCHITECTURES[name] = builder


def build_flow(spec: dict[str, Any]) -> SequentialFlow:
    """Build the flow described by ``spec`` with weights drawn from its ``seed`` (default 0).

    The global RNG state is left untouched, so building is reproducible wherever it happens.
    """
    spec = dict(spec)
    name = spec.pop("name")
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; known: {sorted(ARCHITECTURES)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(spec.get("seed", 0)))
        return ARCHITECTURES[name](**spec)
