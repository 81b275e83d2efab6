"""Selection criteria and thresholds, including the paper's point: a noise dimension with the
largest variance but no information about u is picked by VAR and rejected by MI."""

from __future__ import annotations

import numpy as np
import pytest

from ginmi.selection import (
    SelectionConfig,
    benjamini_hochberg,
    max_curvature,
    score_criteria,
    select,
    sharp_drop,
    var_scores,
)


def _planted(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    u = rng.integers(0, 4, n)
    means = np.array([-3.0, -1.0, 1.0, 3.0])
    w = np.column_stack(
        [
            rng.standard_normal(n) * 10.0,  # 0: pure noise with the largest variance
            means[u] + 0.3 * rng.standard_normal(n),  # 1: informative, small variance
            rng.standard_normal(n) * 0.5,  # 2: noise
            -2 * means[u] + rng.standard_normal(n),  # 3: informative
            rng.standard_normal(n) * 4.0,  # 4: noise, large variance
        ]
    )
    return w, u


def test_planted_noise_dimension_fools_var_but_not_mi():
    w, u = _planted()
    criteria = score_criteria(w, u, SelectionConfig(threshold="sharp-drop"))
    assert set(criteria["mi"].selected.tolist()) == {1, 3}
    assert set(criteria["mi"].order[:2].tolist()) == {1, 3}
    assert criteria["var"].order[0] == 0  # VAR ranks the loud noise first
    assert 0 not in criteria["mi"].order[:2]


def test_var_scores_rms_of_class_stds_and_plain_std():
    w, u = _planted()
    expected = np.sqrt(np.mean([w[u == c].std(0) ** 2 for c in range(4)], axis=0))
    np.testing.assert_allclose(var_scores(w, u), expected)
    np.testing.assert_allclose(var_scores(w, u, "std"), w.std(0))
    with pytest.raises(ValueError, match="var kind"):
        var_scores(w, u, "mad")


def test_sharp_drop_finds_the_gap_and_ignores_noise_ratios():
    assert sharp_drop(np.array([1.1, 0.5, 0.03, 0.02, 0.01, 0.0, 0.0])) == 2
    assert sharp_drop(np.array([2.0, 1.9, 1.8, 0.1, 0.09])) == 3
    assert sharp_drop(np.array([1.0])) == 1


def test_max_curvature_knee():
    assert max_curvature(np.array([1.0, 0.9, 0.01, 0.0, 0.0, 0.0, 0.0, 0.0])) == 2
    assert max_curvature(np.array([1.0, 1.0, 1.0])) == 3
    curve = np.exp(-np.arange(20) / 3.0)
    assert 2 <= max_curvature(curve) <= 6


def test_benjamini_hochberg_hand_computed():
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.5])
    # sorted: 0.005 (<= .01), 0.01 (<= .02), 0.03 (<= .03), 0.04 (> .04? 0.04 <= 0.04 yes), 0.5 (> .05)
    np.testing.assert_array_equal(benjamini_hochberg(p, 0.05), [True, True, True, True, False])
    np.testing.assert_array_equal(benjamini_hochberg(np.array([0.2, 0.3]), 0.05), [False, False])
    # step-up: a later passing rank rescues an earlier failing one
    np.testing.assert_array_equal(benjamini_hochberg(np.array([0.02, 0.021, 0.9]), 0.05), [True, True, False])
    with pytest.raises(ValueError):
        benjamini_hochberg(p, 1.5)


def test_select_thresholds_and_errors():
    scores = np.array([0.01, 1.2, 0.02, 0.9])
    sel = select(scores, "top-k", k=3)
    assert sel.order.tolist() == [1, 3, 2, 0] and sel.selected.tolist() == [1, 3, 2]
    sel = select(scores, "fdr", pvalues=np.array([0.6, 0.001, 0.4, 0.002]))
    assert sel.selected.tolist() == [1, 3] and "Benjamini" in sel.reason
    assert select(scores, "max-curvature").selected.tolist() == [1, 3]
    d = sel.to_dict()
    assert d["pvalues"] == [0.6, 0.001, 0.4, 0.002] and d["selected"] == [1, 3]
    with pytest.raises(ValueError, match="top-k.* needs `k`"):
        select(scores, "top-k")
    with pytest.raises(ValueError, match="p-values"):
        select(scores, "fdr")
    with pytest.raises(ValueError, match="`threshold` must be"):
        select(scores, "eyeball")


