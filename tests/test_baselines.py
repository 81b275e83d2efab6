"""Baselines of every recovery result: raw x, the untrained model, FastICA (ginmi.tasks.recovery_baselines),
and the model-free recovery score they share with the trained flow."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ginmi.data.synthetic import make_synthetic
from ginmi.model import GINModel
from ginmi.tasks.identifiability import recovery
from ginmi.tasks.recovery_baselines import BASELINES, baseline_recovery, value_added
from ginmi.training import fit_standardization


def test_recovery_of_a_scaled_permutation_is_perfect_and_order_criteria_are_checked():
    rng = np.random.default_rng(0)
    u = rng.integers(0, 4, 3000)
    means = rng.uniform(-5, 5, (4, 2))
    latent = np.c_[means[u] + rng.standard_normal((3000, 2)), 3.0 * rng.standard_normal((3000, 3))]
    w = latent[:, [3, 0, 4, 1, 2]] * np.array([2.0, -1.0, 0.5, 3.0, 1.0])  # z at columns 1 and 3
    r = recovery(w, u, w, latent, [0, 1])
    assert r["mcc"]["all"] == pytest.approx(1.0) and r["mcc"]["informative"] == pytest.approx(1.0)
    assert r["top_n_correct"]["mi"]
    # column 0 (noise, std 6) and column 2 (noise, std 1.5) vs z at scales 1 and 3: VAR by std picks noise
    assert not r["top_n_correct"]["var_std"]
    mixed = w.copy()
    mixed[:, 1] = w[:, 1] + w[:, 0]  # spread z over a noise column: no longer a permutation
    assert recovery(mixed, u, mixed, latent, [0, 1])["mcc"]["informative"] < 0.9


def test_baselines_are_scored_like_the_trained_model():
    data = make_synthetic(1500, seed=1, mixing=0.0)
    model = GINModel({"name": "vector", "dim": 10, "width": 8, "n_blocks": 2, "seed": 1}, 5)
    fit_standardization(model, torch.as_tensor(data.x, dtype=torch.float32))
    base = baseline_recovery(model, data.x[:1000], data.u[:1000], data.x[1000:], data.latent[1000:], data.informative)
    assert list(base) == list(BASELINES)
    for b in base.values():
        assert set(b) == {"mcc", "top_n_correct"} and set(b["top_n_correct"]) == {"mi", "var", "var_std"}
        assert 0 <= b["mcc"]["informative"] <= 1
    # identity-initialised couplings only permute and rescale: the untrained model is raw x up to that
    assert base["untrained"]["mcc"]["all"] == pytest.approx(base["raw_x"]["mcc"]["all"], abs=1e-6)
    trained = {"mcc": {"all": 0.5, "informative": 0.99}}
    added = value_added(trained, base)
    best = max(b["mcc"]["informative"] for b in base.values())
    assert added["mcc_informative"]["added"] == pytest.approx(0.99 - best)
    assert added["mcc_informative"]["best_baseline"] in BASELINES


def test_fit_with_true_latents_reports_baselines_and_refuses_bad_ones(tmp_path, capsys):
    from ginmi.app.cli import main

    data = make_synthetic(600, seed=2, mixing=2.0)
    good = tmp_path / "mixed.npz"
    np.savez(good, x=data.x, u=data.u, latent=data.latent)
    assert (
        main(["fit", str(good), "--epochs", "2", "--out", str(tmp_path / "run"), "--no-progress", "--no-report"]) == 0
    )
    import json

    r = json.loads((tmp_path / "run" / "results.json").read_text())
    assert r["true_informative"] == [0, 1]  # found by their label information
    assert set(r["baselines"]) == set(BASELINES) and "mcc_informative" in r["value_added"]
    assert "value added by training" in capsys.readouterr().out
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=data.x, u=data.u, latent=data.latent[:10])
    assert main(["fit", str(bad), "--out", str(tmp_path / "bad-run"), "--no-progress"]) == 2
    assert "'latent'" in capsys.readouterr().err
    assert not (tmp_path / "bad-run").exists()
    assert (
        main(
            [
                "fit",
                str(good),
                "--epochs",
                "1",
                "--n-informative",
                "3",
                "--out",
                str(tmp_path / "r3"),
                "--no-progress",
                "--no-report",
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "r3" / "results.json").read_text())["true_informative"] == [0, 1, 2]
