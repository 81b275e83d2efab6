"""scikit-learn estimators: a thin facade over the torch core, for pipelines, grid search and notebooks.

:class:`GINTransformer`
    learns a GIN flow ``w = g(x)`` with the class-conditional Gaussian of ``w`` given the label
    (paper Eq. 5), selects the informative latents by MI (or VAR), and offers ``transform`` /
    ``inverse_transform`` between ``x`` and ``w``, the Bayes posterior on the selected latents
    (paper Eq. 6: ``predict`` / ``predict_proba``) and their log-density for outlier detection
    (``score_samples``).
:class:`InformativeSelector`
    scores the columns of any feature matrix by ``I(x_i; y)`` (or the VAR criterion) and keeps the
    informative ones with the chosen threshold (``top-k``, ``sharp-drop``, ``max-curvature``,
    ``fdr``); a ``SelectorMixin``, so ``get_support`` and ``transform`` work as usual.

Both follow scikit-learn's conventions: hyper-parameters in ``__init__`` only, learned attributes
ending in ``_``, ``fit`` returns ``self``, numpy in and out. The hyper-parameters have the same
names and defaults as the options of ``ginmi fit`` (:class:`~ginmi.training.TrainConfig`,
:class:`~ginmi.pipelines.common.VectorModelConfig`, :class:`~ginmi.selection.SelectionConfig`),
except ``random_state`` (the CLI's ``--seed``) and ``verbose`` (``--progress``).

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

import warnings
from numbers import Integral
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.feature_selection import SelectorMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from ginmi.pipelines.common import VectorModelConfig, encode_labels, train_vector_model
from ginmi.selection import SelectionConfig, score_criteria, select, var_scores
from ginmi.tasks.classification import posterior
from ginmi.tasks.ood import log_density
from ginmi.training import TrainConfig

__all__ = ["GINTransformer", "InformativeSelector"]

_MODEL, _TRAIN, _SELECT = VectorModelConfig(), TrainConfig(), SelectionConfig()
_SELECTOR_PARAMS = ("criterion", "threshold", "k", "q", "min_effect", "n_permutations", "max_permutations",
                    "n_neighbors", "var_kind", "mi_estimator", "random_state")


def _seed(random_state: Any) -> int:
    """An int seed: ``random_state`` itself if it is an int, else one drawn from it (None: fresh)."""
    if isinstance(random_state, Integral) and not isinstance(random_state, bool):
        return int(random_state)
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def _writeable(x: np.ndarray) -> np.ndarray:
    """``x``, copied if read-only (torch cannot wrap read-only arrays, e.g. memory maps)."""
    return x if x.flags.writeable else x.copy()


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
    threshold : {"fdr", "sharp-drop", "max-curvature", "top-k"}, default "fdr"
        How the informative set is chosen from the sorted scores (see :func:`ginmi.selection.select`);
        ``"fdr"`` keeps the Benjamini-Hochberg discoveries of permutation p-values at level ``q``
        that also explain at least ``min_effect`` of the label entropy (``criterion="mi"`` only).
    k : int, optional
        Number of columns kept with ``threshold="top-k"``.
    q : float, default 0.05
        False-discovery rate of ``threshold="fdr"``.
    min_effect : float, default 0.10
        With ``"fdr"``, the smallest ``I(x_i; y) / H(y)`` kept (0: significance alone).
    n_permutations : int, default 200
        Label permutations of the p-values (0: none; ``"fdr"`` needs them).
    max_permutations : int or None, default None
        Columns with fewer than 10 exceedances in ``n_permutations`` are refined by further
        permutations up to this many (sequential test); None: ``ceil(2 * n_features / q)``, enough
        for ``"fdr"`` to select among all columns.
    n_neighbors : int, default 3
        Neighbours of the kNN MI estimator.
    var_kind : {"class-rms", "std"}, default "class-rms"
        The VAR score.
    mi_estimator : {"knn", "sklearn"}, default "knn"
        MI estimator (see :data:`ginmi.selection.MI_ESTIMATORS`; the model-based ``"gaussian"``
        needs a GIN model and is not available here).
    random_state : int, RandomState or None, default 0
        Seed of the estimator's tie-breaking jitter and of the permutations.

    Attributes
    ----------
    scores_ : ndarray of shape (n_features_in_,)
        Score of every column (higher = more informative).
    pvalues_ : ndarray of shape (n_features_in_,) or None
        Permutation p-values of ``I(x_i; y) = 0`` (``criterion="mi"`` and ``n_permutations > 0``),
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

    def __init__(
        self,
        criterion: str = "mi",
        threshold: str = _SELECT.threshold,
        k: int | None = _SELECT.k,
        q: float = _SELECT.q,
        min_effect: float = _SELECT.min_effect,
        n_permutations: int = _SELECT.n_permutations,
        max_permutations: int | None = _SELECT.max_permutations,
        n_neighbors: int = _SELECT.n_neighbors,
        var_kind: str = _SELECT.var_kind,
        mi_estimator: str = _SELECT.mi_estimator,
        random_state: int | np.random.RandomState | None = 0,
    ) -> None:
        self.criterion = criterion
        self.threshold = threshold
        self.k = k
        self.q = q
        self.min_effect = min_effect
        self.n_permutations = n_permutations
        self.max_permutations = max_permutations
        self.n_neighbors = n_neighbors
        self.var_kind = var_kind
        self.mi_estimator = mi_estimator
        self.random_state = random_state

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
        X, y = validate_data(self, X, y, dtype=np.float64, ensure_min_samples=2)
        check_classification_targets(y)
        if self.criterion not in ("mi", "var"):
            raise ValueError(f"criterion must be 'mi' or 'var', got {self.criterion!r}")
        if self.threshold == "fdr" and self.criterion != "mi":
            raise ValueError("threshold='fdr' needs MI permutation p-values: use criterion='mi'")
        if self.mi_estimator == "gaussian":
            raise ValueError("the gaussian MI estimator needs a trained GIN model; use 'knn' or 'sklearn' here")
        seed = _seed(self.random_state)
        if self.criterion == "mi":
            config = SelectionConfig(
                mi_estimator=self.mi_estimator, threshold=self.threshold, k=self.k, q=self.q,
                min_effect=self.min_effect, n_permutations=self.n_permutations,
                max_permutations=self.max_permutations, n_neighbors=self.n_neighbors, var_kind=self.var_kind)
            selection = score_criteria(X, y, config, seed=seed)["mi"]
        else:
            selection = select(var_scores(X, y, self.var_kind), self.threshold, k=self.k)
        self.scores_ = selection.scores
        self.pvalues_ = selection.extra.get("pvalues")
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
    """GIN representation ``w = g(x)`` with the informative latents chosen by mutual information.

    ``fit(X, y)`` trains a volume-preserving flow so that ``w | y`` is a diagonal Gaussian per
    class (paper Eq. 5), then scores and selects the latents as :class:`InformativeSelector`
    does. ``transform`` gives all of ``w`` (put an :class:`InformativeSelector` after it in a
    pipeline to keep the informative ones); ``predict_proba`` is the Bayes posterior
    ``p(y | w_S) ∝ p(w_S | y) p(y)`` on the selected latents ``S`` (paper Eq. 6) and
    ``score_samples`` the log-density ``log p(w_S)`` of the learned mixture (higher = more
    normal; paper Section 3 outlier detection).

    Parameters
    ----------
    flow : {"gin", "glow"}, default "gin"
        Coupling type: volume-preserving GIN, or GLOW (ablation).
    n_blocks, width : int, default 8, 10
        Coupling blocks and hidden width of their subnets (the paper's 10-D network).
    clamp : float, default 2.0
        Soft clamp of the coupling log-scales.
    stats : {"trainable", "batch"}, default "trainable"
        Class statistics: trainable (Eq. 5) or batch (Appendix C).
    standardize : bool, default True
        Robust per-feature standardisation (median / MAD) stored in the model.
    epochs, batch_size, lr, milestones, gamma, input_noise, warmup_steps, grad_clip, weight_decay
        Training settings, as :class:`~ginmi.training.TrainConfig` (defaults: the paper's, with
        ``epochs=None``: 60 epochs, more on small data so that training takes at least
        ``min_steps`` optimiser steps, the batch capped so that an epoch has ``min_batches``).
    min_steps, min_batches : int, default 2000, 8
        The small-data rule of ``epochs=None`` (see :class:`~ginmi.training.TrainConfig`).
    device : str, default "auto"
        Torch device of training (``"auto"``: CUDA when available); the fitted model lives on the CPU.
    criterion, threshold, k, q, min_effect, n_permutations, max_permutations, n_neighbors, var_kind, mi_estimator
        Selection of the informative latents, as :class:`InformativeSelector`.
    prior : {"empirical", "uniform"}, default "empirical"
        Class prior ``p(y)`` of the posterior and the mixture density.
    random_state : int, RandomState or None, default 0
        Seed of initialisation, batching, noise and the MI estimator (the CLI's ``--seed``).
    verbose : bool, default False
        Show a progress bar while training.

    Attributes
    ----------
    model_ : ginmi.model.GINModel
        The trained model (float64, on the CPU; ``model_.save(path)`` writes a ``ginmi`` model file).
    classes_ : ndarray
        Class labels, in the order of the columns of ``predict_proba``.
    selector_ : InformativeSelector
        The selection fitted on the training latents.
    scores_ : ndarray of shape (n_features_in_,)
        Score of every latent dimension.
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

    :func:`~sklearn.utils.estimator_checks.check_estimator` passes in full, at small settings
    for speed (``epochs=10, batch_size=64, n_blocks=2``). (scikit-learn itself skips its checks
    for pandas input and the array API when pandas or ``SCIPY_ARRAY_API`` are absent.)

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> y = np.repeat([0, 1], 150)
        >>> X = np.column_stack([y + 0.2 * rng.standard_normal(300), rng.standard_normal(300)])
        >>> gin = GINTransformer(epochs=5, n_blocks=2).fit(X, y)
        >>> w = gin.transform(X)
        >>> bool(np.allclose(gin.inverse_transform(w), X))
        True
        >>> gin.predict_proba(X[:2]).shape, bool(gin.score(X, y) > 0.9)
        ((2, 2), True)
    """

    def __init__(
        self,
        *,
        flow: str = _MODEL.flow,
        n_blocks: int = _MODEL.n_blocks,
        width: int = _MODEL.width,
        clamp: float = _MODEL.clamp,
        stats: str = _MODEL.stats,
        standardize: bool = _MODEL.standardize,
        epochs: int | None = _TRAIN.epochs,
        batch_size: int = _TRAIN.batch_size,
        min_steps: int = _TRAIN.min_steps,
        min_batches: int = _TRAIN.min_batches,
        lr: float = _TRAIN.lr,
        milestones: tuple[float, ...] = _TRAIN.milestones,
        gamma: float = _TRAIN.gamma,
        input_noise: float = _TRAIN.input_noise,
        warmup_steps: int = _TRAIN.warmup_steps,
        grad_clip: float | None = _TRAIN.grad_clip,
        weight_decay: float = _TRAIN.weight_decay,
        device: str = _TRAIN.device,
        criterion: str = "mi",
        threshold: str = _SELECT.threshold,
        k: int | None = _SELECT.k,
        q: float = _SELECT.q,
        min_effect: float = _SELECT.min_effect,
        n_permutations: int = _SELECT.n_permutations,
        max_permutations: int | None = _SELECT.max_permutations,
        n_neighbors: int = _SELECT.n_neighbors,
        var_kind: str = _SELECT.var_kind,
        mi_estimator: str = _SELECT.mi_estimator,
        prior: str = "empirical",
        random_state: int | np.random.RandomState | None = 0,
        verbose: bool = False,
    ) -> None:
        self.flow = flow
        self.n_blocks = n_blocks
        self.width = width
        self.clamp = clamp
        self.stats = stats
        self.standardize = standardize
        self.epochs = epochs
        self.batch_size = batch_size
        self.min_steps = min_steps
        self.min_batches = min_batches
        self.lr = lr
        self.milestones = milestones
        self.gamma = gamma
        self.input_noise = input_noise
        self.warmup_steps = warmup_steps
        self.grad_clip = grad_clip
        self.weight_decay = weight_decay
        self.device = device
        self.criterion = criterion
        self.threshold = threshold
        self.k = k
        self.q = q
        self.min_effect = min_effect
        self.n_permutations = n_permutations
        self.max_permutations = max_permutations
        self.n_neighbors = n_neighbors
        self.var_kind = var_kind
        self.mi_estimator = mi_estimator
        self.prior = prior
        self.random_state = random_state
        self.verbose = verbose

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
        X, y = validate_data(self, X, y, dtype=np.float64, ensure_min_features=2, ensure_min_samples=2)
        X = _writeable(X)
        check_classification_targets(y)
        u, classes = encode_labels(y, len(X))
        seed = _seed(self.random_state)
        model_config = VectorModelConfig(flow=self.flow, n_blocks=self.n_blocks, width=self.width,
                                         clamp=self.clamp, stats=self.stats, standardize=self.standardize)
        train_config = TrainConfig(
            epochs=self.epochs, batch_size=self.batch_size, min_steps=self.min_steps, min_batches=self.min_batches,
            lr=self.lr, milestones=tuple(self.milestones),
            gamma=self.gamma, input_noise=self.input_noise, warmup_steps=self.warmup_steps,
            grad_clip=self.grad_clip, weight_decay=self.weight_decay, seed=seed, device=self.device,
        )
        model, history, _ = train_vector_model(X, u, list(range(len(classes))), model_config, train_config,
                                               progress=self.verbose)
        self.model_ = model.double().eval()
        self.history_ = history
        self.classes_ = np.unique(y)
        params = {name: getattr(self, name) for name in _SELECTOR_PARAMS}
        self.selector_ = InformativeSelector(**{**params, "random_state": seed}).fit(self._latents(X), u)
        self.scores_ = self.selector_.scores_
        self.selected_ = self.selector_.selected_
        if len(self.selected_) == 0:
            warnings.warn("no latent dimension was selected as informative; predict and score_samples "
                          "use all dimensions", UserWarning, stacklevel=2)
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
            raise ValueError(f"X has {w.shape[1]} features, but GINTransformer is expecting "
                             f"{self.n_features_in_} features as input")
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