def test_fdr_selects_the_informative_dims_with_pvalues_and_null_level():
    w, u = _planted(2000)
    criteria = score_criteria(w, u, SelectionConfig(threshold="fdr", n_permutations=99), seed=0)
    mi = criteria["mi"]
    assert set(mi.selected.tolist()) == {1, 3}
    # no exceedance in 99 permutations: refined up to the budget ceil(2 * dims / q), still none
    budget = SelectionConfig().permutation_budget(w.shape[1])
    assert mi.extra["max_permutations"] == budget > 99
    assert mi.extra["pvalues"][[1, 3]].max() == 1 / (1 + budget)
    assert mi.extra["pvalues"][[0, 2, 4]].min() > 0.05
    assert 0 < mi.extra["null_level"] < 0.05
    assert len(criteria["var"].selected) == 2 and "size of the MI set" in criteria["var"].reason
    d = mi.to_dict()
    assert d["threshold"] == "fdr" and len(d["pvalues"]) == 5 and d["estimator"] == "knn"


def test_knn_estimator_is_sklearns_and_bootstrap_bands_are_ordered():
    from sklearn.feature_selection import mutual_info_classif

    w, u = _planted(500)
    cfg = SelectionConfig(threshold="sharp-drop", n_permutations=0, bootstrap=20)
    np.testing.assert_allclose(
        score_criteria(w, u, cfg, seed=3)["mi"].scores, mutual_info_classif(w, u, random_state=3), atol=1e-9
    )
    extra = score_criteria(w, u, cfg, seed=3)["mi"].extra
    assert np.all(extra["ci_low"] <= extra["ci_high"]) and extra["ci_high"][1] > extra["ci_high"][0]


def test_gaussian_estimator_uses_the_model():
    import torch

    from ginmi.model import GINModel

    model = GINModel({"name": "vector", "dim": 3, "width": 4}, n_classes=2)
    with torch.no_grad():
        model.mu[1, 0] = 50.0  # dim 0 separates the classes perfectly, the others not at all
    cfg = SelectionConfig(mi_estimator="gaussian", threshold="top-k", k=1, n_permutations=0)
    w, u = np.zeros((4, 3)), np.array([0, 1, 0, 1])
    sel = score_criteria(w, u, cfg, model=model)["mi"]
    np.testing.assert_allclose(sel.scores, [np.log(2), 0, 0], atol=1e-6)
    assert sel.selected.tolist() == [0]
    with pytest.raises(ValueError, match="needs a trained model"):
        score_criteria(w, u, cfg)
    with pytest.raises(ValueError, match="n_permutations"):
        SelectionConfig(threshold="fdr", n_permutations=0)


def test_min_effect_drops_significant_but_negligible_leakage():
    rng = np.random.default_rng(1)
    w, u = _planted(4000, seed=1)
    w[:, 2] += 0.15 * (u - 1.5)  # a small leak of u into a noise dim: detectable, negligible
    pure = score_criteria(w, u, SelectionConfig(min_effect=0.0, n_permutations=99), seed=0)["mi"]
    assert set(pure.selected.tolist()) == {1, 2, 3}
    default = score_criteria(w, u, SelectionConfig(n_permutations=99), seed=0)["mi"]
    assert set(default.selected.tolist()) == {1, 3}
    assert default.extra["min_score"] == pytest.approx(0.10 * np.log(4), rel=0.01)
    assert "with score >=" in default.reason
    assert rng is not None


def test_var_keeps_nothing_when_mi_selects_nothing():
    """Issue 15.2: an empty MI set made VAR select 'top-k with k = 1, the size of the MI set'."""
    rng = np.random.default_rng(0)
    w, u = rng.standard_normal((300, 6)), np.repeat([0, 1, 2], 100)
    criteria = score_criteria(w, u, SelectionConfig(n_permutations=50), seed=0)
    assert criteria["mi"].selected.tolist() == [] and criteria["var"].selected.tolist() == []
    assert "MI selected no dim" in criteria["var"].reason and len(criteria["var"].order) == 6


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"q": 2}, "q must lie in"),
        ({"threshold": "top-k"}, "top-k.* needs `k`"),
        ({"k": 3}, "only with `threshold`=.top-k."),
        ({"max_permutations": -1}, "max_permutations"),
    ],
)
def test_selection_options_are_checked_when_built(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SelectionConfig(**kwargs)
    with pytest.raises(ValueError, match="exceeds the 10 dims"):
        SelectionConfig(threshold="top-k", k=50).check_dims(10)
