"""The trainer: same function as FrEIA's GIN, determinism, callbacks, and trials trained together."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from torch import nn

from ginmi.architectures import build_flow
from ginmi.flows import GINCoupling, GLOWCoupling, Permutation
from ginmi.model import GINModel
from ginmi.training import TrainConfig, evaluate_loss, lr_factor, train, train_many


def _data(n=240, dim=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    u = torch.arange(n) % 3
    return torch.randn(n, dim, generator=g) + u[:, None].float(), u


def _model(seed=0, stats="trainable", dim=4):
    return GINModel({"name": "vector", "dim": dim, "n_blocks": 2, "width": 8, "seed": seed}, 3, stats=stats)


def freia_copy(flow: nn.Module, dim: int, width: int) -> nn.Module:
    """FrEIA's GraphINN of GIN/GLOW coupling blocks + PermuteRandom with ginmi's weights and permutations.

    FrEIA is in the test extra: this test must run, never skip, under the README's test command."""
    import FrEIA.framework as ff
    import FrEIA.modules as fm

    def subnet(c_in, c_out):
        return nn.Sequential(
            nn.Linear(c_in, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, c_out)
        )

    theirs_of = {GINCoupling: fm.GINCouplingBlock, GLOWCoupling: fm.GLOWCouplingBlock}
    nodes = [ff.InputNode(dim, name="in")]
    for block in flow.blocks:
        if type(block) is Permutation:
            nodes.append(ff.Node(nodes[-1], fm.PermuteRandom, {"seed": 0}))
        else:
            nodes.append(
                ff.Node(nodes[-1], theirs_of[type(block)], {"subnet_constructor": subnet, "clamp": block.clamp})
            )
    nodes.append(ff.OutputNode(nodes[-1]))
    net = ff.GraphINN(nodes).double()
    with torch.no_grad():
        for ours, theirs in zip(flow.blocks, net.module_list):
            if type(ours) is Permutation:
                theirs.perm.copy_(ours.perm)
                theirs.perm_inv.copy_(ours.inv_perm)
            else:
                theirs.subnet1.load_state_dict(ours.subnet1.state_dict())
                theirs.subnet2.load_state_dict(ours.subnet2.state_dict())
    return net


