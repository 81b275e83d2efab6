"""``ginmi synthetic``: trials, variants, the downstream-task curves in results.json, figures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ginmi.app.synthetic import (
    VARIANTS,
    SyntheticConfig,
    _make_data,
    aggregate,
    make_test_sets,
    write_figures,
)
from ginmi.model import load_model
from ginmi.tasks.classification import accuracy
from ginmi.tasks.ood import auroc, log_density
from ginmi.vector import compute_latents
from tiny_run import TRIALS, tiny_run
from tiny_run import VARIANTS as RUN_VARIANTS


@pytest.fixture(scope="module")
def run():
    return tiny_run()


@pytest.fixture(scope="module")
def results(run):
    return json.loads((run / "results.json").read_text())


def test_default_variants_depend_on_trials():
    assert SyntheticConfig().resolved_variants() == ("main",)
    assert SyntheticConfig(trials=3).resolved_variants() == tuple(VARIANTS)
    assert SyntheticConfig(trials=3, variants=("low-noise",)).resolved_variants() == ("low-noise",)
    low = SyntheticConfig().variant_settings("batch-stats-low-noise")
    assert low == {"noise_std": 1e-2, "stats": "batch"}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"trials": 0}, "`trials` must be positive"),
        ({"n_test": 0}, "`n_test` must be positive"),
        ({"variants": ("main", "nope")}, "unknown variant"),
        ({"variants": ("main", "main")}, "given twice"),
        ({"prior": "flat"}, "`prior` must be one of"),
        ({"jobs": -1}, "`jobs` must be >= 0"),
    ],
)
def test_config_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SyntheticConfig(**kwargs)


def test_aggregate_mean_and_spread():
    trials = [
        {"a": 1.0, "ok": True, "curve": [0.0, 1.0], "order": [1, 0], "sub": {"b": 2}, "name": "x"},
        {"a": 3.0, "ok": False, "curve": [1.0, 3.0], "order": [0, 1], "sub": {"b": 4}, "name": "y"},
    ]
    agg = aggregate(trials)
    assert agg["a"] == {"mean": 2.0, "std": pytest.approx(np.sqrt(2)), "min": 1.0, "max": 3.0, "n": 2}
    assert agg["ok"]["mean"] == 0.5
    assert agg["curve"]["mean"] == [0.5, 2.0] and agg["curve"]["max"] == [1.0, 3.0]
    assert agg["sub"]["b"]["mean"] == 3.0
    assert "order" not in agg and "name" not in agg
    assert aggregate(trials[:1])["a"]["std"] == 0.0


def test_results_hold_every_variant_and_trial(run, results):
    d = results["config"]["data_dim"]
    assert list(results["variants"]) == RUN_VARIANTS
    assert results["primary"] == {"variant": "main", "trial": 0}
    for name, v in results["variants"].items():
        assert len(v["trials"]) == TRIALS
        assert [t["seed"] for t in v["trials"]] == [0, 1]
        assert v["noise_std"] == (1e-2 if name == "low-noise" else 1.0)
        assert v["stats"] == ("batch" if name == "batch-stats" else "trainable")
        for t in v["trials"]:
            assert (run / t["model"]).is_file()
            acc, auc = t["accuracy_vs_k"], t["auroc_vs_k"]
            assert len(acc["mi"]) == len(acc["var"]) == len(auc["mi"]) == len(auc["var"]) == d
            assert 0 <= acc["bayes_bound"] <= 1
            assert acc["mi"][-1] == pytest.approx(acc["var"][-1])  # k = d: the same set of dims
            assert auc["mi"][-1] == pytest.approx(auc["var"][-1])
            assert sorted(t["criteria"]["mi"]["order"]) == list(range(d))
        assert v["aggregate"]["accuracy_vs_k"]["mi"]["n"] == TRIALS
        assert len(v["aggregate"]["auroc_vs_k"]["var"]["mean"]) == d
    # top-level keys: the primary trial, plus the aggregate of its setting
    first = results["variants"]["main"]["trials"][0]
    assert results["accuracy_vs_k"] == first["accuracy_vs_k"] and results["auroc_vs_k"] == first["auroc_vs_k"]
    assert results["criteria"] == first["criteria"]
    assert results["aggregate"] == results["variants"]["main"]["aggregate"]
    assert len(results["claims"]) == 7
    assert results["timing"]["n_models"] == TRIALS * len(RUN_VARIANTS)
    assert results["timing"]["parallel_jobs"] >= 1  # 0 = automatic: one process per core
    assert (run / "report.html").is_file() and (run / "config.toml").is_file()


def test_curves_are_the_library_tasks_on_the_regenerated_test_set(run, results):
    config = SyntheticConfig(n_samples=600, n_test=200)
    t = results["variants"]["batch-stats"]["trials"][1]
    data = _make_data(config, t["noise_std"], t["seed"])
    assert data.x.sum() == pytest.approx(t["data"]["checksum"])
    test = make_test_sets(data, 200, t["seed"])
    model = load_model(run / t["model"])
    w, w_ood = compute_latents(model, test.x), compute_latents(model, test.x_ood)
    for name in ("mi", "var"):
        order = t["criteria"][name]["order"]
        for k in (1, 2, 10):
            assert t["accuracy_vs_k"][name][k - 1] == pytest.approx(
                accuracy(model, w, test.u, order[:k], prior="uniform")
            )
            assert t["auroc_vs_k"][name][k - 1] == pytest.approx(
                auroc(log_density(model, w, order[:k], "uniform"), log_density(model, w_ood, order[:k], "uniform"))
            )


def test_figures_are_written_and_regenerated(run, results):
    names = {p.name for p in (run / "figures").glob("*.png")}
    expected = {
        "accuracy_vs_k.png",
        "auroc_vs_k.png",
        "roc.png",
        "decay.png",
        "ood_latent.png",
        "criteria.png",
        "latent_projections.png",
        "data_projections.png",
        "all_pairs_latent.png",
        "all_pairs_data.png",
        "all_pairs_w.png",
    }
    expected |= {f"correlation_{v}.png" for v in RUN_VARIANTS} | {f"criteria_{v}.png" for v in RUN_VARIANTS[1:]}
    assert expected <= names


def test_regeneration_refuses_different_data(run, results, tmp_path):
    tampered = json.loads(json.dumps(results))
    tampered["variants"]["main"]["trials"][0]["data"]["checksum"] += 1.0
    with pytest.raises(ValueError, match="differ from the run"):
        write_figures(run, tampered)


def test_trials_trained_together_equal_trials_trained_one_by_one(tmp_path):
    from ginmi.app.cli import main

    common = [
        "synthetic",
        "--trials",
        "2",
        "--variants",
        "main",
        "--n-samples",
        "500",
        "--epochs",
        "2",
        "--n-test",
        "100",
        "--no-progress",
        "--no-report",
        "--n-permutations",
        "20",
    ]
    assert main([*common, "--out", str(tmp_path / "together")]) == 0
    assert main([*common, "--no-together", "--jobs", "1", "--out", str(tmp_path / "loop")]) == 0
    a = json.loads((tmp_path / "together" / "results.json").read_text())["variants"]["main"]["trials"]
    b = json.loads((tmp_path / "loop" / "results.json").read_text())["variants"]["main"]["trials"]
    for ta, tb in zip(a, b):
        np.testing.assert_allclose(ta["training"]["epoch_loss"], tb["training"]["epoch_loss"], rtol=1e-4)
        np.testing.assert_allclose(ta["criteria"]["mi"]["scores"], tb["criteria"]["mi"]["scores"], atol=2e-3)


def test_evaluation_and_figures_are_announced(tmp_path, capsys):
    """With progress on, the evaluation of each trial and the drawing of the figures print a stage line."""
    from ginmi.app.cli import main as cli_main

    args = [
        "synthetic",
        "--n-samples",
        "300",
        "--n-test",
        "100",
        "--epochs",
        "1",
        "--batch-size",
        "100",
        "--no-report",
        "--out",
        str(tmp_path / "run"),
    ]
    assert cli_main(args) == 0
    err = capsys.readouterr().err
    evaluating, drawing = err.find("ginmi: evaluating main trial 0"), err.find("ginmi: drawing figures")
    assert -1 < evaluating < drawing, err[-2000:]
