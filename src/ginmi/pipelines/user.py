"""Deprecated: moved to :mod:`ginmi.app.user` (this path works until the next release)."""

from ginmi._deprecated import forward

forward(__name__, "ginmi.app.user")