@pytest.mark.parametrize("coupling", ["gin", "glow"])
@pytest.mark.parametrize("dim", [10, 7])
def test_couplings_compute_the_same_function_as_freia(dim, coupling):
    flow = build_flow(
        {
            "name": "vector",
            "dim": dim,
            "n_blocks": 8,
            "width": 10,
            "init_identity": False,
            "coupling": coupling,
            "seed": 1,
        }
    ).double()
    net = freia_copy(flow, dim, 10)
    x = torch.randn(64, dim, dtype=torch.float64, requires_grad=True)
    w, log_det = flow(x)
    z, jac = net(x)  # a GraphINN with one output returns a tensor
    torch.testing.assert_close(w, z, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(log_det, torch.zeros(64, dtype=torch.float64) + jac)
    if coupling == "glow":
        assert log_det.abs().min() > 1e-3  # the log-determinants compared are not all zero
    torch.testing.assert_close(flow.inverse(w), net(z, rev=True)[0])
    g_ours = torch.autograd.grad(w.square().sum() + log_det.sum(), [x, *flow.parameters()])
    g_theirs = torch.autograd.grad(z.square().sum() + jac.sum(), [x, *(p for p in net.parameters() if p.requires_grad)])
    for a, b in zip(g_ours, g_theirs):
        torch.testing.assert_close(a, b)


def test_training_is_deterministic_and_seeded():
    x, u = _data()
    runs = []
    for seed in (0, 0, 1):
        model = _model()
        train(model, x, u, TrainConfig(epochs=2, batch_size=64, seed=seed, device="cpu"), progress=False)
        runs.append(torch.cat([p.detach().reshape(-1) for p in model.parameters()]))
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


def test_parameters_get_their_own_storage_back_and_callbacks_run():
    x, u = _data()
    model = _model()
    steps, epochs = [], []
    history = train(
        model,
        x,
        u,
        TrainConfig(epochs=2, batch_size=64, device="cpu"),
        progress=False,
        on_step=lambda s, loss: steps.append((s, loss)),
        on_epoch=lambda e, loss: epochs.append(e),
    )
    assert [s for s, _ in steps] == list(range(1, 9)) and epochs == [0, 1]
    assert [loss for _, loss in steps] == history["step_loss"]
    ptrs = {p.untyped_storage().data_ptr() for p in model.parameters()}
    assert len(ptrs) == len(list(model.parameters()))  # no longer views of one flat buffer
    assert all(p.grad is None for p in model.parameters())


def test_lr_schedule_warmup_and_milestones():
    config = TrainConfig(epochs=10, warmup_steps=4, milestones=(0.5, 8), gamma=0.1)
    assert lr_factor(config, 0, 10) == pytest.approx(0.25)
    assert lr_factor(config, 49, 10) == pytest.approx(1.0)
    assert lr_factor(config, 50, 10) == pytest.approx(0.1)
    assert lr_factor(config, 80, 10) == pytest.approx(0.01)


@pytest.mark.parametrize("fused", [True, False])  # threads running train, or one step on stacked parameters
@pytest.mark.parametrize("stats", ["trainable", "batch"])
def test_models_trained_together_equal_models_trained_alone(stats, fused):
    config = TrainConfig(epochs=2, batch_size=60, lr=1e-2, warmup_steps=3, device="cpu", fused=fused)
    data = [_data(seed=s) for s in (0, 1, 2)]
    together = [_model(seed=s, stats=stats) for s in (0, 1, 2)]
    histories = train_many(
        together, [d[0] for d in data], [d[1] for d in data], config, seeds=[5, 6, 7], progress=False
    )
    for k, seed in enumerate((5, 6, 7)):
        alone = _model(seed=k, stats=stats)
        history = train(alone, *data[k], replace(config, seed=seed), progress=False)
        torch.testing.assert_close(
            torch.tensor(histories[k]["step_loss"]), torch.tensor(history["step_loss"]), rtol=1e-4, atol=1e-5
        )
        if stats == "batch":
            # translations of w leave the batch-statistics loss unchanged, so Adam turns rounding noise in
            # the (zero) gradient of the last shift biases into +-lr steps: compare likelihoods instead
            assert abs(evaluate_loss(alone, *data[k]) - evaluate_loss(together[k], *data[k])) < 1e-3
            continue
        for (name, a), b in zip(alone.state_dict().items(), together[k].state_dict().values()):
            torch.testing.assert_close(b, a, rtol=1e-3, atol=2e-4, msg=name)


def test_train_many_trains_image_models_as_train_does():
    """Image flows are not stackable: one functional_call per model (vmap refused the hand-written backward)."""
    arch = {
        "name": "image",
        "input_shape": (1, 4, 4),
        "conv_widths": (4,),
        "n_conv_blocks": 1,
        "fc_width": 8,
        "n_fc_blocks": 1,
    }
    g = torch.Generator().manual_seed(0)
    u = torch.arange(64) % 2
    x = torch.randn(64, 1, 4, 4, generator=g) + u[:, None, None, None].float()
    config = TrainConfig(epochs=2, batch_size=16, warmup_steps=2, device="cpu")
    together = [GINModel(dict(arch, seed=s), 2) for s in (0, 1)]
    histories = train_many(together, [x, x], [u, u], config, seeds=[3, 4], progress=False)
    for k, seed in enumerate((3, 4)):
        alone = train(GINModel(dict(arch, seed=k), 2), x, u, replace(config, seed=seed), progress=False)
        torch.testing.assert_close(
            torch.tensor(histories[k]["step_loss"]), torch.tensor(alone["step_loss"]), rtol=1e-4, atol=1e-5
        )


def test_train_many_rejects_mismatched_inputs():
    x, u = _data()
    with pytest.raises(ValueError, match="same architecture"):
        train_many([_model(), _model(dim=5)], [x, torch.randn(240, 5)], [u, u], TrainConfig(epochs=1))
    with pytest.raises(ValueError, match="equal size"):
        train_many([_model(), _model(1)], [x, x[:100]], [u, u[:100]], TrainConfig(epochs=1))


def test_train_refuses_wrong_shapes_and_labels_before_any_step():
    x, u = _data()
    model = _model()
    with pytest.raises(ValueError, match="model expects"):
        train(model, torch.randn(240, 5), u, TrainConfig(epochs=1), progress=False)
    with pytest.raises(ValueError, match="one label per sample"):
        train(model, x, u[:10], TrainConfig(epochs=1), progress=False)
    with pytest.raises(ValueError, match=r"class indices 0\.\.2"):
        train(model, x, u + 1, TrainConfig(epochs=1), progress=False)


def test_default_schedule_adapts_to_small_data_and_keeps_the_papers_on_large():
    """Issue 15.1: 178 rows at batch 240 and 60 epochs gave 60 steps with a 100-step warm-up."""
    config = TrainConfig()
    batch = config.batch_size_for(178)  # capped: min_batches batches per epoch, but batches of >= 32 at most
    steps = math.ceil(178 / batch)
    assert (batch, steps) == (30, 6) and config.epochs_for(steps) * steps >= config.min_steps
    assert config.batch_size_for(1000) == 125  # 8 batches
    assert max(lr_factor(config, s, steps) for s in range(config.epochs_for(steps) * steps)) == 1.0
    # the synthetic study's 10,000 samples: batch 240, 60 epochs, decays at epochs 30 and 48 as before
    assert config.batch_size_for(10_000) == 240 and config.epochs_for(42) == 60
    assert lr_factor(config, 30 * 42 - 1, 42) == 1.0 and lr_factor(config, 30 * 42, 42) == pytest.approx(0.1)
    assert lr_factor(config, 48 * 42, 42) == pytest.approx(0.01)
    # explicit epochs are kept, and a short run's warm-up still reaches the full learning rate
    short = TrainConfig(epochs=60)
    assert short.batch_size_for(178) == 240 and short.epochs_for(1) == 60
    assert lr_factor(short, 29, 1) == 1.0


def test_small_data_note():
    from ginmi.training import schedule_note

    assert schedule_note(TrainConfig(), 10_000, 5000, 10) is None
    assert "parameters" not in schedule_note(TrainConfig(), 2000, 5000, 10)  # 20,000 numbers: only the steps
    note = schedule_note(TrainConfig(), 178, 5326, 13)
    assert "(2004 optimiser steps)" in note and "5326 parameters for 2314 numbers" in note and "\n" not in note
    assert "`n_blocks`" in note  # library parameter names, which the command line turns into its flags
    short = schedule_note(TrainConfig(epochs=1), 178)
    assert short.startswith("only 1 optimiser step (1 epoch of 1 batch)") and "`epochs`=None" in short


def test_train_many_in_threads_checkpoints_and_stops_on_ctrl_c(tmp_path):
    """Issue 15.6: trials trained together wrote no checkpoints, and Ctrl-C left nothing to resume."""
    import os
    import signal

    from ginmi.training import TrainingInterrupted

    config = TrainConfig(epochs=4, batch_size=60, checkpoint_seconds=1000, threads=2)

    def fresh():
        return [
            GINModel({"name": "vector", "dim": 4, "width": 8, "n_blocks": 2, "seed": k}, n_classes=3) for k in range(3)
        ]

    data = [_data(seed=k) for k in range(3)]
    whole = fresh()
    train_many(whole, [d[0] for d in data], [d[1] for d in data], config, progress=False)

    def stop_at(step, loss):
        if step == 6:
            os.kill(os.getpid(), signal.SIGINT)

    dirs = [tmp_path / f"trial{k}" for k in range(3)]
    cut = fresh()
    with pytest.raises(TrainingInterrupted, match="`resume`=True"):
        train_many(
            cut,
            [d[0] for d in data],
            [d[1] for d in data],
            config,
            progress=False,
            checkpoint_dirs=dirs,
            callbacks=[{"on_step": stop_at}, {}, {}],
        )
    assert all((d / "checkpoint.pt").is_file() for d in dirs)
    for k, (model, d) in enumerate(zip(cut, dirs)):  # each trial continues alone, exactly
        train(model, *data[k], replace(config, seed=k, resume=True), progress=False, checkpoint_dir=d)
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), whole[k].state_dict().values()))


