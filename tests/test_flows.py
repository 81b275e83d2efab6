"""Generic checks for every invertible block: invertibility, log-det against the autograd
Jacobian (exactly 0 for GIN), gradients, save/load, identity at initialisation."""

from __future__ import annotations

import io

import pytest
import torch

from ginmi.architectures import build_flow, mlp_subnet, vector_flow
from ginmi.flows import Flatten, GINCoupling, GLOWCoupling, Permutation, SequentialFlow, soft_clamp


def _conv_subnet(c_in: int, c_out: int) -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv2d(c_in, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, c_out, 3, padding=1)
    )


def _random_mlp(c_in: int, c_out: int) -> torch.nn.Module:
    return mlp_subnet(6, zero_last=False)(c_in, c_out)


CASES = {
    "gin-vector": (lambda: GINCoupling(5, _random_mlp), (5,)),
    "glow-vector": (lambda: GLOWCoupling(5, _random_mlp), (5,)),
    "gin-image": (lambda: GINCoupling(3, _conv_subnet), (3, 2, 2)),
    "glow-image": (lambda: GLOWCoupling(3, _conv_subnet), (3, 2, 2)),
    "permutation": (lambda: Permutation(5, seed=3), (5,)),
    "flatten": (lambda: Flatten((2, 2, 2)), (2, 2, 2)),
    "gin-10d-net": (lambda: vector_flow(10, init_identity=False, seed=1), (10,)),
    "glow-10d-net": (lambda: vector_flow(10, coupling="glow", init_identity=False, seed=1), (10,)),
}


@pytest.fixture(params=list(CASES))
def case(request, device):
    torch.manual_seed(0)
    make, shape = CASES[request.param]
    return request.param, make().double().to(device), shape


def test_inverse_recovers_input(case, device):
    _, block, shape = case
    x = torch.randn(7, *shape, dtype=torch.float64, device=device)
    y, _ = block(x)
    torch.testing.assert_close(block.inverse(y), x, atol=1e-10, rtol=1e-10)


def test_inverse_float32_precision(device):
    flow = vector_flow(10, init_identity=False, seed=2).to(device)
    x = torch.randn(256, 10, device=device) * 3
    w, _ = flow(x)
    assert (flow.inverse(w) - x).abs().max() < 1e-4


def test_log_det_matches_autograd_jacobian(case, device):
    name, block, shape = case
    x = torch.randn(1, *shape, dtype=torch.float64, device=device)
    _, log_det = block(x)

    def f(v):
        return block(v.reshape(1, *shape))[0].reshape(-1)

    jac = torch.autograd.functional.jacobian(f, x.reshape(-1))
    sign, logabs = torch.linalg.slogdet(jac)
    assert sign != 0
    torch.testing.assert_close(log_det[0], logabs, atol=1e-9, rtol=1e-9)
    if name.startswith("gin") or name in ("permutation", "flatten"):
        assert abs(logabs.item()) < 1e-9  # volume preservation


def test_gradients_reach_every_parameter(case, device):
    _, block, shape = case
    params = list(block.parameters())
    if not params:
        pytest.skip("block has no parameters")
    x = torch.randn(4, *shape, dtype=torch.float64, device=device)
    y, log_det = block(x)
    (y.square().sum() + log_det.sum()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in params)
    assert any(p.grad.abs().sum() > 0 for p in params)


def test_state_dict_round_trip(case, device):
    name, block, shape = case
    buf = io.BytesIO()
    torch.save(block.state_dict(), buf)
    buf.seek(0)
    clone = CASES[name][0]().double().to(device)
    clone.load_state_dict(torch.load(buf, weights_only=True))
    x = torch.randn(3, *shape, dtype=torch.float64, device=device)
    torch.testing.assert_close(clone(x)[0], block(x)[0])


def test_identity_at_initialisation():
    flow = vector_flow(10, init_identity=True, seed=0)
    x = torch.randn(20, 10)
    w, log_det = flow(x)
    # couplings are the identity, so the net is the composition of the permutations
    perm = torch.arange(10)
    for block in flow.blocks:
        if isinstance(block, Permutation):
            perm = perm[block.perm]
    torch.testing.assert_close(w, x[:, perm])
    assert torch.all(log_det == 0)


def test_soft_clamp_bounds_log_scales():
    s = torch.tensor([-1e6, -1.0, 0.0, 1.0, 1e6])
    c = soft_clamp(s, 2.0)
    assert c.abs().max() <= 2.0
    assert c[2] == 0 and torch.all(torch.diff(c) > 0)


def test_gin_scales_sum_to_zero_per_position():
    block = GINCoupling(6, _random_mlp).double()
    s, _ = block._scale_shift(block.subnet2, torch.randn(5, 3, dtype=torch.float64), block.split1)
    torch.testing.assert_close(s.sum(1), torch.zeros(5, dtype=torch.float64), atol=1e-12, rtol=0)


def test_permutations_do_not_touch_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    Permutation(10, seed=5)
    build_flow({"name": "vector", "dim": 10, "seed": 9})
    torch.testing.assert_close(torch.rand(3), expected)


def test_build_flow_is_reproducible_and_rejects_unknown_names():
    a = build_flow({"name": "vector", "dim": 6, "init_identity": False, "seed": 4})
    b = build_flow({"name": "vector", "dim": 6, "init_identity": False, "seed": 4})
    x = torch.randn(5, 6)
    torch.testing.assert_close(a(x)[0], b(x)[0])
    with pytest.raises(ValueError, match="unknown architecture"):
        build_flow({"name": "nope"})
    with pytest.raises(ValueError, match="coupling"):
        vector_flow(6, coupling="nice")


def test_sequential_flow_sums_log_dets():
    torch.manual_seed(0)
    a, b = GLOWCoupling(4, _random_mlp).double(), GLOWCoupling(4, _random_mlp).double()
    x = torch.randn(3, 4, dtype=torch.float64)
    y1, l1 = a(x)
    y2, l2 = b(y1)
    y, ld = SequentialFlow([a, b])(x)
    torch.testing.assert_close(y, y2)
    torch.testing.assert_close(ld, l1 + l2)
