"""Old import paths kept for one release: each forwards its names to where they now live.

The application (CLI, commands, report, figures) moved to :mod:`ginmi.app` in 0.2.0 and the
vector-model stages to :mod:`ginmi.vector`; ``import ginmi.cli`` and the like still work, with a
:class:`DeprecationWarning` naming the new path.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from typing import Any


def forward(old: str, *new: str) -> None:
    """Make module ``old`` (already being imported) resolve its names in the modules ``new``, in
    order, and warn once that it moved."""
    warnings.warn(
        f"{old} moved to {' and '.join(new)} in ginmi 0.2.0; the old path will be removed in the next release",
        DeprecationWarning,
        stacklevel=3,
    )

    def __getattr__(name: str) -> Any:
        for target in new:
            module = importlib.import_module(target)
            if hasattr(module, name):
                return getattr(module, name)
        raise AttributeError(f"module {old!r} has no attribute {name!r}")

    sys.modules[old].__getattr__ = __getattr__  # type: ignore[method-assign]
