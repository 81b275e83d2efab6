"""scikit-learn estimators: conventions (check_estimator), pipelines, cross-validation, grid search,
and agreement with the torch core they wrap."""

from __future__ import annotations

import dataclasses
import pickle
import warnings
from functools import partial

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.feature_selection import SelectKBest, mutual_info_classif
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from ginmi import estimators
from ginmi.estimators import GINTransformer, InformativeSelector
from ginmi.selection import SelectionConfig
from ginmi.training import TrainConfig
from ginmi.vector import VectorModelConfig, compute_latents, train_vector_model

SMALL = {"epochs": 10, "batch_size": 64, "n_blocks": 2, "width": 8, "warmup_steps": 0}


def _data(n=600, seed=0, labels=(0, 1, 2)):
    """Two informative latents (class means apart), two noise latents, linearly mixed."""
    rng = np.random.default_rng(seed)
    u = np.arange(n) % len(labels)
    z = 2.5 * np.column_stack([np.cos(2 * np.pi * u / len(labels)), np.sin(2 * np.pi * u / len(labels))])
    latent = np.column_stack([z + 0.4 * rng.standard_normal((n, 2)), rng.standard_normal((n, 2))])
    mixing = np.linalg.qr(rng.standard_normal((4, 4)))[0] * [1.0, 2.0, 0.5, 1.5]
    return latent @ mixing.T, np.asarray(labels)[u]


