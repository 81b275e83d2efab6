"""Deprecated: moved to :mod:`ginmi.tasks.recovery_baselines` (this path works until the next release)."""

from ginmi._deprecated import forward

forward(__name__, "ginmi.tasks.recovery_baselines")
