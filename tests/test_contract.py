"""The contract of the GIN math: every coupling type through every training backend computes the
reference function, in float64.

One definition: the coupling in :mod:`ginmi.flows` (with the hand-written backward of ``_Affine``)
and the loss :func:`ginmi.model.gaussian_nll`. The backends (the fused numba step, the stacked step
of ``train_many``, the data-parallel loss) must give the loss and gradients of autograd through
``GINModel.loss``; the hand-written backward is checked against finite differences
(``torch.autograd.gradcheck``), and log-determinants against the full Jacobian of a batch.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
import torch.distributed as tdist
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state

from ginmi import fused, training
from ginmi.architectures import conv_subnet, mlp_subnet
from ginmi.distributed import DistContext, wrap_objective
from ginmi.flows import (
    GINCoupling,
    GLOWCoupling,
    Permutation,
    affine,
    declared_backends,
    soft_clamp,
    soft_clamp_derivative,
)
from ginmi.fused import FlatParameters, FusedStep, FusedStepUnavailable, FusedStepWarning, unsupported_reason
from ginmi.model import GINModel
from ginmi.training import TrainConfig, train

ARCHS = {
    "gin-vector": {"name": "vector", "dim": 5, "width": 6, "n_blocks": 2, "coupling": "gin"},
    "glow-vector": {"name": "vector", "dim": 5, "width": 6, "n_blocks": 2, "coupling": "glow"},
    "gin-image": {
        "name": "image",
        "input_shape": (1, 4, 4),
        "conv_widths": (3,),
        "n_conv_blocks": 1,
        "fc_width": 6,
        "n_fc_blocks": 1,
        "coupling": "gin",
    },
    "glow-image": {
        "name": "image",
        "input_shape": (1, 4, 4),
        "conv_widths": (3,),
        "n_conv_blocks": 1,
        "fc_width": 6,
        "n_fc_blocks": 1,
        "coupling": "glow",
    },
}
BACKENDS = ("fused", "stacked", "distributed")
FUSED = {"gin-vector"}  # the architectures the fused step trains; the others must be refused, not mistrained
N_CLASSES = 3


def _model(arch: str, stats: str, seed: int = 0, linear: bool = False) -> GINModel:
    """A float64 model with random weights everywhere (identity initialisation would hide the subnets),
    a random standardisation and, with ``linear``, a random fixed linear stage (vector data)."""
    model = GINModel(dict(ARCHS[arch], seed=seed), N_CLASSES, stats=stats, linear_stage=linear).double()
    g = torch.Generator().manual_seed(100 + seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype), alpha=0.3)
        model.set_standardization(
            torch.randn(model.input_shape, generator=g, dtype=torch.float64),
            torch.rand(model.input_shape, generator=g, dtype=torch.float64) + 0.5,
        )
        if linear:
            model.set_linear_stage(
                torch.eye(model.dim, dtype=torch.float64)
                + 0.3 * torch.randn(model.dim, model.dim, generator=g, dtype=torch.float64)
            )
    return model


def _data(model: GINModel, seed: int = 0) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    u = torch.arange(4 * N_CLASSES) % N_CLASSES
    return 2 * torch.randn(len(u), *model.input_shape, generator=g, dtype=torch.float64), u


def _trainable(model: GINModel) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def _autograd(model: GINModel, x: Tensor, u: Tensor) -> tuple[float, list[Tensor]]:
    loss = model.loss(x, u)
    return loss.item(), list(torch.autograd.grad(loss, _trainable(model)))


def _fused(model: GINModel, x: Tensor, u: Tensor) -> tuple[float, list[Tensor]]:
    params = _trainable(model)
    flat = FlatParameters(params)
    value = FusedStep(model, flat.flat.data, flat.flat.grad)(x, u)
    return value, [p.grad.clone() for p in params]


@contextmanager
def _world_of_one(tmp_path) -> Iterator[DistContext]:
    """A gloo process group of this process alone, as ``torchrun --nproc-per-node 1`` would make."""
    tdist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        yield DistContext(0, 1, torch.device("cpu"))
    finally:
        tdist.destroy_process_group()


def _distributed(model: GINModel, x: Tensor, u: Tensor, tmp_path) -> tuple[float, list[Tensor]]:
    with _world_of_one(tmp_path) as ctx:
        loss, value = wrap_objective(model, ctx)(x, u)
        loss.backward()
    return value, [p.grad.clone() for p in _trainable(model)]


def _assert_same(got: tuple[float, list[Tensor]], expected: tuple[float, list[Tensor]]) -> None:
    assert got[0] == pytest.approx(expected[0], rel=1e-12, abs=1e-12)
    scale = max(float(e.abs().max()) for e in expected[1])
    assert scale > 0
    for a, e in zip(got[1], expected[1], strict=True):
        torch.testing.assert_close(a, e, rtol=0, atol=1e-10 * scale)


@pytest.mark.parametrize("stats", ["trainable", "batch"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("arch", [*ARCHS, "gin-vector+linear"])
def test_every_backend_computes_the_loss_and_gradient_of_autograd(arch, backend, stats, tmp_path):
    arch, linear = arch.removesuffix("+linear"), arch.endswith("+linear")  # the fixed linear stage: vector data
    if backend == "stacked":  # two models at once: each must get its own loss and gradient
        models = [_model(arch, stats, seed, linear) for seed in (0, 1)]
        data = [_data(m, seed) for seed, m in enumerate(models)]
        params, buffers = stack_module_state(models)
        names = [n for n, p in models[0].named_parameters() if p.requires_grad]
        loss = training._stacked_objective(models[0])(
            params, buffers, torch.stack([d[0] for d in data]), torch.stack([d[1] for d in data])
        )
        grads = torch.autograd.grad(loss.sum(), [params[n] for n in names])
        assert training._stackable(models[0]) == arch.endswith("vector")  # else the generic vmap path
        for k, (m, (x, u)) in enumerate(zip(models, data)):
            _assert_same((loss[k].item(), [g[k] for g in grads]), _autograd(m, x, u))
        return
    model = _model(arch, stats, linear=linear)
    x, u = _data(model)
    expected = _autograd(model, x, u)
    if backend == "distributed":
        _assert_same(_distributed(model, x, u, tmp_path), expected)
    elif arch in FUSED:
        _assert_same(_fused(model, x, u), expected)
    else:
        assert unsupported_reason(model) is not None
        with pytest.raises(FusedStepUnavailable):
            _fused(model, x, u)


def test_only_gin_couplings_and_permutations_declare_the_fused_step():
    gin, glow = GINCoupling(4, mlp_subnet(4)), GLOWCoupling(4, mlp_subnet(4))
    assert declared_backends(gin) == declared_backends(Permutation(4, seed=0)) == {"stacked", "fused"}
    assert declared_backends(glow) == {"stacked"}
    assert declared_backends(_Doubled(4, mlp_subnet(4))) == set()  # not inherited: other math, autograd


@pytest.mark.parametrize("centre", [True, False], ids=["gin", "glow"])
@pytest.mark.parametrize(
    "shape,dim", [((3, 4), 1), ((2, 3, 2, 2), 1), ((2, 3, 4), 2)], ids=["vector", "image", "stacked"]
)
def test_hand_written_affine_backward_passes_gradcheck(shape, dim, centre):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g, dtype=torch.float64, requires_grad=True)
    o_shape = list(shape)
    o_shape[dim] = shape[dim] * 2
    o = (2 * torch.randn(o_shape, generator=g, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: affine(a, b, 1.7, centre, dim), (x, o))


COUPLINGS = {
    "gin-vector": (lambda: GINCoupling(5, mlp_subnet(6, zero_last=False)), (5,)),
    "glow-vector": (lambda: GLOWCoupling(5, mlp_subnet(6, zero_last=False)), (5,)),
    "gin-image": (lambda: GINCoupling(3, conv_subnet(3, zero_last=False)), (3, 2, 2)),
    "glow-image": (lambda: GLOWCoupling(3, conv_subnet(3, zero_last=False)), (3, 2, 2)),
}


@pytest.mark.parametrize("name", list(COUPLINGS))
def test_couplings_pass_gradcheck_in_inputs_and_parameters(name):
    torch.manual_seed(0)
    make, shape = COUPLINGS[name]
    block = make().double()
    names, params = zip(*block.named_parameters())
    x = torch.randn(3, *shape, dtype=torch.float64, requires_grad=True)

    def f(inp: Tensor, *ps: Tensor) -> tuple[Tensor, Tensor]:
        return functional_call(block, dict(zip(names, ps)), (inp,))

    inputs = (x, *(p.detach().clone().requires_grad_() for p in params))
    assert torch.autograd.gradcheck(f, inputs)


FLOWS = {
    **{f"{name}-coupling": value for name, value in COUPLINGS.items()},
    **{
        f"{name}-net": (lambda name=name: _model(name, "trainable").flow, (1, 4, 4) if "image" in name else (5,))
        for name in ARCHS
    },
}


@pytest.mark.parametrize("name", list(FLOWS))
def test_log_det_is_that_of_the_full_jacobian_of_a_batch(name):
    """The Jacobian of the whole batch, off-diagonal blocks included: samples do not mix (a centring over
    the wrong dimension would), and each diagonal block's log|det| is the block's log-det (GIN: 0)."""
    torch.manual_seed(0)
    make, shape = FLOWS[name]
    flow = make().double()
    n, d = 3, int(torch.tensor(shape).prod())
    x = torch.randn(n, *shape, dtype=torch.float64)
    _, log_det = flow(x)
    jac = torch.autograd.functional.jacobian(lambda v: flow(v.reshape(n, *shape))[0].reshape(-1), x.reshape(-1))
    blocks = jac.reshape(n, d, n, d).permute(0, 2, 1, 3)  # blocks[i, j]: d output_i / d input_j
    for i in range(n):
        for j in range(n):
            if i != j:
                assert torch.count_nonzero(blocks[i, j]) == 0, (i, j)
        sign, logabs = torch.linalg.slogdet(blocks[i, i])
        assert sign != 0
        torch.testing.assert_close(log_det[i], logabs, atol=1e-10, rtol=1e-10)
        if name.startswith("gin"):
            assert abs(logabs.item()) < 1e-10  # volume preservation
    if name.startswith("glow"):
        assert log_det.abs().min() > 1e-3  # the comparison above is not 0 == 0


def test_soft_clamp_derivative_is_the_derivative_of_soft_clamp():
    s = torch.linspace(-30, 30, 601, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(soft_clamp(s, 1.3).sum(), s)
    torch.testing.assert_close(soft_clamp_derivative(s.detach(), 1.3), grad, rtol=1e-14, atol=0)


def test_the_kernels_soft_clamp_is_the_reference_one():
    pytest.importorskip("numba")
    s = torch.linspace(-30, 30, 601, dtype=torch.float64)
    kernel = torch.tensor([fused._soft_clamp(float(v), 1.3) for v in s], dtype=torch.float64)
    derivative = torch.tensor([fused._soft_clamp_derivative(float(v), 1.3) for v in s], dtype=torch.float64)
    torch.testing.assert_close(kernel, soft_clamp(s, 1.3), rtol=1e-15, atol=1e-15)
    torch.testing.assert_close(derivative, soft_clamp_derivative(s, 1.3), rtol=1e-15, atol=0)


class _Doubled(GINCoupling):
    """A GIN coupling with other math: the fused step must not train it with GIN's."""

    def couple(self, x, subnet1, subnet2, dim=1):
        y, log_det = super().couple(x, subnet1, subnet2, dim)
        return 2 * y, log_det