@parametrize_with_checks(
    [
        InformativeSelector(),
        GINTransformer(**SMALL),
        GINTransformer(InformativeSelector(threshold="top-k", k=2, n_permutations=0), **SMALL),
    ],
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def _options(config, exclude=()):
    return [f for f in dataclasses.fields(config) if f.name not in exclude]


TRAIN_EXCLUDED = ("seed", *estimators._RUN_FOLDER_OPTIONS)


def test_parameters_are_the_config_fields():
    """Issue 14: every option is declared once, in the dataclasses; the estimators take their names,
    defaults and (per parameter) a constraint from them."""
    gin, selector = GINTransformer(), InformativeSelector()
    for estimator, groups, extra in (
        (
            gin,
            [(VectorModelConfig, ()), (TrainConfig, TRAIN_EXCLUDED)],
            {"selector", "prior", "random_state", "verbose"},
        ),
        (selector, [(SelectionConfig, ())], {"criterion", "random_state"}),
    ):
        options = [f for config, exclude in groups for f in _options(config, exclude)]
        assert set(estimator.get_params()) == {f.name for f in options} | extra
        assert set(estimator._parameter_constraints) == set(estimator.get_params())
        for config, exclude in groups:
            for f in _options(config, exclude):
                assert getattr(estimator, f.name) == getattr(config(), f.name), f.name
    assert TrainConfig().seed == gin.random_state == selector.random_state == 0


def _other_value(field, default):
    """A valid value of the config field other than its default."""
    if field.metadata.get("choices"):
        return next(c for c in field.metadata["choices"] if c != default)
    if isinstance(default, bool):
        return not default
    if isinstance(default, tuple):
        return default[:1]
    if isinstance(default, str):
        return "cpu"
    if default is None:
        return 3
    return default + 1 if isinstance(default, int) else default / 2 or 0.5


def test_every_model_and_training_option_reaches_training(monkeypatch):
    """Issue 14: every field of VectorModelConfig and TrainConfig can be set from the estimator (the seed
    as `random_state`) and reaches the configs training uses; only the run-folder options are not
    parameters (an estimator trains in memory)."""
    used = {}

    def capture(x, u, classes, model_config, train_config, **kwargs):
        used.update(model=model_config, train=train_config)
        raise InterruptedError

    monkeypatch.setattr(estimators, "train_vector_model", capture)
    x, y = _data(n=60)
    for name, config in (("model", VectorModelConfig), ("train", TrainConfig)):
        for f in dataclasses.fields(config):
            if f.name in estimators._RUN_FOLDER_OPTIONS:
                assert f.name not in GINTransformer().get_params()
                continue
            value = _other_value(f, getattr(config(), f.name))
            param = "random_state" if f.name == "seed" else f.name
            with pytest.raises(InterruptedError):
                GINTransformer(**{param: value}).fit(x, y)
            assert getattr(used[name], f.name) == value != getattr(config(), f.name), f.name


def test_parameter_types_and_ranges_are_checked_from_the_configs():
    x, y = _data(n=60)
    with pytest.raises(ValueError, match="The 'lr' parameter of GINTransformer must be an instance of"):
        GINTransformer(lr="fast").fit(x, y)
    with pytest.raises(ValueError, match="The 'stats' parameter of GINTransformer must be a str among"):
        GINTransformer(stats="moving").fit(x, y)
    with pytest.raises(ValueError, match="`lr` must be positive"):  # TrainConfig.__post_init__
        GINTransformer(lr=-1.0).fit(x, y)
    with pytest.raises(ValueError, match="`width` must be positive"):  # VectorModelConfig.__post_init__
        GINTransformer(width=0).fit(x, y)
    with pytest.raises(ValueError, match="The 'selector' parameter of GINTransformer must be"):
        GINTransformer(selector=LogisticRegression()).fit(x, y)
    with pytest.raises(ValueError, match="q must lie in"):  # SelectionConfig.__post_init__
        InformativeSelector(q=2.0).fit(x, y)
    with pytest.raises(TypeError, match="unexpected keyword argument 'learning_rate'"):
        GINTransformer(learning_rate=0.1)


def test_gin_transformer_is_a_thin_facade_over_train_vector_model():
    x, y = _data()
    gin = GINTransformer(**SMALL, random_state=3).fit(x, y)
    model, history, _ = train_vector_model(
        x,
        y,
        [0, 1, 2],
        VectorModelConfig(n_blocks=2, width=8),
        TrainConfig(epochs=10, batch_size=64, warmup_steps=0, seed=3),
        progress=False,
    )
    assert history["epoch_loss"] == gin.history_["epoch_loss"]
    np.testing.assert_allclose(gin.transform(x), compute_latents(model, x), rtol=1e-4, atol=1e-4)


def test_transform_inverse_posterior_and_density():
    x, y = _data(labels=("cat", "dog", "eel"))
    gin = GINTransformer(**SMALL).fit(x, y)
    w = gin.transform(x)
    assert w.shape == x.shape and w.dtype == np.float64
    np.testing.assert_allclose(gin.inverse_transform(w), x, atol=1e-9)
    assert list(gin.classes_) == ["cat", "dog", "eel"]
    proba = gin.predict_proba(x)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    assert gin.classes_[proba.argmax(1)].tolist() == gin.predict(x).tolist()
    assert gin.score(x, y) > 0.9
    np.testing.assert_allclose(np.exp(gin.predict_log_proba(x)), proba)
    assert sorted(gin.selected_.tolist()) == sorted(np.flatnonzero(gin.selector_.get_support()).tolist())
    # outliers: far from every class in x space
    rng = np.random.default_rng(1)
    outliers = 8.0 * rng.standard_normal((200, 4))
    scores = np.r_[gin.score_samples(x[:200]), gin.score_samples(outliers)]
    assert roc_auc_score(np.r_[np.ones(200), np.zeros(200)], scores) > 0.9
    assert gin.get_feature_names_out().tolist() == ["w0", "w1", "w2", "w3"]


def test_selected_latents_are_the_informative_ones():
    rng = np.random.default_rng(0)
    u = np.arange(900) % 3
    z = 2.5 * np.column_stack([np.cos(2 * np.pi * u / 3), np.sin(2 * np.pi * u / 3)])
    x = np.column_stack([z + 0.4 * rng.standard_normal((900, 2)), rng.standard_normal((900, 2))]) * [1, 2, 3, 0.5]
    gin = GINTransformer(InformativeSelector(threshold="max-curvature"), epochs=20, batch_size=90, n_blocks=2).fit(x, u)
    w = gin.transform(x)
    corr = np.abs(np.corrcoef(w.T, x.T)[:4, 4:])
    assert sorted(corr[gin.selected_].argmax(1).tolist()) == [0, 1]
    rest = np.setdiff1d(np.arange(4), gin.selected_)
    assert gin.scores_[gin.selected_].min() > 5 * gin.scores_[rest].max()


def test_pipeline_cross_validation_and_grid_search():
    x, y = _data()
    pipe = Pipeline(
        [("gin", GINTransformer(**SMALL)), ("select", InformativeSelector()), ("clf", LogisticRegression())]
    )
    scores = cross_val_score(pipe, x, y, cv=StratifiedKFold(3, shuffle=True, random_state=0))
    assert scores.shape == (3,) and scores.min() > 0.85
    # GINTransformer is itself a classifier (Bayes posterior on its selected latents)
    assert cross_val_score(GINTransformer(**SMALL), x, y, cv=3).min() > 0.85
    grid = {
        "select__threshold": ["top-k"],
        "select__k": [1, 2],
        "gin__width": [8],
        "gin__selector__n_permutations": [50],
    }
    search = GridSearchCV(pipe, grid, cv=2)
    search.fit(x, y)
    assert search.best_params_["select__k"] in (1, 2)
    assert search.best_estimator_.named_steps["select"].get_support().sum() == search.best_params_["select__k"]
    assert search.predict(x).shape == y.shape
    assert search.best_estimator_.named_steps["gin"].selector_.n_permutations == 50


def test_nested_selector_params_and_grid_search():
    """Issue 14: the selection options are the selector's, reached as ``selector__<name>`` (on the
    default selector too, which set_params makes explicit with the same seed)."""
    gin = GINTransformer(**SMALL, random_state=4)
    assert "selector__q" not in gin.get_params()
    assert gin.set_params(selector__q=0.01) is gin
    assert gin.selector.get_params() == InformativeSelector(q=0.01, random_state=4).get_params()
    assert gin.get_params()["selector__q"] == 0.01
    x, y = _data(n=300)
    search = GridSearchCV(GINTransformer(**SMALL), {"selector__threshold": ["top-k"], "selector__k": [1, 2]}, cv=2)
    best = search.fit(x, y).best_estimator_
    assert len(best.selected_) == best.selector.k == search.best_params_["selector__k"]


def test_any_selector_composes():
    """GINTransformer(selector=...) takes any scikit-learn selector; its scores_ rank the latents."""
    x, y = _data()
    selector = SelectKBest(partial(mutual_info_classif, random_state=0), k=2)
    gin = GINTransformer(selector, **SMALL).fit(x, y)
    assert isinstance(gin.selector_, SelectKBest) and not hasattr(selector, "scores_")  # a fitted clone
    assert gin.selected_.tolist() == np.argsort(-gin.scores_)[:2].tolist()
    assert gin.score(x, y) > 0.9


def test_clone_params_and_pickle():
    gin = GINTransformer(InformativeSelector(threshold="top-k", k=2), epochs=3)
    params = gin.get_params()
    assert params["epochs"] == 3 and params["selector__k"] == 2 and "random_state" in params
    twin = clone(gin)
    assert twin.selector is not gin.selector and twin.selector.get_params() == gin.selector.get_params()
    assert not hasattr(twin, "model_")
    twin.set_params(epochs=2, width=4, selector__k=1)
    assert (twin.epochs, twin.width, twin.selector.k, gin.selector.k) == (2, 4, 1, 2)
    x, y = _data(n=200)
    twin.fit(x, y)
    assert not hasattr(twin.selector, "support_") and twin.selector_.k == 1 and len(twin.selected_) == 1
    again = pickle.loads(pickle.dumps(twin))
    np.testing.assert_array_equal(again.transform(x), twin.transform(x))


def test_deprecated_flat_selection_options():
    """The selection options of earlier versions still work for one release, as the selector's."""
    with pytest.warns(DeprecationWarning, match=r"selector=InformativeSelector\(threshold='top-k', k=2\)"):
        gin = GINTransformer(threshold="top-k", k=2, epochs=3, random_state=5)
    assert gin.selector.get_params() == InformativeSelector(threshold="top-k", k=2, random_state=5).get_params()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        twin = clone(gin)
    with pytest.warns(DeprecationWarning, match="`selector__q`"):
        twin.set_params(q=0.01)
    assert (twin.selector.q, gin.selector.q) == (0.01, 0.05)
    with pytest.warns(DeprecationWarning):
        assert GINTransformer().set_params(n_permutations=9).selector.n_permutations == 9
    with pytest.raises(TypeError, match="to the `selector`"):
        GINTransformer(InformativeSelector(), q=0.01)


def test_informative_selector_on_raw_features_with_every_threshold():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 150)
    x = np.column_stack(
        [
            rng.standard_normal(450),
            y + 0.3 * rng.standard_normal(450),
            rng.standard_normal(450),
            -2.0 * y + rng.standard_normal(450),
        ]
    )
    for threshold in ("sharp-drop", "max-curvature"):
        sel = InformativeSelector(threshold=threshold).fit(x, y)
        assert set(sel.selected_.tolist()) <= {1, 3} and 1 in sel.selected_
    sel = InformativeSelector(threshold="top-k", k=2).fit(x, y)
    assert sel.get_support().tolist() == [False, True, False, True]
    assert sel.transform(x).shape == (450, 2) and sel.pvalues_.shape == (4,)
    assert InformativeSelector(threshold="top-k", k=2, n_permutations=0).fit(x, y).pvalues_ is None
    np.testing.assert_array_equal(sel.transform(x), x[:, [1, 3]])
    assert sel.order_[:2].tolist() == [1, 3] and sel.scores_.shape == (4,)
    fdr = InformativeSelector(threshold="fdr", n_permutations=60).fit(x, y)
    assert fdr.pvalues_.shape == (4,) and fdr.pvalues_[[1, 3]].max() <= 1 / 61 + 1e-12
    assert fdr.get_support().tolist() == [False, True, False, True]
    assert sel.ci_low_ is None
    boot = InformativeSelector(threshold="top-k", k=2, n_permutations=0, bootstrap=20).fit(x, y)
    assert np.all(boot.ci_low_ <= boot.ci_high_) and boot.ci_low_[[1, 3]].min() > boot.ci_high_[[0, 2]].max()
    var = InformativeSelector(criterion="var", threshold="top-k", k=1).fit(x, y)
    assert var.selected_.tolist() == [3]  # VAR ranks by spread, not by information


