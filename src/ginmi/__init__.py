"""ginmi: GIN flows and mutual-information selection of informative latents."""

__version__ = "0.1.0"

__all__ = ["__version__", "GINTransformer", "InformativeSelector"]

_LAZY = {"GINTransformer": "ginmi.estimators", "InformativeSelector": "ginmi.estimators"}


def __getattr__(name: str) -> object:
    """Public classes imported on first use, so ``import ginmi`` stays light (no torch import)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ginmi' has no attribute {name!r}")
