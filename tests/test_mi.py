"""Tests of ginmi.mi: exact agreement with scikit-learn, model-based MI, tests."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from sklearn.feature_selection import mutual_info_classif
from sklearn.preprocessing import scale

from ginmi import mi as mimod
from ginmi.mi import (
    bootstrap_intervals,
    gaussian_mutual_information,
    mutual_information,
    permutation_pvalues,
)

BACKENDS = ["numpy"] + (["numba"] if mimod.numba is not None else [])
TOL = 1e-10  # observed deviations are ~1e-15 (digamma summation order)


@pytest.fixture(params=BACKENDS)
def backend(request, monkeypatch):
    monkeypatch.setattr(mimod, "_BACKEND", request.param)
    return request.param


def sklearn_mi(w, u, k, seed):
    return mutual_info_classif(w, u, discrete_features=False, n_neighbors=k, random_state=seed)


def _data(seed=0, n=500):
    rng = np.random.default_rng(seed)
    u = rng.integers(0, 4, n)
    w = rng.standard_normal((n, 6)) + u[:, None] * np.array([0, 0.2, 0.5, 1, 3, 0])
    w[:, 5] *= 1e-3  # small scale: the jitter floor max(1, mean|x|) matters
    return w, u


# ----------------------------------------------------------------- sklearn --
@pytest.mark.parametrize("k", [1, 3, 5])
def test_matches_sklearn_random(backend, k):
    w, u = _data(1)
    ours = mutual_information(w, u, n_neighbors=k, random_state=3)
    ref = sklearn_mi(w, u, k, 3)
    assert np.abs(ours - ref).max() < TOL
    assert ref[4] > 0.5 and ref[0] < 0.05  # the data are not degenerate


@pytest.mark.parametrize("k", [1, 3, 4])
def test_matches_sklearn_ties_constant_small_classes(backend, k):
    rng = np.random.default_rng(2)
    n = 400
    u = rng.integers(0, 3, n)
    u[:9] = [7, 8, 8, 9, 9, 9, 10, 10, 10]  # classes of size 1, 2, 3, 3
    w = rng.integers(0, 4, (n, 5)).astype(float) + (u[:, None] == 1) * [0, 1, 2, 0, 0]
    w[:, 3] = 2.5  # constant column: std 0 -> scale 1
    w[:, 4] = 1000.0 + rng.integers(0, 2, n)  # large ties: sklearn's brute force
    ref = sklearn_mi(w, u, k, 0)
    ours = mutual_information(w, u, n_neighbors=k, random_state=0)
    assert np.abs(ours - ref).max() < TOL


def test_brute_force_rounding_is_reproduced(backend):
    """Classes of <= 2k+1 samples use sklearn's inexact brute-force distances."""
    rng = np.random.default_rng(4)
    n = 300
    u = np.r_[np.zeros(n - 6, int), [1, 1, 2, 2, 2, 2]]
    w = np.r_[rng.integers(0, 3, n - 6), [1, 1, 2, 2, 2, 2]][:, None] * 1e4 + 3.0
    ref = sklearn_mi(w, u, 3, 5)
    ours = mutual_information(w, u, n_neighbors=3, random_state=5)
    assert np.abs(ours - ref).max() < TOL


def test_input_layouts_dtypes_and_labels(backend):
    w, u = _data(3, 300)
    ref = sklearn_mi(w, u, 3, 7)
    names = np.array(["cat", "dog", "eel", "fox"])[u]
    for arr in (w, np.asfortranarray(w), w[:, ::-1].copy()[:, ::-1]):
        assert np.abs(mutual_information(arr, names, random_state=7) - ref).max() < TOL
    w32 = w.astype(np.float32)
    assert np.abs(mutual_information(w32, u, random_state=7) - sklearn_mi(w32, u, 3, 7)).max() < TOL
    wi = (w * 100).astype(np.int64)
    assert np.abs(mutual_information(wi, u, random_state=7) - sklearn_mi(wi, u, 3, 7)).max() < TOL
    one = mutual_information(w[:, 4], u, random_state=7)  # 1-D = one column
    assert one.shape == (1,) and abs(one[0] - sklearn_mi(w[:, [4]], u, 3, 7)[0]) < TOL