def test_informative_selector_errors():
    x, y = _data(n=60)
    with pytest.raises(ValueError, match="`criterion`='mi'"):
        InformativeSelector(criterion="var", threshold="fdr").fit(x, y)
    with pytest.raises(ValueError, match="The 'criterion' parameter of InformativeSelector must be a str among"):
        InformativeSelector(criterion="entropy").fit(x, y)
    with pytest.raises(ValueError, match="needs `k`"):
        InformativeSelector(threshold="top-k").fit(x, y)
    with pytest.raises(ValueError, match="Unknown label type"):
        InformativeSelector().fit(x, np.linspace(0, 1, 60))


@pytest.mark.parametrize("mi_estimator", ["knn", "sklearn"])
def test_informative_selector_tiny_classes(mi_estimator):
    """Issue 14: classes smaller than n_neighbors + 1 are scored as scikit-learn scores them (k = size - 1)."""
    from sklearn.feature_selection import mutual_info_classif

    rng = np.random.default_rng(1)
    y = np.repeat([0, 1, 2, 3, 4], [3, 3, 2, 2, 1])
    x = np.column_stack([rng.standard_normal(11), y + 0.1 * rng.standard_normal(11)])
    sel = InformativeSelector(mi_estimator=mi_estimator, n_permutations=20).fit(x, y)
    ref = mutual_info_classif(x, y, discrete_features=False, n_neighbors=3, random_state=0)
    np.testing.assert_allclose(sel.scores_, ref, rtol=0, atol=1e-10)
    assert sel.pvalues_.shape == (2,)


