"""Deprecated: moved to :mod:`ginmi.vector` and :mod:`ginmi.app.common` (this path works until the next release)."""

from ginmi._deprecated import forward

forward(__name__, "ginmi.vector", "ginmi.app.common")