def test_preprocessing_bitwise_and_random_state_advance():
    rng = np.random.default_rng(5)
    w = rng.standard_normal((700, 9)) * rng.uniform(0.1, 50, 9) + rng.uniform(-5, 5, 9)
    w[:, 2] = 4.0
    ours_rs, ref_rs = np.random.RandomState(11), np.random.RandomState(11)
    xt = mimod._jittered_columns(w, ours_rs)
    x = w.astype(np.float64, copy=True)  # sklearn's _estimate_mi preprocessing
    mask = np.ones(9, bool)
    x[:, mask] = scale(x[:, mask], with_mean=False, copy=False)
    means = np.maximum(1, np.mean(np.abs(x[:, mask]), axis=0))
    x[:, mask] += 1e-10 * means * ref_rs.standard_normal(size=(700, 9))
    assert np.array_equal(xt.T, x)
    assert ours_rs.randint(1 << 30) == ref_rs.randint(1 << 30)


def test_global_random_state_when_none():
    w, u = _data(6, 200)
    np.random.seed(9)
    ours = mutual_information(w, u)
    np.random.seed(9)
    assert np.abs(ours - sklearn_mi(w, u, 3, None)).max() < TOL


def test_backends_agree():
    if mimod.numba is None:
        pytest.skip("numba not installed")
    w, u = _data(8, 800)
    xt = mimod._jittered_columns(w, np.random.RandomState(0))
    order = np.argsort(xt, axis=1)
    labels = np.stack([u, np.random.default_rng(0).permutation(u)]).astype(np.int32)
    psi = mimod._psi_table(w.shape[0])
    lay = mimod._Layout(np.bincount(u), 3, psi)
    a = mimod._mi_chunk_numpy(xt, order, labels, lay, psi)
    b = mimod._mi_chunk_numba(xt, order, labels, lay, psi)
    assert np.abs(a - b).max() < 1e-12


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [3, 5])
def test_tiny_classes_match_sklearn(backend, seed, k):
    """Every class smaller than n_neighbors + 1: sklearn uses k = size - 1 per class, and so do we."""
    rng = np.random.default_rng(seed)
    sizes = np.r_[2, rng.integers(1, k + 1, 4)]  # 5 classes of 1..k samples, one of at least 2
    u = rng.permutation(np.repeat(np.arange(5), sizes))
    w = rng.standard_normal((u.size, 3)) + u[:, None] * [0.0, 1.0, 5.0]
    assert np.bincount(u).max() < k + 1  # the case that used to be refused
    ref = sklearn_mi(w, u, k, seed)
    assert np.abs(mutual_information(w, u, n_neighbors=k, random_state=seed) - ref).max() < TOL


def test_sklearn_int_vs_float_seeds_with_tiny_classes(backend):
    """scikit-learn's int-vs-float test (X integer, 100 labels among 100 samples) on the seeds whose
    largest class has fewer than 4 samples: values equal scikit-learn's, for int and float X alike."""
    seeds = [13, 22, 25, 37, 49]
    for seed in seeds:
        rng = np.random.RandomState(seed)
        x = rng.randint(100, size=(100, 10))
        y = rng.randint(100, size=100)
        assert np.bincount(y).max() < 4  # the case that used to be refused
        ref = sklearn_mi(x.astype(np.float64), y, 3, seed)
        ours_int = mutual_information(x, y, random_state=seed)
        ours_float = mutual_information(x.astype(np.float64), y, random_state=seed)
        assert np.abs(ours_int - ref).max() < TOL and np.abs(ours_float - ref).max() < TOL


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sklearn_options_example(backend, dtype):
    """The data of scikit-learn's test_mutual_info_options: classes of 1, 2 and 2 samples."""
    x = np.array([[0, 0, 0], [1, 1, 0], [2, 0, 1], [2, 0, 1], [2, 0, 1]], dtype=dtype)
    y = np.array([0, 1, 2, 2, 1], dtype=dtype)
    ref = mutual_info_classif(x, y, discrete_features=False, random_state=0)
    assert np.abs(mutual_information(x, y, random_state=0) - ref).max() < TOL
    p, null = permutation_pvalues(x, y, n_permutations=5, random_state=0)
    assert p.shape == (3,) and null.shape == (5, 3)