def _vector_data() -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(0)
    u = torch.arange(120) % 3
    return torch.randn(120, 4, generator=g) + u[:, None].float(), u


def _vector_model(tweak: str | None = None) -> GINModel:
    model = GINModel({"name": "vector", "dim": 4, "width": 8, "n_blocks": 2, "seed": 2}, 3)
    if tweak == "subclass":
        model.flow.blocks[0].__class__ = _Doubled
    elif tweak == "subnet":  # one hidden layer: a subnet shape the fused kernel does not compute
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model.flow.blocks[0].subnet1 = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 4))
    return model


@pytest.mark.parametrize("tweak,reason", [("subclass", "_Doubled"), ("subnet", "subnets of block 0")])
def test_a_model_the_fused_step_cannot_train_trains_with_autograd_and_says_so_once(tweak, reason, monkeypatch):
    monkeypatch.setattr(training, "_FALLBACKS_SAID", set())
    x, u = _vector_data()
    assert reason in unsupported_reason(_vector_model(tweak))
    # the stacked step takes any Linear/ReLU subnet, but refuses the subclass (vmap instead)
    assert training._stackable(_vector_model(tweak)) == (tweak == "subnet")
    config = TrainConfig(epochs=1, batch_size=40, device="cpu")
    with pytest.warns(FusedStepWarning, match=f"{reason}.*autograd, about 6x slower"):
        fused_run = train(_vector_model(tweak), x, u, config, progress=False)["step_loss"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", FusedStepWarning)  # said once
        again = train(_vector_model(tweak), x, u, config, progress=False)["step_loss"]
        reference = train(
            _vector_model(tweak), x, u, TrainConfig(epochs=1, batch_size=40, device="cpu", fused=False), progress=False
        )["step_loss"]
    assert fused_run == again == reference


def test_the_fused_step_checks_itself_against_autograd_once_per_architecture(monkeypatch):
    pytest.importorskip("numba")
    monkeypatch.setattr(fused, "_CHECKED", {})
    monkeypatch.setattr(training, "_FALLBACKS_SAID", set())
    calls = []
    step = FusedStep.__call__

    def wrong(self, x, u):  # a kernel that gets one gradient entry slightly wrong
        calls.append(len(x))
        value = step(self, x, u)
        self.grads[0] += 1e-6
        return value

    monkeypatch.setattr(FusedStep, "__call__", wrong)
    x, u = _vector_data()
    config = TrainConfig(epochs=1, batch_size=40, device="cpu")
    with pytest.warns(FusedStepWarning, match="disagrees with autograd"):
        history = train(_vector_model(), x, u, config, progress=False)["step_loss"]
    assert calls == [4 * 3]  # the check ran once, on a tiny batch; training then used autograd
    with pytest.raises(FusedStepUnavailable, match="disagrees"):  # remembered for the architecture
        model = _vector_model()
        flat = FlatParameters(_trainable(model))
        FusedStep(model, flat.flat.data, flat.flat.grad)
    assert calls == [12]
    reference = train(
        _vector_model(), x, u, TrainConfig(epochs=1, batch_size=40, device="cpu", fused=False), progress=False
    )["step_loss"]
    assert history == reference
