"""The synthetic generator (paper Section 3, Appendix D) and the Eq. 17 outlier sampler."""

from __future__ import annotations

import numpy as np
import pytest

from ginmi.data.synthetic import OOD_MEANS, PAPER_MEANS, PAPER_STDS, make_synthetic, sample_ood
from ginmi.tasks.identifiability import abs_correlation, mcc


def test_shapes_labels_and_informative_indices():
    d = make_synthetic(500, data_dim=6, n_informative=3, n_components=4, seed=1)
    assert d.x.shape == (500, 6) and d.latent.shape == (500, 6) and d.u.shape == (500,)
    assert set(np.unique(d.u)) == {0, 1, 2, 3} and d.informative == [0, 1, 2]
    assert np.all((d.means >= -5) & (d.means <= 5)) and np.all((d.stds >= 0.5) & (d.stds <= 3))


def test_latent_statistics_follow_the_mixture_and_noise():
    d = make_synthetic(20_000, noise_std=0.7, seed=2)
    for c in range(5):
        z = d.latent[d.u == c, :2]
        np.testing.assert_allclose(z.mean(0), d.means[c], atol=0.15)
        np.testing.assert_allclose(z.std(0), d.stds[c], rtol=0.06)
    np.testing.assert_allclose(d.latent[:, 2:].std(0), 0.7, rtol=0.05)
    # noise is independent of u: class means of eps all near 0
    for c in range(5):
        assert np.abs(d.latent[d.u == c, 2:].mean(0)).max() < 0.1


def test_x_is_an_invertible_nonlinear_function_of_the_latent():
    import torch

    d = make_synthetic(300, seed=3)
    back = d.generator.inverse(torch.as_tensor(d.x)).numpy()
    np.testing.assert_allclose(back, d.latent, atol=1e-8)
    # nonlinear: a linear regression of x on the latent leaves residual structure
    coef, res, *_ = np.linalg.lstsq(np.c_[d.latent, np.ones(300)], d.x, rcond=None)
    assert res.sum() > 1e-3 * (d.x.var(0).sum() * 300)


def test_seed_reproducibility_and_paper_preset():
    a, b = make_synthetic(200, seed=5), make_synthetic(200, seed=5)
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.array_equal(a.x, make_synthetic(200, seed=6).x)
    p = make_synthetic(200, preset="paper", seed=0)
    np.testing.assert_array_equal(p.means, PAPER_MEANS)
    np.testing.assert_array_equal(p.stds, PAPER_STDS)


def _raw_mcc_informative(**kwargs) -> float:
    d = make_synthetic(5000, **kwargs)
    return mcc(abs_correlation(d.x, d.latent), d.informative)


def test_default_generator_mixes_strongly_without_heavy_tails():
    raw = [_raw_mcc_informative(seed=s) for s in range(3)]
    assert np.mean(raw) <= 0.72, raw  # an element-wise (non-mixing) map would give ~1
    assert max(np.abs(make_synthetic(5000, seed=s).x).max() for s in range(3)) < 100
    # the mixing knob: a pure rotation mixes less than the default, stronger mixing more
    weak = np.mean([_raw_mcc_informative(seed=s, mixing=0.0) for s in range(3)])
    strong = np.mean([_raw_mcc_informative(seed=s, mixing=12.0) for s in range(3)])
    assert strong < np.mean(raw) < weak


def test_mixing_generator_is_exactly_volume_preserving_and_linear_at_zero():
    import torch

    d = make_synthetic(50, seed=4)
    for point in torch.as_tensor(d.latent[:3]):
        jac = torch.autograd.functional.jacobian(lambda v: d.generator(v[None])[0][0], point)
        assert abs(abs(torch.linalg.det(jac).item()) - 1.0) < 1e-10  # |det| = 1
    rot = make_synthetic(300, seed=4, mixing=0.0)
    coef, res, *_ = np.linalg.lstsq(rot.latent, rot.x, rcond=None)
    assert res.sum() < 1e-16 * rot.x.var(0).sum() * 300  # a rotation: exactly linear
    np.testing.assert_allclose(coef.T @ coef, np.eye(10), atol=1e-10)


def test_glow_presets_conditioning_and_mixing():
    # ginmi's earlier default barely mixes (why it is no longer the default)
    assert np.mean([_raw_mcc_informative(seed=s, generator="ginmi") for s in range(3)]) > 0.95
    # the 2020 soft clamp of the paper keeps the reference flow's data in a sane range; today's does not
    paper = max(np.abs(make_synthetic(5000, seed=s, generator="paper").x).max() for s in range(3))
    ref = max(np.abs(make_synthetic(5000, seed=s, generator="reference").x).max() for s in range(3))
    assert paper < 100 < ref


def test_ood_sampler_uses_eq17_in_latent_space():
    d = make_synthetic(100, seed=0)
    x_ood, latent = sample_ood(d, 4000, seed=1)
    assert x_ood.shape == (4000, 10)
    z = latent[:, :2]
    near = [np.linalg.norm(z - m, axis=1) < 6 for m in OOD_MEANS]
    assert np.all(near[0] | near[1]) and 0.4 < near[0].mean() < 0.6
    np.testing.assert_allclose(latent[:, 2:].std(0), d.noise_std, rtol=0.08)
    import torch

    np.testing.assert_allclose(d.generator(torch.as_tensor(latent))[0].numpy(), x_ood)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_samples": 0}, "`n_samples` must be positive"),
        ({"data_dim": 2, "n_informative": 2}, "smaller than data_dim"),
        ({"n_components": 1}, "at least 2"),
        ({"noise_std": 0.0}, "`noise_std` must be positive"),
        ({"preset": "paper", "n_components": 3}, "preset 'paper'"),
        ({"generator": "magic"}, "`generator` must be"),
        ({"mixing": -1.0}, "`mixing` must be >= 0"),
    ],
)
def test_bad_generator_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_synthetic(**{"n_samples": 10, **kwargs})
