"""GINModel: likelihood, class statistics, training behaviour, determinism, save/load."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ginmi.model import GINModel, class_statistics, load_model
from ginmi.training import TrainConfig, evaluate_loss, fit_standardization, train


def _toy(n=600, seed=0):
    g = torch.Generator().manual_seed(seed)
    u = torch.randint(0, 3, (n,), generator=g)
    centers = torch.tensor([[-2.0, 0.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0], [0.0, 3.0, 0.0, 0.0]])
    x = centers[u] + torch.randn(n, 4, generator=g) * torch.tensor([0.5, 0.5, 1.0, 2.0])
    x[:, 3] += 0.5 * x[:, 0] ** 2  # a nonlinear dependence a flow can undo
    return x, u


def _model(stats="trainable", seed=0):
    return GINModel({"name": "vector", "dim": 4, "width": 16, "n_blocks": 4, "seed": seed}, 3, stats=stats)


def test_loss_is_gaussian_nll_per_dim_at_identity():
    model = _model()
    x, u = _toy(50)
    # identity flow, unit Gaussians at 0: NLL per dim = 0.5 x^2 + 0.5 log 2 pi
    perm_w = model.transform(x)
    expected = (0.5 * perm_w**2).mean() + 0.5 * math.log(2 * math.pi)
    torch.testing.assert_close(model.loss(x, u), expected)


def test_class_statistics_match_numpy():
    w = torch.randn(40, 3, dtype=torch.float64)
    u = torch.arange(40) % 4
    mean, std = class_statistics(w, u, 4)
    for c in range(4):
        np.testing.assert_allclose(mean[c].numpy(), w[u == c].numpy().mean(0), atol=1e-12)
        np.testing.assert_allclose(std[c].numpy(), w[u == c].numpy().std(0), atol=1e-6)


@pytest.mark.parametrize("stats", ["trainable", "batch"])
def test_training_decreases_loss(stats):
    x, u = _toy()
    model = _model(stats)
    fit_standardization(model, x)
    model.set_class_statistics(model.transform(x).detach(), u)
    before = evaluate_loss(model, x, u)  # best Gaussian fit of the identity flow
    history = train(model, x, u, TrainConfig(epochs=15, batch_size=100, lr=1e-2, warmup_steps=5), progress=False)
    assert history["epoch_loss"][-1] < history["epoch_loss"][0]
    after = evaluate_loss(model, x, u)
    assert after < before - 0.02


def test_training_is_deterministic_with_a_seed():
    x, u = _toy()
    results = []
    for _ in range(2):
        model = _model()
        train(model, x, u, TrainConfig(epochs=2, batch_size=100, seed=7), progress=False)
        results.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    torch.testing.assert_close(results[0], results[1], atol=0, rtol=0)
    model = _model()
    train(model, x, u, TrainConfig(epochs=2, batch_size=100, seed=8), progress=False)
    assert not torch.equal(results[0], torch.cat([p.detach().flatten() for p in model.parameters()]))


def test_batch_statistics_model_gets_class_statistics_after_training():
    x, u = _toy()
    model = _model("batch")
    train(model, x, u, TrainConfig(epochs=1, batch_size=200), progress=False)
    mean, std = class_statistics(model.transform(x).detach(), u, 3)
    torch.testing.assert_close(model.mu.detach(), mean)
    torch.testing.assert_close(model.log_sigma.detach(), torch.log(std))


def test_standardization_is_part_of_the_model_and_inverse(tmp_path):
    x, u = _toy()
    x = x * torch.tensor([100.0, 1.0, 0.01, 5.0]) + 7
    model = _model()
    fit_standardization(model, x)
    w = model.transform(x)
    assert w.abs().median() < 10
    torch.testing.assert_close(model.inverse(w), x, atol=1e-3, rtol=1e-4)


@pytest.mark.parametrize("linear_stage", [False, True])
def test_save_and_load_round_trip(tmp_path, linear_stage):
    x, u = _toy()
    model = GINModel(
        {"name": "vector", "dim": 4, "width": 8, "seed": 1}, 3, classes=["a", "b", "c"], linear_stage=linear_stage
    )
    fit_standardization(model, x)
    if linear_stage:
        model.set_linear_stage(torch.tensor([[2.0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 3], [0, 0, 0, 1]]))
    train(model, x, u, TrainConfig(epochs=1, batch_size=100), progress=False)
    path = tmp_path / "sub" / "model.pt"
    model.save(path)
    loaded = load_model(path)
    assert loaded.classes == ["a", "b", "c"] and loaded.stats == "trainable"
    assert (loaded.linear is not None) == linear_stage
    torch.testing.assert_close(loaded.transform(x), model.transform(x))
    torch.testing.assert_close(loaded.inverse(loaded.transform(x)), x, atol=1e-4, rtol=1e-4)
    assert not list(path.parent.glob(".*tmp"))  # no temporary files left


def test_load_rejects_garbage_and_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="cannot load"):
        load_model(bad)
    torch.save({"something": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a ginmi model"):
        load_model(tmp_path / "other.pt")


def test_divergence_is_reported_with_the_step():
    x, u = _toy()
    x[5, 0] = float("nan")
    from ginmi.training import DivergenceError

    with pytest.raises(DivergenceError, match="step"):
        train(_model(), x, u, TrainConfig(epochs=1, batch_size=600, input_noise=0), progress=False)


def test_model_rejects_bad_construction():
    with pytest.raises(ValueError, match="stats"):
        GINModel({"name": "vector", "dim": 4}, 3, stats="magic")
    with pytest.raises(ValueError, match="at least 2 classes"):
        GINModel({"name": "vector", "dim": 4}, 1)
    with pytest.raises(ValueError, match="positive"):
        TrainConfig(epochs=0)


def test_vector_training_runs_single_threaded_and_restores_threads():
    from ginmi.training import cpu_threads

    before = torch.get_num_threads()
    seen = []
    x, u = _toy(200)
    train(
        _model(),
        x,
        u,
        TrainConfig(epochs=1, batch_size=100),
        progress=False,
        on_epoch=lambda e, loss: seen.append(torch.get_num_threads()),
    )
    assert seen == [1] and torch.get_num_threads() == before
    with cpu_threads(TrainConfig(threads=2), _model()):
        assert torch.get_num_threads() == 2
