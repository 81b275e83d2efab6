"""FGSM and the rejection defence (paper Sec. 4, Table 1) on any GIN model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ginmi.model import GINModel
from ginmi.tasks.adversarial import (
    TABLE1_COLUMNS,
    check_images,
    evaluate_defence,
    fgsm,
    rejected,
    rejection_thresholds,
)
from ginmi.tasks.classification import accuracy, predict

ARCH = {
    "name": "image",
    "input_shape": [1, 8, 8],
    "conv_widths": [4, 4],
    "n_conv_blocks": 1,
    "fc_width": 16,
    "n_fc_blocks": 1,
    "seed": 0,
}


@pytest.fixture(scope="module")
def problem():
    """Two classes of 8x8 images (brighter left half vs brighter right half) and a model whose class
    statistics are fitted to them, so the posterior classifier is accurate."""
    generator = torch.Generator().manual_seed(0)
    n = 200
    u = torch.arange(n) % 2
    x = 0.3 + 0.3 * torch.rand(n, 1, 8, 8, generator=generator)
    x[u == 0, :, :, :4] += 0.1
    x[u == 1, :, :, 4:] += 0.1
    model = GINModel(ARCH, n_classes=2, stats="batch")
    with torch.no_grad():
        for p in model.flow.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=generator))
        model.set_class_statistics(model.transform(x), u)
    return model.eval(), x.clamp(0, 1), u.numpy()


def test_fgsm_step_is_bounded_signed_and_clipped(problem):
    model, x, u = problem
    assert torch.equal(fgsm(model, x, u, 0.0), x)
    x_adv = fgsm(model, x, u, 0.05, dims=[0, 1, 2, 3], batch_size=64)
    assert x_adv.shape == x.shape
    assert float((x_adv - x).abs().max()) <= 0.05 + 1e-6
    assert 0.0 <= float(x_adv.min()) and float(x_adv.max()) <= 1.0
    assert float((x_adv - x).abs().mean()) > 0.01  # almost every pixel moved


def test_fgsm_never_improves_accuracy(problem):
    model, x, u = problem
    dims = list(range(64))
    clean = accuracy(model, model.transform(x).detach(), u, dims)
    assert clean > 0.9
    previous = clean
    for eta in (0.01, 0.05, 0.2):
        acc = accuracy(model, model.transform(fgsm(model, x, u, eta, dims)).detach(), u, dims)
        assert acc <= previous + 1e-12
        previous = acc
    assert previous < clean


def test_rejection_threshold_is_the_density_one_k_sigma_from_the_mean(problem):
    model, _, _ = problem
    dims = [3, 7, 11]
    k = 1.5
    thresholds = rejection_thresholds(model, dims, k)
    for c in range(model.n_classes):
        w = model.mu.detach().clone()[c : c + 1]
        w[0, dims] -= k * torch.exp(model.log_sigma.detach()[c, dims])
        assert torch.allclose(model.class_log_density(w, dims)[0, c], thresholds[c], atol=1e-5)


def test_defence_rejects_far_outliers_and_keeps_typical_images(problem):
    model, x, _ = problem
    assert rejected(model, x, k=1.0).mean() < 0.5
    assert rejected(model, torch.ones(4, 1, 8, 8), k=1.0).all()


def test_table_columns_are_consistent(problem):
    model, x, u = problem
    table = evaluate_defence(model, x, u, dims=list(range(10)), etas=[0.0, 0.02, 0.1])
    assert list(table) == [0.0, 0.02, 0.1]
    for row in table.values():
        assert set(TABLE1_COLUMNS) <= set(row)
        assert 0.0 <= row["pass_rate"] <= 1.0
        assert 0.0 <= row["error_rate_with_defence"] <= row["error_rate_without_defence"] + 1e-12
        if row["n_passed"]:
            assert math.isclose(row["error_rate_with_defence"], row["pass_rate"] * row["passed_error_rate"])
    errors = [row["error_rate_without_defence"] for row in table.values()]
    assert errors == sorted(errors)
    assert math.isclose(
        table[0.0]["error_rate_without_defence"], 1 - accuracy(model, model.transform(x).detach(), u, list(range(10)))
    )


@pytest.mark.parametrize(
    "bad, message",
    [
        (lambda x: x * 255, r"\[0, 1\]"),
        (lambda x: torch.where(x > 0.5, torch.nan, x), "finite"),
        (lambda x: x[:, :, :6, :6], "do not fit this model"),
    ],
)
def test_bad_images_are_refused_with_clear_errors(problem, bad, message):
    model, x, u = problem
    with pytest.raises(ValueError, match=message):
        fgsm(model, bad(x), u, 0.01)
    with pytest.raises(ValueError, match=message):
        check_images(model, bad(x))


def test_bad_arguments(problem):
    model, x, u = problem
    with pytest.raises(ValueError, match="labels for"):
        fgsm(model, x, u[:5], 0.01)
    with pytest.raises(ValueError, match="eta"):
        fgsm(model, x, u, -0.1)
    with pytest.raises(ValueError, match="selected dims"):
        evaluate_defence(model, x, u, dims=[64])
    assert np.asarray(fgsm(model, x.numpy(), u, 0.0)).shape == x.shape


def test_table_rows_are_the_attack_of_fgsm_at_each_eta(problem):
    """evaluate_defence takes the gradient once for all etas: each row must equal attacking with
    fgsm at that eta and scoring the result directly."""
    model, x, u = problem
    dims = [0, 3, 5, 9]
    table = evaluate_defence(model, x, u, dims=dims, etas=[0.0, 0.01, 0.05], batch_size=64)
    for eta, row in table.items():
        x_adv = fgsm(model, x, u, eta, dims, batch_size=64)
        wrong = predict(model, model.transform(x_adv).detach(), dims) != u
        passed = ~rejected(model, x_adv, dims)
        assert row["error_rate_without_defence"] == float(wrong.mean())
        assert row["n_passed"] == int(passed.sum())
        assert row["error_rate_with_defence"] == int((wrong & passed).sum()) / len(u)
