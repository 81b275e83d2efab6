"""ginmi: GIN flows and mutual-information selection of informative latents.

The names a user calls are importable from here, each loaded on first use (PEP 562), so
``import ginmi`` stays light: it imports neither torch nor scikit-learn.

Example:
    >>> import numpy as np
    >>> from ginmi import mutual_information
    >>> rng = np.random.default_rng(0)
    >>> u = np.repeat([0, 1], 200)
    >>> w = np.column_stack([u + 0.1 * rng.standard_normal(400), rng.standard_normal(400)])
    >>> mi = mutual_information(w, u, random_state=0)  # nats; log 2 = 0.69 is all there is to know
    >>> bool(mi[0] > 0.6), bool(mi[1] < 0.05)
    (True, True)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.2.0"

# public name -> module that defines it (imported when the name is first used)
_LAZY = {
    # mutual information (NumPy/SciPy only)
    "mutual_information": "ginmi.mi",
    "gaussian_mutual_information": "ginmi.mi",
    "permutation_pvalues": "ginmi.mi",
    "bootstrap_intervals": "ginmi.mi",
    # model and training
    "GINModel": "ginmi.model",
    "load_model": "ginmi.model",
    "TrainConfig": "ginmi.training",
    "train": "ginmi.training",
    "train_many": "ginmi.training",
    "evaluate_loss": "ginmi.training",
    "build_flow": "ginmi.architectures",
    "VectorModelConfig": "ginmi.vector",
    "train_vector_model": "ginmi.vector",
    "train_vector_models": "ginmi.vector",
    "compute_latents": "ginmi.vector",
    # data
    "make_synthetic": "ginmi.data.synthetic",
    "load_image_pair": "ginmi.data.images",
    "sample_ood": "ginmi.data.synthetic",
    "SyntheticData": "ginmi.data.synthetic",
    "load_table": "ginmi.data.files",
    "match_columns": "ginmi.data.files",
    "encode_labels": "ginmi.vector",
    "check_features": "ginmi.vector",
    # selection of the informative latents
    "SelectionConfig": "ginmi.selection",
    "Selection": "ginmi.selection",
    "score_criteria": "ginmi.selection",
    "mi_scores": "ginmi.selection",
    "var_scores": "ginmi.selection",
    "select": "ginmi.selection",
    "benjamini_hochberg": "ginmi.selection",
    # tasks
    "posterior": "ginmi.tasks.classification",
    "accuracy": "ginmi.tasks.classification",
    "accuracy_vs_k": "ginmi.tasks.classification",
    "bayes_accuracy": "ginmi.tasks.classification",
    "log_density": "ginmi.tasks.ood",
    "auroc": "ginmi.tasks.ood",
    "auroc_vs_k": "ginmi.tasks.ood",
    "abs_correlation": "ginmi.tasks.identifiability",
    "matching": "ginmi.tasks.identifiability",
    "mcc": "ginmi.tasks.identifiability",
    "recovery": "ginmi.tasks.identifiability",
    "baseline_recovery": "ginmi.tasks.recovery_baselines",
    "fgsm": "ginmi.tasks.adversarial",
    "rejected": "ginmi.tasks.adversarial",
    "evaluate_defence": "ginmi.tasks.adversarial",
    # scikit-learn estimators
    "GINTransformer": "ginmi.estimators",
    "InformativeSelector": "ginmi.estimators",
}

__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ imports on demand
    from ginmi.architectures import build_flow
    from ginmi.data.files import load_table, match_columns
    from ginmi.data.images import load_image_pair
    from ginmi.data.synthetic import SyntheticData, make_synthetic, sample_ood
    from ginmi.estimators import GINTransformer, InformativeSelector
    from ginmi.mi import bootstrap_intervals, gaussian_mutual_information, mutual_information, permutation_pvalues
    from ginmi.model import GINModel, load_model
    from ginmi.selection import (
        Selection,
        SelectionConfig,
        benjamini_hochberg,
        mi_scores,
        score_criteria,
        select,
        var_scores,
    )
    from ginmi.tasks.adversarial import evaluate_defence, fgsm, rejected
    from ginmi.tasks.classification import accuracy, accuracy_vs_k, bayes_accuracy, posterior
    from ginmi.tasks.identifiability import abs_correlation, matching, mcc, recovery
    from ginmi.tasks.ood import auroc, auroc_vs_k, log_density
    from ginmi.tasks.recovery_baselines import baseline_recovery
    from ginmi.training import TrainConfig, evaluate_loss, train, train_many
    from ginmi.vector import (
        VectorModelConfig,
        check_features,
        compute_latents,
        encode_labels,
        train_vector_model,
        train_vector_models,
    )


def __getattr__(name: str) -> object:
    """Public names imported on first use, so ``import ginmi`` stays light (no torch import)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ginmi' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
