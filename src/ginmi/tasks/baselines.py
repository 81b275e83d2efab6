"""What a user would try instead of GIN on images, fitted on the same split: scikit-learn's linear
discriminant analysis, multinomial logistic regression, and a class-conditional Gaussian on 50 PCA
dimensions (``PCA(50)`` + ``QuadraticDiscriminantAnalysis(reg_param=0.1)``, the paper's classifier
on a linear representation). The last one also gives an OOD score, its mixture log-density
``log sum_u p(u) N(PCA(x); m_u, S_u)`` (higher = more normal, as :mod:`ginmi.tasks.ood`).

Example:
    >>> import numpy as np
    >>> from ginmi.tasks.baselines import image_baselines
    >>> rng = np.random.default_rng(0)
    >>> u = np.arange(200) % 2
    >>> x = rng.normal(size=(200, 6)) + u[:, None]
    >>> r = image_baselines(x[:150], u[:150], x[150:], u[150:], n_components=3)
    >>> sorted(r["accuracy"]), r["accuracy"]["lda"] > 0.8
    (['lda', 'logistic', 'pca_qda'], True)
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
from scipy.special import logsumexp

__all__ = ["BASELINES", "image_baselines"]

#: Names of the baselines and what they are.
BASELINES = {
    "lda": "LinearDiscriminantAnalysis() on the pixels",
    "logistic": "LogisticRegression(max_iter=200) on the pixels",
    "pca_qda": "PCA(50) + QuadraticDiscriminantAnalysis(reg_param=0.1)",
}


def _flat(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).reshape(len(x), -1)


def image_baselines(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    ood_x: np.ndarray | None = None,
    *,
    n_components: int = 50,
    reg_param: float = 0.1,
    seed: int = 0,
) -> dict[str, Any]:
    """Test accuracy of each of :data:`BASELINES` (and the OOD AUROC of ``pca_qda`` with ``ood_x``).

    Images are flattened to pixel vectors; with fewer than ``n_components + 1`` images in a class,
    fewer PCA dimensions are kept (QDA needs more samples per class than dimensions). Returns ``{"accuracy": {name: float},
    "auroc": {"pca_qda": float}, "seconds": {name: float}, "models": BASELINES}``.
    """
    from sklearn.decomposition import PCA
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis, QuadraticDiscriminantAnalysis
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    from ginmi.tasks.ood import auroc

    xtr, xte = _flat(train_x), _flat(test_x)
    ytr, yte = np.asarray(train_y), np.asarray(test_y)
    accuracy: dict[str, float] = {}
    seconds: dict[str, float] = {}
    out: dict[str, Any] = {"accuracy": accuracy, "auroc": {}, "seconds": seconds, "models": dict(BASELINES)}

    t0 = time.perf_counter()
    lda = LinearDiscriminantAnalysis().fit(xtr, ytr)
    accuracy["lda"] = float(np.mean(lda.predict(xte) == yte))
    seconds["lda"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        logistic = LogisticRegression(max_iter=200).fit(xtr, ytr)
    accuracy["logistic"] = float(np.mean(logistic.predict(xte) == yte))
    seconds["logistic"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    smallest_class = int(np.unique(ytr, return_counts=True)[1].min())  # QDA needs more samples than dims
    pca = PCA(max(1, min(n_components, xtr.shape[1], smallest_class - 1)), random_state=seed).fit(xtr)
    qda = QuadraticDiscriminantAnalysis(reg_param=reg_param).fit(pca.transform(xtr), ytr)
    accuracy["pca_qda"] = float(np.mean(qda.predict(pca.transform(xte)) == yte))
    if ood_x is not None and len(ood_x):
        normal = _qda_log_density(qda, pca.transform(xte))
        outlier = _qda_log_density(qda, pca.transform(_flat(ood_x)))
        out["auroc"]["pca_qda"] = float(auroc(normal, outlier))
    seconds["pca_qda"] = time.perf_counter() - t0
    return out


def _qda_log_density(qda: Any, z: np.ndarray) -> np.ndarray:
    """``log sum_u p(u) N(z; m_u, S_u)`` of a fitted ``QuadraticDiscriminantAnalysis``."""
    terms = []
    for mean, rotation, scaling, prior in zip(qda.means_, qda.rotations_, qda.scalings_, qda.priors_):
        proj = (z - mean) @ rotation
        terms.append(
            -0.5 * np.sum(proj**2 / scaling, axis=1)
            - 0.5 * np.sum(np.log(scaling))
            - 0.5 * len(scaling) * np.log(2 * np.pi)
            + np.log(prior)
        )
    return logsumexp(np.stack(terms, axis=1), axis=1)