def test_doctest():
    assert doctest.testmod(mimod, raise_on_error=True).failed == 0


# -------------------------------------------------------------- validation --
@pytest.mark.parametrize(
    "w, u, kwargs, match",
    [
        (np.array([[0.0], [np.nan], [1.0], [2.0]]), [0, 0, 1, 1], {}, "NaN or inf"),
        (np.array([[0.0], [np.inf], [1.0], [2.0]]), [0, 0, 1, 1], {}, "NaN or inf"),
        (np.zeros((6, 2)), [0] * 6, {}, "single class"),
        (np.arange(6.0), [0, 1, 2, 3, 4, 5], {}, "single sample"),
        (np.arange(6.0), [0, 1, 0, 1, 0], {}, "same length"),
        (np.zeros((4, 2, 2)), [0, 0, 1, 1], {}, "2-D"),
        (np.arange(8.0), [0, 1] * 4, {"n_neighbors": 0}, "n_neighbors"),
        (np.arange(8.0), [0, 1] * 4, {"n_neighbors": 2.0}, "n_neighbors"),
        (np.array(["a", "b"] * 4), [0, 1] * 4, {}, "real numeric"),
        (np.arange(8.0), [0.0, np.nan] * 4, {}, "labels must be finite"),
    ],
)
def test_validation(w, u, kwargs, match):
    with pytest.raises(ValueError, match=match):
        mutual_information(w, u, **kwargs)


# ---------------------------------------------------------- gaussian model --
def test_gaussian_identical_components_is_zero():
    means = np.array([[0.0, 5.0], [0.0, 5.0], [0.0, 5.0]])
    stds = np.array([[1.0, 0.1], [1.0, 0.1], [1.0, 0.1]])
    mi = gaussian_mutual_information(means, stds, [0.2, 0.3, 0.5])
    assert np.abs(mi).max() < 1e-10


def test_gaussian_separated_components_is_prior_entropy():
    means = np.array([[0.0, 0.0], [100.0, 1e3], [200.0, -1e3]])
    stds = np.array([[1.0, 0.5], [2.0, 1.0], [0.5, 3.0]])
    for pr in ([1 / 3] * 3, [0.5, 0.3, 0.2]):
        pr = np.asarray(pr)
        mi = gaussian_mutual_information(means, stds, pr)
        assert np.allclose(mi, -np.sum(pr * np.log(pr)), atol=1e-8)


def test_gaussian_intermediate_matches_monte_carlo():
    means = np.array([[0.0, 0.0], [1.0, 0.5], [2.5, -0.3]])
    stds = np.array([[1.0, 0.2], [0.5, 1.0], [1.5, 0.7]])
    pr = np.array([0.5, 0.3, 0.2])
    mi = gaussian_mutual_information(means, stds, pr)
    rng = np.random.default_rng(0)
    n = 400_000
    c = rng.choice(3, size=n, p=pr)
    x = means[c] + stds[c] * rng.standard_normal((n, 2))
    logp = -0.5 * ((x[:, None] - means) / stds) ** 2 - np.log(stds * np.sqrt(2 * np.pi))
    log_mix = np.log(np.einsum("k,nkp->np", pr, np.exp(logp)))
    terms = logp[np.arange(n), c] - log_mix  # I = E[log p(x|c) - log p(x)]
    se = terms.std(axis=0) / np.sqrt(n)
    assert np.all(np.abs(mi - terms.mean(axis=0)) < 4 * se)
    assert np.all(mi > 0.05)