def test_linear_stage_undoes_a_rotation_and_preserves_volume():
    import numpy as np

    from ginmi.model import GINModel
    from ginmi.tasks.identifiability import abs_correlation, mcc
    from ginmi.training import fit_linear_stage

    rng = np.random.default_rng(0)
    u = rng.integers(0, 5, 4000)
    latent = np.c_[
        rng.uniform(-5, 5, (5, 2))[u] + rng.uniform(0.5, 3, (5, 2))[u] * rng.standard_normal((4000, 2)),
        rng.standard_normal((4000, 4)),
    ]
    q, r = np.linalg.qr(rng.standard_normal((6, 6)))
    x = latent @ (q * np.sign(np.diag(r))).T
    assert mcc(abs_correlation(x, latent), [0, 1]) < 0.95  # the rotation mixes
    model = GINModel({"name": "vector", "dim": 6, "seed": 0}, 5, linear_stage=True)
    fit_linear_stage(model, torch.as_tensor(x), torch.as_tensor(u))
    h = model.prepare(torch.as_tensor(x, dtype=torch.float32)).double().numpy()
    assert mcc(abs_correlation(h, latent), [0, 1]) > 0.995
    assert abs(abs(torch.linalg.det(model.linear.double()).item()) - 1) < 1e-5
    w = torch.as_tensor(x[:5], dtype=torch.float32)
    torch.testing.assert_close(model.inverse(model.transform(w)), w, atol=1e-4, rtol=1e-4)
    assert torch.all(model(w)[1] == 0)  # log-det: the stage and the GIN flow preserve volume
    with pytest.raises(ValueError, match="no linear stage"):
        fit_linear_stage(GINModel({"name": "vector", "dim": 6}, 5), torch.as_tensor(x), torch.as_tensor(u))


def test_linear_stage_stays_the_identity_where_the_optimum_is_not_unique():
    import numpy as np

    from ginmi.model import GINModel
    from ginmi.training import fit_linear_stage

    # classes that differ only in their means (equal covariances): any rotation of a whitening is optimal
    rng = np.random.default_rng(0)
    u = np.arange(900) % 3
    z = 2.5 * np.column_stack([np.cos(2 * np.pi * u / 3), np.sin(2 * np.pi * u / 3)])
    x = np.column_stack([z + 0.4 * rng.standard_normal((900, 2)), rng.standard_normal((900, 2))])
    model = GINModel({"name": "vector", "dim": 4}, 3, linear_stage=True)
    fit_linear_stage(model, torch.as_tensor(x), torch.as_tensor(u))
    torch.testing.assert_close(model.linear, torch.eye(4))
