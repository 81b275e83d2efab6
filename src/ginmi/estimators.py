"""scikit-learn estimators: a thin facade over the torch core, for pipelines, grid search and notebooks.

:class:`InformativeSelector`
    scores the columns of any feature matrix by ``I(x_i; y)`` (or the VAR criterion) and keeps the
    informative ones with the chosen threshold (``top-k``, ``sharp-drop``, ``max-curvature``,
    ``fdr``); a ``SelectorMixin``, so ``get_support`` and ``transform`` work as usual.
:class:`GINTransformer`
    learns a GIN flow ``w = g(x)`` with the class-conditional Gaussian of ``w`` given the label
    (paper Eq. 5), selects the informative latents with its ``selector`` (by default an
    :class:`InformativeSelector`), and offers ``transform`` / ``inverse_transform`` between ``x``
    and ``w``, the Bayes posterior on the selected latents (paper Eq. 6: ``predict`` /
    ``predict_proba``) and their log-density for outlier detection (``score_samples``).

Both follow scikit-learn's conventions: hyper-parameters in ``__init__`` only, learned attributes
ending in ``_``, ``fit`` returns ``self``, numpy in and out. Their parameters are not written here
but taken from the configuration dataclasses the commands use, so every option is declared once:
the fields of :class:`~ginmi.selection.SelectionConfig` are the parameters of
:class:`InformativeSelector`, those of :class:`~ginmi.vector.VectorModelConfig` and
:class:`~ginmi.training.TrainConfig` the parameters of :class:`GINTransformer`, with the same names,
defaults and checks (``_parameter_constraints`` holds each field's type and choices, the
dataclass's own ``__post_init__`` its ranges). The selection options of :class:`GINTransformer` are
those of its ``selector`` (``selector__q`` in ``set_params`` and parameter grids), as in
scikit-learn's meta-estimators.

Example:
    >>> import numpy as np
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.linear_model import LogisticRegression
    >>> from ginmi.estimators import GINTransformer, InformativeSelector
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1, 2], 100)
    >>> X = np.column_stack([y + 0.2 * rng.standard_normal(300), rng.standard_normal((300, 3))])
    >>> pipe = make_pipeline(GINTransformer(epochs=5, n_blocks=2), InformativeSelector(), LogisticRegression())
    >>> bool(pipe.fit(X, y).score(X, y) > 0.9)
    True
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
import warnings
from numbers import Integral, Real
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone
from sklearn.feature_selection import SelectorMixin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from ginmi.selection import SelectionConfig, score_criteria, select, var_scores
from ginmi.tasks.classification import PRIORS, posterior
from ginmi.tasks.ood import log_density
from ginmi.training import TrainConfig
from ginmi.vector import VectorModelConfig, encode_labels, train_vector_model

__all__ = ["GINTransformer", "InformativeSelector"]

ConfigT = TypeVar("ConfigT")

_RUN_FOLDER_OPTIONS = ("checkpoint_every", "checkpoint_seconds", "resume", "overwrite")
"""The :class:`~ginmi.training.TrainConfig` options about the checkpoints of a command's run folder:
an estimator trains in memory, so they are not among its parameters."""

_TYPE_CONSTRAINTS: dict[Any, Any] = {bool: "boolean", int: Integral, float: Real, str: str, tuple: tuple}
_KEYWORD = inspect.Parameter.KEYWORD_ONLY
_SELF = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _parameter(name: str, default: Any, annotation: Any, kind: Any = _KEYWORD) -> inspect.Parameter:
    return inspect.Parameter(name, kind, default=default, annotation=annotation)


def _options(config: type, exclude: tuple[str, ...] = ()) -> tuple[list[inspect.Parameter], dict[str, list[Any]]]:
    """Keyword-only estimator parameters named, typed and defaulted as the fields of the dataclass
    ``config``, and their scikit-learn constraints: the field's type (its choices for a string), and
    None if the field is optional. Ranges stay in ``config.__post_init__``, run when ``fit`` builds it."""
    hints = typing.get_type_hints(config)
    parameters, constraints = [], {}
    for f in dataclasses.fields(config):
        if f.name in exclude:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[operator]
        parameters.append(_parameter(f.name, default, hints[f.name]))
        union = typing.get_origin(hints[f.name]) in (typing.Union, types.UnionType)
        choices = f.metadata.get("choices")
        constraints[f.name] = [
            None
            if arg is type(None)
            else StrOptions(set(choices))
            if choices
            else _TYPE_CONSTRAINTS[typing.get_origin(arg) or arg]
            for arg in (typing.get_args(hints[f.name]) if union else (hints[f.name],))
        ]
    return parameters, constraints


def _store(
    estimator: BaseEstimator, signature: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """The ``__init__`` of an estimator whose signature is built from dataclass fields: bind the
    arguments to ``signature`` (a TypeError for unknown or missing ones) and store them, nothing else."""
    bound = signature.bind(estimator, *args, **kwargs)
    bound.apply_defaults()
    for name, value in list(bound.arguments.items())[1:]:
        setattr(estimator, name, value)


def _config(estimator: BaseEstimator, config: type[ConfigT], **values: Any) -> ConfigT:
    """``config`` built from the estimator's parameters named as its fields (``values`` override them),
    so that the dataclass's own checks run."""
    params = estimator.get_params(deep=False)
    fields = {f.name: params[f.name] for f in dataclasses.fields(config) if f.name in params}  # type: ignore[arg-type]
    return config(**{**fields, **values})


