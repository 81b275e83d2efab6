"""Downstream tasks (ginmi.tasks): Bayes posterior on selected latents, OOD density and AUROC,
identifiability metrics, and the Eq. 17 outlier sampler of the synthetic data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from ginmi.app.synthetic import make_test_sets
from ginmi.data.synthetic import OOD_MEANS, OOD_STDS, make_synthetic, sample_ood
from ginmi.model import GINModel
from ginmi.tasks.classification import (
    accuracy,
    accuracy_vs_k,
    bayes_accuracy,
    log_prior,
    posterior,
    predict,
)
from ginmi.tasks.identifiability import abs_correlation, matching, mcc
from ginmi.tasks.ood import auroc, auroc_vs_k, log_density, log_density_vs_k, roc

MU = np.array([[0.0, 1.0, -2.0], [1.0, -1.0, 0.5]])
SIGMA = np.array([[1.0, 0.5, 2.0], [2.0, 1.0, 0.25]])
PRIOR = np.array([0.7, 0.3])


@pytest.fixture
def model() -> GINModel:
    """A 3-D model with two classes whose Gaussians are set by hand (the flow is not used)."""
    m = GINModel({"name": "vector", "dim": 3, "width": 4, "seed": 0}, n_classes=2).double()
    with torch.no_grad():
        m.mu.copy_(torch.tensor(MU))
        m.log_sigma.copy_(torch.log(torch.tensor(SIGMA)))
        m.log_prior.copy_(torch.log(torch.tensor(PRIOR)))
    return m


def _hand_posterior(w: np.ndarray, dims: list[int], prior: np.ndarray) -> np.ndarray:
    """p(u | w_S) by Bayes' rule with scipy's normal pdf, one row per sample."""
    lik = np.stack([np.prod(norm.pdf(w[:, dims], MU[c, dims], SIGMA[c, dims]), axis=1) for c in range(2)], 1)
    joint = lik * prior[None]
    return joint / joint.sum(1, keepdims=True)


def test_posterior_matches_hand_computed_case(model):
    w = np.array([[0.3, 0.2, -1.0], [1.5, -0.5, 0.4], [-2.0, 3.0, 1.0]])
    for dims in ([0], [1], [2], [0, 2], [2, 1], [0, 1, 2]):
        got = posterior(model, w, dims)
        np.testing.assert_allclose(got, _hand_posterior(w, dims, PRIOR), rtol=1e-10)
        np.testing.assert_allclose(got.sum(1), 1.0, rtol=1e-12)
        uniform = posterior(model, w, dims, prior="uniform")
        np.testing.assert_allclose(uniform, _hand_posterior(w, dims, np.array([0.5, 0.5])), rtol=1e-10)
    np.testing.assert_allclose(posterior(model, w), _hand_posterior(w, [0, 1, 2], PRIOR), rtol=1e-10)


def test_posterior_one_number_by_hand(model):
    # w_0 = 0.5 on dim 0 only: N(0.5; 0, 1) * 0.7 vs N(0.5; 1, 2) * 0.3
    a = math.exp(-0.5 * 0.25) / math.sqrt(2 * math.pi) * 0.7
    b = math.exp(-0.5 * 0.0625) / (2 * math.sqrt(2 * math.pi)) * 0.3
    got = posterior(model, np.array([[0.5, 9.0, 9.0]]), dims=[0])[0]
    assert got[0] == pytest.approx(a / (a + b), rel=1e-12)


def test_prior_options(model):
    np.testing.assert_allclose(log_prior(model, "empirical").exp().numpy(), PRIOR)
    np.testing.assert_allclose(log_prior(model, "uniform").exp().numpy(), [0.5, 0.5])
    with pytest.raises(ValueError, match="`prior` must be one of"):
        log_prior(model, "flat")


def test_accuracy_vs_k_equals_accuracy_of_each_prefix(model):
    rng = np.random.default_rng(0)
    u = rng.integers(0, 2, 500)
    w = MU[u] + SIGMA[u] * rng.standard_normal((500, 3))
    order = [2, 0, 1]
    curve = accuracy_vs_k(model, w, u, order, prior="uniform")
    assert len(curve) == 3
    for k in (1, 2, 3):
        assert curve[k - 1] == pytest.approx(accuracy(model, w, u, order[:k], prior="uniform"))
        pred = predict(model, w, order[:k], prior="uniform")
        hand = _hand_posterior(w, order[:k], np.array([0.5, 0.5])).argmax(1)
        np.testing.assert_array_equal(pred, hand)
    assert accuracy_vs_k(model, w, u, order, ks=[3, 1]) == [accuracy(model, w, u, order), accuracy(model, w, u, [2])]
    with pytest.raises(ValueError, match="every k must lie in"):
        accuracy_vs_k(model, w, u, order, ks=[4])


def test_bayes_accuracy_hand_case():
    means, stds = np.array([[-1.0], [1.0]]), np.array([[1.0], [1.0]])
    latent = np.array([[-2.0], [-0.1], [0.1], [3.0]])
    # equal stds and priors: the boundary is 0
    assert bayes_accuracy(latent, np.array([0, 0, 1, 1]), means, stds) == 1.0
    assert bayes_accuracy(latent, np.array([0, 1, 0, 1]), means, stds) == 0.5
    # a strong prior on class 1 moves the boundary below -0.1
    assert bayes_accuracy(latent, np.array([0, 1, 1, 1]), means, stds, priors=np.array([0.1, 0.9])) == 1.0


def test_auroc_against_scikit_learn():
    assert auroc(np.array([3.0, 2.0, 1.5]), np.array([0.0, 1.0])) == 1.0
    # pairs (normal, outlier): (1,2) wrong, (1,0) right, (3,2) right, (3,0) right -> 3/4
    assert auroc(np.array([1.0, 3.0]), np.array([2.0, 0.0])) == 0.75
    assert auroc(np.array([1.0]), np.array([1.0])) == 0.5  # ties count one half
    rng = np.random.default_rng(1)
    normal, outlier = rng.normal(1.0, 1.0, 300), rng.normal(0.0, 1.5, 200)
    expected = roc_auc_score(np.r_[np.ones(300), np.zeros(200)], np.r_[normal, outlier])
    assert auroc(normal, outlier) == pytest.approx(expected, abs=1e-15)
    fpr, tpr = roc(normal, outlier)
    assert fpr[0] == 0 and tpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert np.trapezoid(tpr, fpr) == pytest.approx(expected, abs=1e-12)


def test_log_density_is_the_mixture_density(model):
    rng = np.random.default_rng(2)
    w = rng.normal(0, 2, (50, 3))
    for dims in ([1], [0, 2], [0, 1, 2]):
        lik = np.stack([np.prod(norm.pdf(w[:, dims], MU[c, dims], SIGMA[c, dims]), axis=1) for c in range(2)], 1)
        np.testing.assert_allclose(log_density(model, w, dims), np.log(lik @ PRIOR), rtol=1e-10)
        np.testing.assert_allclose(log_density(model, w, dims, prior="uniform"), np.log(lik @ [0.5, 0.5]), rtol=1e-10)
    order = [1, 2, 0]
    table = log_density_vs_k(model, w, order, [1, 2, 3])
    for j, k in enumerate((1, 2, 3)):
        np.testing.assert_allclose(table[:, j], log_density(model, w, order[:k]), rtol=1e-12)


def test_auroc_vs_k_detects_outliers_on_informative_dims(model):
    rng = np.random.default_rng(3)
    u = rng.integers(0, 2, 400)
    normal = MU[u] + SIGMA[u] * rng.standard_normal((400, 3))
    outlier = MU[u] + SIGMA[u] * rng.standard_normal((400, 3))
    outlier[:, 1] += 20.0  # outlying only in dim 1
    curve = auroc_vs_k(model, normal, outlier, [1, 0, 2])
    assert curve[0] > 0.99 and curve[2] > 0.99
    assert auroc_vs_k(model, normal, outlier, [0, 2, 1])[0] == pytest.approx(0.5, abs=0.08)
    for k in (1, 2, 3):
        dims = [1, 0, 2][:k]
        assert curve[k - 1] == pytest.approx(auroc(log_density(model, normal, dims), log_density(model, outlier, dims)))


def test_identifiability_metrics_recover_a_scaled_permutation():
    rng = np.random.default_rng(4)
    z = rng.standard_normal((2000, 4))
    perm = [2, 0, 3, 1]
    w = z[:, perm] * np.array([3.0, -0.5, 2.0, 1.0]) + 1.0
    corr = abs_correlation(w, z)
    assert corr.shape == (4, 4)
    rows, cols = matching(corr)
    assert dict(zip(rows.tolist(), cols.tolist())) == dict(enumerate(perm))
    assert mcc(corr) == pytest.approx(1.0)
    rows, cols = matching(corr, [0, 1])
    assert sorted(zip(cols.tolist(), rows.tolist())) == [(0, 1), (1, 3)]
    assert mcc(abs_correlation(rng.standard_normal((2000, 4)), z)) < 0.1
    with pytest.raises(ValueError, match="rows"):
        abs_correlation(w[:10], z)


def test_ood_sampler_draws_the_eq17_gaussians_through_the_generator():
    data = make_synthetic(200, seed=0)
    x, latent = sample_ood(data, 6000, seed=1)
    assert x.shape == latent.shape == (6000, 10)
    z = latent[:, :2]
    group = np.argmin(((z[:, None, :] - OOD_MEANS[None]) ** 2).sum(-1), axis=1)
    for g in (0, 1):
        members = z[group == g]
        assert abs(len(members) / len(z) - 0.5) < 0.03  # the two Gaussians equally likely
        np.testing.assert_allclose(members.mean(0), OOD_MEANS[g], atol=0.1)
        np.testing.assert_allclose(members.std(0), OOD_STDS[g], rtol=0.06)
    np.testing.assert_allclose(latent[:, 2:].std(0), data.noise_std, rtol=0.06)
    np.testing.assert_allclose(latent[:, 2:].mean(0), 0.0, atol=0.06)
    with torch.no_grad():
        pushed = data.generator(torch.as_tensor(latent, dtype=torch.float64))[0].numpy()
    np.testing.assert_allclose(x, pushed, rtol=1e-12)
    x2, latent2 = sample_ood(data, 6000, seed=1)
    np.testing.assert_array_equal(latent, latent2)
    assert not np.allclose(sample_ood(data, 100, seed=2)[1], latent[:100])
    # outliers lie far from the mixture: the true generating density separates them perfectly
    assert np.linalg.norm(z, axis=1).min() > 12


def test_ood_sampler_other_sizes_and_errors():
    data = make_synthetic(100, data_dim=6, n_informative=3, seed=0, noise_std=0.1)
    _, latent = sample_ood(data, 500, seed=0)
    assert np.abs(latent[:, :3]).max(1).min() > 15
    np.testing.assert_allclose(latent[:, 3:].std(0), 0.1, rtol=0.15)
    _, latent = sample_ood(data, 300, means=np.array([[5.0, 5.0, 5.0]]), stds=np.array([[0.1, 0.1, 0.1]]))
    np.testing.assert_allclose(latent[:, :3].mean(0), 5.0, atol=0.05)
    with pytest.raises(ValueError, match="stds together with means"):
        sample_ood(data, 10, means=np.zeros((1, 3)))


def test_test_sets_come_from_the_training_mixture_and_generator():
    data = make_synthetic(3000, seed=5)
    test = make_test_sets(data, 3000, seed=5)
    assert test.x.shape == test.x_ood.shape == (3000, 10) and test.u.shape == (3000,)
    with torch.no_grad():
        np.testing.assert_allclose(test.x, data.generator(torch.as_tensor(test.latent))[0].numpy(), rtol=1e-12)
    assert not np.allclose(test.latent[:10], data.latent[:10])  # a new draw, not the training samples
    for c in range(5):  # same mixture: class means agree
        np.testing.assert_allclose(test.latent[test.u == c, :2].mean(0), data.means[c], atol=0.35)
    again = make_test_sets(data, 3000, seed=5)
    np.testing.assert_array_equal(again.x, test.x)
    np.testing.assert_array_equal(again.x_ood, test.x_ood)


def test_posterior_returns_numpy_like_its_siblings(model):
    """Issue 15.9: posterior returned a torch tensor while predict, log_density, ... return NumPy."""
    w = np.zeros((3, 3))
    assert isinstance(posterior(model, w), np.ndarray) and isinstance(log_density(model, w), np.ndarray)
