"""Every docstring example of the package runs (the README's single test command covers them)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import ginmi

MODULES = sorted(m.name for m in pkgutil.walk_packages(ginmi.__path__, prefix="ginmi.") if m.name != "ginmi.__main__")


@pytest.mark.parametrize("name", ["ginmi", *MODULES])
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files (default run folders) stay out of the repo
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples of {name} failed"