def _seed(random_state: Any) -> int:
    """An int seed: ``random_state`` itself if it is an int, else one drawn from it (None: fresh)."""
    if isinstance(random_state, Integral) and not isinstance(random_state, bool):
        return int(random_state)
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def _writeable(x: np.ndarray) -> np.ndarray:
    """``x``, copied if read-only (torch cannot wrap read-only arrays, e.g. memory maps)."""
    return x if x.flags.writeable else x.copy()


_RANDOM_STATE = _parameter("random_state", 0, "int | np.random.RandomState | None")
_SELECTION_OPTIONS, _SELECTION_CONSTRAINTS = _options(SelectionConfig)
_MODEL_OPTIONS, _MODEL_CONSTRAINTS = _options(VectorModelConfig)
_TRAIN_OPTIONS, _TRAIN_CONSTRAINTS = _options(TrainConfig, exclude=("seed", *_RUN_FOLDER_OPTIONS))
_SELECTOR_SIGNATURE = inspect.Signature(
    [
        _SELF,
        _parameter("criterion", "mi", str, inspect.Parameter.POSITIONAL_OR_KEYWORD),
        *_SELECTION_OPTIONS,
        _RANDOM_STATE,
    ]
)
_GIN_SIGNATURE = inspect.Signature(
    [
        _SELF,
        _parameter("selector", None, "SelectorMixin | None", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        *_MODEL_OPTIONS,
        *_TRAIN_OPTIONS,
        _parameter("prior", "empirical", str),
        _RANDOM_STATE,
        _parameter("verbose", False, bool),
    ]
)
_SELECTOR_ONLY = tuple(name for name in _SELECTOR_SIGNATURE.parameters if name not in _GIN_SIGNATURE.parameters)


def _deprecated_selection_options(options: dict[str, Any]) -> None:
    given = ", ".join(f"{name}={value!r}" for name, value in options.items())
    warnings.warn(
        f"GINTransformer({given}): the selection options moved to the selector in ginmi 0.2.0 and will be removed "
        f"from GINTransformer in the next release; use GINTransformer(selector=InformativeSelector({given})), and "
        f"{', '.join(f'`selector__{name}`' for name in options)} in set_params and parameter grids",
        DeprecationWarning,
        stacklevel=3,
    )


class InformativeSelector(SelectorMixin, BaseEstimator):
    """Keep the columns that carry information about the class label ``y`` (paper Alg. 1).

    Every column ``x_i`` is scored by the mutual information ``I(x_i; y)`` (``criterion="mi"``,
    the paper's criterion) or by GIN's variance criterion (``"var"``), ordered, and cut with
    ``threshold``. Works on any features, not only GIN latents.

    Parameters
    ----------
    criterion : {"mi", "var"}, default "mi"
        Score of a column: kNN estimate of ``I(x_i; y)`` in nats, or the root mean square over
        classes of the class-conditional std (``var_kind="std"``: the plain std).
    mi_estimator, threshold, k, q, min_effect, n_permutations, max_permutations, bootstrap, n_neighbors, var_kind
        Keyword-only: the fields of :class:`~ginmi.selection.SelectionConfig`, with its defaults and
        checks (``threshold="fdr"``, the default, keeps the Benjamini-Hochberg discoveries of
        permutation p-values at level ``q`` that also explain at least ``min_effect`` of the label
        entropy; it needs ``criterion="mi"``). The model-based ``mi_estimator="gaussian"`` needs a
        GIN model and is not available here.
    random_state : int, RandomState or None, default 0
        Seed of the estimator's tie-breaking jitter, the permutations and the bootstrap.

    Attributes
    ----------
    scores_ : ndarray of shape (n_features_in_,)
        Score of every column (higher = more informative).
    pvalues_ : ndarray of shape (n_features_in_,) or None
        Permutation p-values of ``I(x_i; y) = 0`` (``criterion="mi"`` and ``n_permutations > 0``),
        else None.
    ci_low_, ci_high_ : ndarray of shape (n_features_in_,) or None
        Bootstrap percentile interval of every MI score (``criterion="mi"`` and ``bootstrap > 0``),
        else None.
    order_ : ndarray of int
        Columns ordered by score, best first.
    selected_ : ndarray of int
        The selected columns, best first.
    support_ : ndarray of bool, shape (n_features_in_,)
        Mask of the selected columns (also ``get_support()``).
    reason_ : str
        Why the threshold stopped where it did.
    n_features_in_ : int
        Number of columns seen in ``fit``.
    feature_names_in_ : ndarray of str
        Column names, when ``X`` has string column names (a DataFrame).

    Notes
    -----
    Passes :func:`sklearn.utils.estimator_checks.check_estimator` in full (scikit-learn itself
    skips its array-API check unless ``SCIPY_ARRAY_API`` is set).

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> y = np.repeat([0, 1], 200)
        >>> X = np.column_stack([rng.standard_normal(400), y + 0.3 * rng.standard_normal(400),
        ...                      rng.standard_normal(400)])
        >>> selector = InformativeSelector().fit(X, y)
        >>> selector.get_support().tolist(), selector.transform(X).shape
        ([False, True, False], (400, 1))
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "criterion": [StrOptions({"mi", "var"})],
        **_SELECTION_CONSTRAINTS,
        "random_state": ["random_state"],
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _store(self, _SELECTOR_SIGNATURE, args, kwargs)

    __init__.__signature__ = _SELECTOR_SIGNATURE  # type: ignore[attr-defined]

    def fit(self, X: Any, y: Any) -> InformativeSelector:
        """Score every column of ``X`` against the labels ``y`` and select the informative ones.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features (finite numbers).
        y : array-like of shape (n_samples,)
            Class labels.

        Returns
        -------
        self : InformativeSelector
        """
        self._validate_params()
        config = _config(self, SelectionConfig)
        if self.threshold == "fdr" and self.criterion != "mi":
            raise ValueError("`threshold`='fdr' needs MI permutation p-values: use `criterion`='mi'")
        if self.mi_estimator == "gaussian":
            raise ValueError("`mi_estimator`='gaussian' needs a trained GIN model; use 'knn' or 'sklearn' here")
        X, y = validate_data(self, X, y, dtype=np.float64, ensure_min_samples=2)
        check_classification_targets(y)
        config.check_dims(X.shape[1])
        if self.criterion == "mi":
            selection = score_criteria(X, y, config, seed=_seed(self.random_state))["mi"]
        else:
            selection = select(var_scores(X, y, config.var_kind), config.threshold, k=config.k)
        self.scores_ = selection.scores
        self.pvalues_ = selection.extra.get("pvalues")
        self.ci_low_ = selection.extra.get("ci_low")
        self.ci_high_ = selection.extra.get("ci_high")
        self.order_ = selection.order
        self.selected_ = selection.selected
        self.reason_ = selection.reason
        self.support_ = np.zeros(X.shape[1], dtype=bool)
        self.support_[self.selected_] = True
        return self

    def _get_support_mask(self) -> np.ndarray:
        check_is_fitted(self)
        return self.support_

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags


class GINTransformer(ClassifierMixin, TransformerMixin, BaseEstimator):
    """GIN representation ``w = g(x)`` with the informative latents chosen by a selector.

    ``fit(X, y)`` trains a volume-preserving flow so that ``w | y`` is a diagonal Gaussian per
    class (paper Eq. 5), then fits a clone of ``selector`` on the latents to choose the informative
    ones. ``transform`` gives all of ``w`` (put an :class:`InformativeSelector` after it in a
    pipeline to keep the informative ones); ``predict_proba`` is the Bayes posterior
    ``p(y | w_S) ∝ p(w_S | y) p(y)`` on the selected latents ``S`` (paper Eq. 6) and
    ``score_samples`` the log-density ``log p(w_S)`` of the learned mixture (higher = more
    normal; paper Section 3 outlier detection).

    Parameters
    ----------
    selector : selector estimator or None, default None
        Chooses the informative latents: any scikit-learn selector (``fit(w, y)``, ``get_support()``;
        its ``scores_``, if any, rank them), cloned at ``fit``. None stands for
        ``InformativeSelector(random_state=random_state)``; ``set_params(selector__q=0.01)`` and
        parameter grids reach inside it (on the default too, which it then makes explicit).
    flow, n_blocks, width, clamp, stats, standardize, linear_stage
        Keyword-only: the architecture, the fields of :class:`~ginmi.vector.VectorModelConfig`
        with its defaults and checks (the paper's 10-D network).
    epochs, batch_size, min_steps, min_batches, lr, milestones, gamma, input_noise, warmup_steps, grad_clip, \
weight_decay, device, threads, fused
        Keyword-only: the training settings, the fields of :class:`~ginmi.training.TrainConfig` with
        its defaults and checks (the paper's, with ``epochs=None``: 60 epochs, more on small data),
        except ``seed`` (``random_state`` here) and the checkpoint options of a command's run folder
        (a ``GINTransformer`` trains in memory). The fitted model lives on the CPU whatever ``device``.
    prior : {"empirical", "uniform"}, default "empirical"
        Class prior ``p(y)`` of the posterior and the mixture density.
    random_state : int, RandomState or None, default 0
        Seed of initialisation, batching and noise (``TrainConfig.seed``), and of the default selector.
    verbose : bool, default False
        Show a progress bar while training.

    Attributes
    ----------
    model_ : ginmi.model.GINModel
        The trained model (float64, on the CPU; ``model_.save(path)`` writes a ``ginmi`` model file).
    classes_ : ndarray
        Class labels, in the order of the columns of ``predict_proba``.
    selector_ : selector estimator
        The clone of ``selector`` fitted on the training latents.
    scores_ : ndarray of shape (n_features_in_,) or None
        Score of every latent dimension (the selector's ``scores_``; None if it has none).
    selected_ : ndarray of int
        The informative latent dimensions, best first (used by ``predict`` and ``score_samples``).
    history_ : dict
        Loss history of training (``step_loss``, ``epoch_loss``, ``epoch_seconds``).
    n_features_in_ : int
        Number of features (= of latent dimensions).
    feature_names_in_ : ndarray of str
        Column names, when ``X`` has string column names (a DataFrame).

    Notes
    -----
    Needs at least 2 features (a coupling splits them), 2 classes and 2 samples per class.
    On the CPU a fit is deterministic given an int ``random_state``.

    The selection options of earlier versions (``GINTransformer(q=0.01)``, ``set_params(q=0.01)``)
    still work for one release, with a DeprecationWarning: they now belong to the selector.

    :func:`~sklearn.utils.estimator_checks.check_estimator` passes in full, at small settings
    for speed (``epochs=10, batch_size=64, n_blocks=2``). (scikit-learn itself skips its checks
    for pandas input and the array API when pandas or ``SCIPY_ARRAY_API`` are absent.)

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> y = np.repeat([0, 1], 150)
        >>> X = np.column_stack([y + 0.2 * rng.standard_normal(300), rng.standard_normal(300)])
        >>> gin = GINTransformer(InformativeSelector(q=0.01), epochs=5, n_blocks=2).fit(X, y)
        >>> w = gin.transform(X)
        >>> bool(np.allclose(gin.inverse_transform(w), X))
        True
        >>> gin.predict_proba(X[:2]).shape, bool(gin.score(X, y) > 0.9), len(gin.selected_)
        ((2, 2), True, 1)
        >>> gin.set_params(selector__q=0.05).selector
        InformativeSelector()
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "selector": [HasMethods(["fit", "get_support"]), None],
        **_MODEL_CONSTRAINTS,
        **_TRAIN_CONSTRAINTS,
        "prior": [StrOptions(set(PRIORS))],
        "random_state": ["random_state"],
        "verbose": ["boolean"],
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        legacy = {name: kwargs.pop(name) for name in _SELECTOR_ONLY if name in kwargs}
        if legacy and (args[0] if args else kwargs.get("selector")) is not None:
            raise TypeError(f"give {', '.join(map(repr, legacy))} to the `selector`, not to GINTransformer")
        _store(self, _GIN_SIGNATURE, args, kwargs)
        if legacy:
            _deprecated_selection_options(legacy)
            self.selector = InformativeSelector(**legacy, random_state=self.random_state)

    __init__.__signature__ = _GIN_SIGNATURE  # type: ignore[attr-defined]

    def set_params(self, **params: Any) -> GINTransformer:
        """Set parameters as scikit-learn does; ``selector__<name>`` also reaches the default selector
        (``selector=None`` becomes the ``InformativeSelector`` it stands for), and the deprecated flat
        selection options are mapped to ``selector__<name>``."""
        legacy = {name: params.pop(name) for name in _SELECTOR_ONLY if name in params}
        if legacy:
            _deprecated_selection_options(legacy)
            params.update({f"selector__{name}": value for name, value in legacy.items()})
        if any(key.startswith("selector__") for key in params) and params.get("selector", self.selector) is None:
            params["selector"] = InformativeSelector(random_state=params.get("random_state", self.random_state))
        return super().set_params(**params)

    def fit(self, X: Any, y: Any) -> GINTransformer:
        """Train the flow on ``(X, y)`` and select the informative latents.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data, at least 2 features.
        y : array-like of shape (n_samples,)
            Class labels (at least 2 classes, at least 2 samples each).

        Returns
        -------
        self : GINTransformer
        """
        self._validate_params()
        seed = _seed(self.random_state)
        model_config = _config(self, VectorModelConfig)
        train_config = _config(self, TrainConfig, seed=seed)
        X, y = validate_data(self, X, y, dtype=np.float64, ensure_min_features=2, ensure_min_samples=2)
        X = _writeable(X)
        check_classification_targets(y)
        u, classes = encode_labels(y, len(X))
        model, history, _ = train_vector_model(
            X, u, list(range(len(classes))), model_config, train_config, progress=self.verbose
        )
        self.model_ = model.double().eval()
        self.history_ = history
        self.classes_ = np.unique(y)
        selector = InformativeSelector(random_state=seed) if self.selector is None else clone(self.selector)
        self.selector_ = selector.fit(self._latents(X), u)
        self.scores_ = getattr(self.selector_, "scores_", None)
        selected = np.flatnonzero(self.selector_.get_support())
        self.selected_ = (
            selected if self.scores_ is None else selected[np.argsort(-self.scores_[selected], kind="stable")]
        )
        if len(self.selected_) == 0:
            warnings.warn(
                "no latent dimension was selected as informative; predict and score_samples use all dimensions",
                UserWarning,
                stacklevel=2,
            )
        return self

    @torch.no_grad()
    def _latents(self, X: np.ndarray) -> np.ndarray:
        return self.model_.transform(torch.as_tensor(X, dtype=torch.float64)).numpy()

    def _dims(self) -> list[int]:
        return (self.selected_ if len(self.selected_) else np.arange(self.n_features_in_)).tolist()

    def transform(self, X: Any) -> np.ndarray:
        """Latents ``w = g(x)``: an array of shape ``(n_samples, n_features_in_)``."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return self._latents(_writeable(X))

    @torch.no_grad()
    def inverse_transform(self, X: Any) -> np.ndarray:
        """Data ``x = g^{-1}(w)`` for latents ``w`` of shape ``(n_samples, n_features_in_)``."""
        check_is_fitted(self)
        w = check_array(X, dtype=np.float64)
        if w.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {w.shape[1]} features, but GINTransformer is expecting {self.n_features_in_} features as input"
            )
        return self.model_.inverse(torch.as_tensor(_writeable(w))).numpy()

    def predict_proba(self, X: Any) -> np.ndarray:
        """Bayes posterior ``p(y | w_S)`` on the selected latents; columns ordered as ``classes_``."""
        w = self.transform(X)
        return posterior(self.model_, w, self._dims(), prior=self.prior)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Logarithm of :meth:`predict_proba`."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        """The class of maximum posterior on the selected latents."""
        check_is_fitted(self)
        return self.classes_[self.predict_proba(X).argmax(1)]

    def score_samples(self, X: Any) -> np.ndarray:
        """Log-density ``log p(w_S)`` of the selected latents under the learned class mixture.

        Higher means more normal, so ``roc_auc_score(is_normal, score_samples(X))`` measures
        outlier detection directly (paper Section 3).
        """
        return log_density(self.model_, self.transform(X), self._dims(), prior=self.prior)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the latents: ``w0, w1, ...``."""
        check_is_fitted(self)
        return np.asarray([f"w{i}" for i in range(self.n_features_in_)], dtype=object)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags
