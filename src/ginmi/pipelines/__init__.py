"""Deprecated: the commands moved to :mod:`ginmi.app` (this path works until the next release)."""