def test_gaussian_validation():
    with pytest.raises(ValueError, match="sum to 1"):
        gaussian_mutual_information([[0.0], [1.0]], [[1.0], [1.0]], [0.5, 0.6])
    with pytest.raises(ValueError, match="> 0"):
        gaussian_mutual_information([[0.0], [1.0]], [[1.0], [0.0]], [0.5, 0.5])
    with pytest.raises(ValueError, match="same shape"):
        gaussian_mutual_information([[0.0], [1.0]], [[1.0, 1.0]], [0.5, 0.5])


# ------------------------------------------------------------ permutation --
def test_permutation_pvalues(backend):
    rng = np.random.default_rng(10)
    n = 300
    u = rng.integers(0, 3, n)
    w = np.column_stack([u + 0.3 * rng.standard_normal(n), rng.standard_normal((n, 2))])
    p, null = permutation_pvalues(w, u, n_permutations=40, random_state=1)
    assert null.shape == (40, 3) and p.shape == (3,)
    assert p[0] == 1 / 41 and p[1] > 0.02 and p[2] > 0.02
    assert np.all(null >= 0) and np.quantile(null[:, 0], 0.95) < 0.1
    obs = mutual_information(w, u, random_state=1)
    p2, null2 = permutation_pvalues(w, u, n_permutations=40, random_state=1, observed=obs)
    assert np.array_equal(null, null2) and np.array_equal(p, p2)
    expected = (1 + (null >= obs).sum(axis=0)) / 41
    assert np.array_equal(p, expected)
    # each null row is the estimator on shuffled labels, with the same jitter
    rs = np.random.RandomState(1)
    mimod._jittered_columns(np.asarray(w, float), rs)
    perm = rs.permutation(n)
    first = mutual_information(w, u[perm], random_state=1)
    assert np.abs(null[0] - first).max() < 1e-12


def test_permutation_validation():
    w, u = _data(11, 60)
    with pytest.raises(ValueError, match="n_permutations"):
        permutation_pvalues(w, u, n_permutations=0)
    with pytest.raises(ValueError, match="one MI value per column"):
        permutation_pvalues(w, u, n_permutations=5, observed=[0.1])


# -------------------------------------------------------------- bootstrap --
def test_bootstrap_intervals(backend):
    rng = np.random.default_rng(12)
    n = 300
    u = rng.integers(0, 2, n)
    w = np.column_stack([u + 0.5 * rng.standard_normal(n), rng.standard_normal(n)])
    low, high = bootstrap_intervals(w, u, n_bootstrap=30, random_state=2)
    est = mutual_information(w, u, random_state=2)
    assert low.shape == high.shape == (2,)
    assert np.all(low <= high) and low[0] > high[1] and est[0] > 0.2
    # no duplicate rows: the independent column's interval starts at 0 instead of being biased up
    assert low[1] == 0.0 and high[1] < 0.15
    low2, high2 = bootstrap_intervals(w, u, n_bootstrap=30, random_state=2)
    assert np.array_equal(low, low2) and np.array_equal(high, high2)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_intervals(w, u, confidence=1.5)


def test_bootstrap_intervals_cover_a_known_mi():
    from scipy import integrate, stats

    # u in {0, 1} equiprobable, w | u ~ N(±1, 1): I = H(w) - H(w|u) by quadrature
    def mix(x):
        return 0.5 * (stats.norm.pdf(x, -1) + stats.norm.pdf(x, 1))

    h_w = integrate.quad(lambda x: -mix(x) * np.log(mix(x)), -12, 12)[0]
    true = h_w - 0.5 * np.log(2 * np.pi * np.e)
    covered = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        u = rng.integers(0, 2, 600)
        w = (2.0 * u - 1 + rng.standard_normal(600))[:, None]
        low, high = bootstrap_intervals(w, u, n_bootstrap=40, confidence=0.9, random_state=seed)
        covered += low[0] <= true <= high[0]
    assert covered >= 14  # nominal 18 of 20; allow for the estimator's small-sample bias
