"""The GIN image network: i-RevNet downsampling (FrEIA's channel order), invertibility, volume
preservation against the autograd Jacobian, the reference structure, identity initialisation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ginmi.architectures import build_flow, conv_subnet, image_flow
from ginmi.flows import Flatten, GINCoupling, IRevNetDownsampling, Permutation
from ginmi.model import GINModel, load_model

TINY = {
    "name": "image",
    "input_shape": [1, 8, 8],
    "conv_widths": [4, 6],
    "n_conv_blocks": 2,
    "fc_width": 12,
    "n_fc_blocks": 2,
    "seed": 3,
}


def _randomise(flow: torch.nn.Module) -> torch.nn.Module:
    """Perturb every weight so the couplings are far from the identity (the last layers start at 0)."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    return flow


def _freia_kernel(channels: int) -> torch.Tensor:
    """The downsampling kernel of FrEIA's IRevNetDownsampling (default backend)."""
    kernel = torch.zeros(4, 1, 2, 2, dtype=torch.float64)
    kernel[0, 0, 0, 0] = kernel[1, 0, 0, 1] = kernel[2, 0, 1, 0] = kernel[3, 0, 1, 1] = 1
    return torch.cat([kernel] * channels, 0)


@pytest.mark.parametrize("shape", [(1, 4, 4), (3, 6, 8), (16, 14, 14)])
def test_downsampling_matches_freia_channel_order_and_inverts(shape, device):
    x = torch.randn(2, *shape, dtype=torch.float64, device=device)
    y, log_det = IRevNetDownsampling()(x)
    expected = F.conv2d(x, _freia_kernel(shape[0]).to(device), stride=2, groups=shape[0])
    assert torch.equal(y, expected)
    assert torch.equal(IRevNetDownsampling().inverse(y), x)
    assert torch.equal(log_det, torch.zeros(2, dtype=torch.float64, device=device))


def test_downsampling_rejects_odd_sizes():
    with pytest.raises(ValueError, match="even height and width"):
        IRevNetDownsampling()(torch.zeros(1, 1, 5, 4))


def test_tiny_image_flow_inverts_in_float64(device):
    flow = _randomise(build_flow(TINY)).double().to(device)
    x = torch.rand(5, 1, 8, 8, dtype=torch.float64, device=device)
    w, log_det = flow(x)
    assert w.shape == (5, 64)
    assert torch.allclose(flow.inverse(w), x, atol=1e-10)
    assert torch.equal(log_det, torch.zeros_like(log_det))


def test_tiny_image_flow_preserves_volume_exactly(device):
    flow = _randomise(build_flow(TINY)).double().to(device)
    x = torch.rand(1, 1, 8, 8, dtype=torch.float64, device=device)
    jac = torch.autograd.functional.jacobian(lambda v: flow(v.reshape(1, 1, 8, 8))[0].reshape(-1), x.reshape(-1))
    sign, log_abs_det = torch.linalg.slogdet(jac)
    assert sign.abs() == 1
    assert abs(log_abs_det.item()) < 1e-9
    assert not torch.allclose(
        jac, torch.eye(64, dtype=torch.float64, device=device).index_select(0, jac.abs().argmax(1))
    )  # really non-linear, not a permutation


def test_reference_structure_and_identity_initialisation():
    flow = build_flow({"name": "image", "input_shape": [1, 28, 28], "seed": 0})
    kinds = [type(b) for b in flow.blocks]
    assert kinds.count(IRevNetDownsampling) == 2
    assert kinds.count(Flatten) == 1
    assert kinds.count(GINCoupling) == 10 and kinds.count(Permutation) == 10
    convs = [b for b in flow.blocks if isinstance(b, GINCoupling)]
    assert [c.subnet1[0].out_channels for c in convs[:8]] == [16] * 4 + [32] * 4
    assert [c.subnet1[0].out_features for c in convs[8:]] == [392, 392]
    x = torch.rand(3, 1, 28, 28)
    w, _ = flow(x)
    assert w.shape == (3, 784)
    # zero last layers: the untrained flow only reorders pixels
    assert torch.equal(torch.sort(w, 1).values, torch.sort(x.reshape(3, -1), 1).values)


def test_image_flow_rejects_indivisible_sizes():
    with pytest.raises(ValueError, match="divisible by 4"):
        image_flow((1, 30, 30))


def test_conv_subnet_starts_at_zero_and_keeps_spatial_size():
    net = conv_subnet(8)(3, 6)
    out = net(torch.randn(2, 3, 7, 7))
    assert out.shape == (2, 6, 7, 7) and torch.count_nonzero(out) == 0


def test_image_model_forward_loss_inverse_and_save_load(tmp_path):
    model = GINModel(TINY, n_classes=3, stats="batch")
    _randomise(model.flow)
    x, u = torch.rand(9, 1, 8, 8), torch.arange(9) % 3
    w = model.transform(x)
    assert w.shape == (9, 64)
    assert torch.allclose(model.inverse(w), x, atol=1e-5)
    assert torch.isfinite(model.loss(x, u))
    model.save(tmp_path / "model.pt")
    loaded = load_model(tmp_path / "model.pt")
    assert loaded.input_shape == (1, 8, 8)
    assert torch.equal(loaded.transform(x), w.detach())
