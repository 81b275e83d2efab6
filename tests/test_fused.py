"""The fused training step computes the loss and gradient of GINModel.loss exactly as autograd does."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from ginmi.fused import FlatAdam, FlatParameters, FusedStep, supports
from ginmi.model import GINModel
from ginmi.training import TrainConfig, train

pytest.importorskip("numba")


def _perturbed_model(dim: int, width: int, stats: str, dtype: torch.dtype = torch.float64) -> GINModel:
    model = GINModel(
        {"name": "vector", "dim": dim, "width": width, "n_blocks": 3, "init_identity": False, "seed": 1},
        n_classes=3,
        stats=stats,
    ).to(dtype)
    g = torch.Generator().manual_seed(dim)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=dtype))
        model.set_standardization(
            torch.randn(dim, generator=g, dtype=dtype), torch.rand(dim, generator=g, dtype=dtype) + 0.5
        )
    return model


@pytest.mark.parametrize("stats", ["trainable", "batch"])
@pytest.mark.parametrize("dim,width", [(10, 10), (5, 7), (3, 4), (2, 16), (40, 48)])  # 48: BLAS layers
def test_loss_and_gradient_equal_autograd(stats, dim, width):
    model = _perturbed_model(dim, width, stats)
    g = torch.Generator().manual_seed(0)
    x, u = 2 * torch.randn(50, dim, generator=g, dtype=torch.float64), torch.arange(50) % 3
    params = [p for p in model.parameters() if p.requires_grad]
    loss = model.loss(x, u)
    expected = torch.autograd.grad(loss, params)
    flat = FlatParameters(params)
    value = FusedStep(model, flat.flat.data, flat.flat.grad)(x, u)
    assert value == pytest.approx(loss.item(), rel=1e-12)
    scale = max(float(e.abs().max()) for e in expected)
    for p, e in zip(params, expected):
        torch.testing.assert_close(p.grad, e, rtol=0, atol=1e-11 * scale)


def test_a_class_missing_from_the_batch_is_ignored_with_batch_statistics():
    model = _perturbed_model(4, 8, "batch")
    x, u = torch.randn(20, 4, dtype=torch.float64), torch.arange(20) % 2  # class 2 absent
    params = [p for p in model.parameters() if p.requires_grad]
    flat = FlatParameters(params)
    assert FusedStep(model, flat.flat.data, flat.flat.grad)(x, u) == pytest.approx(model.loss(x, u).item())


def test_supports_only_cpu_vector_gin_flows():
    assert supports(GINModel({"name": "vector", "dim": 4, "width": 8}, 2))
    assert not supports(GINModel({"name": "vector", "dim": 4, "width": 8, "coupling": "glow"}, 2))
    assert not supports(
        GINModel(
            {
                "name": "image",
                "input_shape": (1, 4, 4),
                "conv_widths": (4,),
                "n_conv_blocks": 1,
                "fc_width": 8,
                "n_fc_blocks": 1,
            },
            2,
        )
    )
    assert not supports(GINModel({"name": "vector", "dim": 4, "width": 8}, 2).half())
    model = GINModel({"name": "vector", "dim": 4, "width": 8}, 2)
    with pytest.raises(ValueError, match="contiguous view"):
        FusedStep(model, torch.zeros(10), torch.zeros(10))


@pytest.mark.parametrize("stats", ["trainable", "batch"])
def test_training_with_the_fused_step_follows_autograd(stats):
    g = torch.Generator().manual_seed(0)
    u = torch.arange(240) % 3
    x = torch.randn(240, 5, generator=g) + u[:, None].float()
    config = TrainConfig(epochs=2, batch_size=60, warmup_steps=2, device="cpu")
    runs = {}
    for fused in (True, False):
        model = GINModel({"name": "vector", "dim": 5, "width": 8, "n_blocks": 4, "seed": 2}, 3, stats=stats)
        runs[fused] = train(model, x, u, replace(config, fused=fused), progress=False)["step_loss"]
    # with batch statistics Adam amplifies rounding differences in near-zero gradients a little more
    rtol = 1e-4 if stats == "trainable" else 2e-3
    torch.testing.assert_close(torch.tensor(runs[True]), torch.tensor(runs[False]), rtol=rtol, atol=1e-5)
    assert runs[True][-1] < runs[True][0] - 0.1  # it trained


@pytest.mark.parametrize("weight_decay,max_norm", [(0.0, None), (1e-2, 0.5)])
def test_flat_adam_follows_torch_adam_and_shares_its_state_format(weight_decay, max_norm):
    g = torch.Generator().manual_seed(0)
    ours, theirs = torch.randn(50, generator=g, dtype=torch.float64), None
    theirs = torch.nn.Parameter(ours.clone())
    grads = torch.zeros_like(ours)
    adam = FlatAdam(ours, grads, lr=0.1, weight_decay=weight_decay)
    reference = torch.optim.Adam([theirs], lr=0.1, weight_decay=weight_decay)
    for step in range(6):
        lr = 0.1 * 0.5**step  # the trainer sets the scheduled rate before every step
        adam.param_groups[0]["lr"] = reference.param_groups[0]["lr"] = lr
        grads.copy_(torch.randn(50, generator=g, dtype=torch.float64) * 3)
        theirs.grad = grads.clone()
        norm = adam.step(max_norm)
        assert norm == pytest.approx(float(theirs.grad.norm()))
        if max_norm is not None:
            torch.nn.utils.clip_grad_norm_([theirs], max_norm)
        reference.step()
        torch.testing.assert_close(ours, theirs.detach(), rtol=1e-12, atol=1e-12)
    # state dicts load across: torch's Adam continues from ours exactly as ours does
    again = torch.nn.Parameter(ours.clone())
    resumed = torch.optim.Adam([again], lr=0.1)
    resumed.load_state_dict(adam.state_dict())
    copy = FlatAdam(ours.clone(), grads, lr=1.0)
    copy.load_state_dict(reference.state_dict())
    assert copy.steps == 6 and copy.param_groups[0]["weight_decay"] == weight_decay
    torch.testing.assert_close(copy.exp_avg_sq, reference.state[theirs]["exp_avg_sq"])
    again.grad = grads.clone()
    resumed.step()
    adam.step()
    torch.testing.assert_close(ours, again.detach(), rtol=1e-12, atol=1e-12)


def test_flat_adam_skips_a_non_finite_gradient():
    values, grads = torch.ones(4), torch.tensor([1.0, float("nan"), 0.0, 0.0])
    adam = FlatAdam(values, grads, lr=0.1)
    assert math.isnan(adam.step(1.0))
    assert adam.steps == 0 and torch.equal(values, torch.ones(4)) and not adam.exp_avg.any()


def test_auto_device_keeps_fused_networks_on_the_cpu(monkeypatch):
    from ginmi.training import resolve_device, training_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    vector = GINModel({"name": "vector", "dim": 4, "width": 8}, 2)
    glow = GINModel({"name": "vector", "dim": 4, "width": 8, "coupling": "glow"}, 2)
    assert resolve_device("auto", vector).type == "cpu"  # launch-bound on a GPU; the fused step is faster
    assert resolve_device("auto", glow).type == "cuda"
    assert resolve_device("auto").type == "cuda"
    assert resolve_device("cpu", glow).type == "cpu"
    # what runs record as their device is what train uses
    assert training_device(TrainConfig(), vector).type == "cpu"
    assert training_device(TrainConfig(fused=False), vector).type == "cuda"
    assert training_device(TrainConfig(device="cuda"), vector).type == "cuda"


@pytest.mark.parametrize("stats", ["trainable", "batch"])
def test_loss_and_gradient_equal_autograd_with_a_linear_stage(stats):
    model = _perturbed_model(5, 7, stats)
    linear = GINModel(model.arch, 3, stats=stats, linear_stage=True).to(torch.float64)
    linear.load_state_dict(model.state_dict(), strict=False)
    g = torch.Generator().manual_seed(3)
    linear.set_linear_stage(torch.randn(5, 5, generator=g, dtype=torch.float64))
    x, u = 2 * torch.randn(40, 5, generator=g, dtype=torch.float64), torch.arange(40) % 3
    params = [p for p in linear.parameters() if p.requires_grad]
    loss = linear.loss(x, u)
    assert loss.item() != pytest.approx(model.loss(x, u).item())  # the stage changes the function
    expected = torch.autograd.grad(loss, params)
    flat = FlatParameters(params)
    assert FusedStep(linear, flat.flat.data, flat.flat.grad)(x, u) == pytest.approx(loss.item(), rel=1e-12)
    for p, e in zip(params, expected):
        torch.testing.assert_close(p.grad, e, rtol=0, atol=1e-11 * max(float(t.abs().max()) for t in expected))