def test_gin_transformer_input_errors():
    x, y = _data(n=60)
    with pytest.raises(ValueError, match="1 feature"):
        GINTransformer(**SMALL).fit(x[:, :1], y)
    with pytest.raises(ValueError, match="NaN"):
        GINTransformer(**SMALL).fit(np.where(np.eye(60, 4) > 0, np.nan, x), y)
    with pytest.raises(ValueError, match="fewer than 2 samples"):
        GINTransformer(**SMALL).fit(x[:7], np.r_[np.zeros(6), 1])
    gin = GINTransformer(**SMALL).fit(x, y)
    with pytest.raises(ValueError, match="expecting 4 features"):
        gin.transform(x[:, :3])
    with pytest.raises(ValueError, match="expecting 4 features"):
        gin.inverse_transform(x[:, :3])
    with pytest.raises(ValueError, match="`epochs` must be positive"):
        GINTransformer(epochs=0).fit(x, y)


def test_package_exports_estimators():
    import ginmi

    assert ginmi.GINTransformer is GINTransformer and ginmi.InformativeSelector is InformativeSelector
    with pytest.raises(AttributeError):
        ginmi.NoSuchThing  # noqa: B018
    assert torch.get_default_dtype() in (torch.float32, torch.float64)


def test_defaults_learn_small_tables():
    """Issue 15.1: GINTransformer() on the 178 wine rows reached 0.62 training accuracy (60 steps)."""
    from sklearn.datasets import load_wine

    X, y = load_wine(return_X_y=True)
    with pytest.warns(UserWarning, match="2004 optimiser steps"):
        gin = GINTransformer(InformativeSelector(threshold="sharp-drop", n_permutations=0)).fit(X, y)
    from ginmi.tasks.classification import accuracy

    assert accuracy(gin.model_, gin.transform(X), y, list(range(X.shape[1]))) >= 0.95  # all latents


def test_fdr_selects_planted_columns_among_300():
    """Issue 15.2: with 200 permutations the smallest p-value 1/201 could not pass Benjamini-Hochberg
    among 300 columns, so nothing was selected."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    X = rng.standard_normal((200, 300))
    X[:, 17] = 1.5 * y + 0.6 * rng.standard_normal(200)
    X[:, 123] = 1.2 * y + 0.7 * rng.standard_normal(200)
    sel = InformativeSelector().fit(X, y)
    assert sorted(sel.selected_.tolist()) == [17, 123]
    assert InformativeSelector(max_permutations=200).fit(X, y).selected_.tolist() == []  # the old null
