"""The flat public API: every name a user calls comes from ``ginmi`` itself, loaded on first use."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import ginmi

REQUIRED = [
    "mutual_information",
    "GINModel",
    "load_model",
    "train",
    "TrainConfig",
    "make_synthetic",
    "GINTransformer",
    "InformativeSelector",
    "score_criteria",
    "SelectionConfig",
    "select",
    "accuracy_vs_k",
    "auroc_vs_k",
    "posterior",
    "log_density",
    "abs_correlation",
    "mcc",
    "compute_latents",
    "train_vector_model",
]


def test_import_ginmi_is_light_and_the_names_load_on_use():
    code = """
import sys
import ginmi
heavy = [m for m in ("torch", "sklearn", "scipy", "matplotlib") if m in sys.modules]
assert not heavy, heavy
from ginmi import mutual_information, GINModel, load_model, train, make_synthetic
assert "torch" in sys.modules
from ginmi.model import GINModel as defined
assert GINModel is defined
print("ok")
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr


def test_all_and_dir_list_the_public_names():
    assert set(REQUIRED) <= set(ginmi.__all__)
    assert set(ginmi.__all__) <= set(dir(ginmi))
    assert len(ginmi.__all__) == len(set(ginmi.__all__))


@pytest.mark.parametrize("name", [n for n in ginmi.__all__ if n != "__version__"])
def test_each_public_name_is_the_object_its_module_defines(name):
    module = importlib.import_module(ginmi._LAZY[name])
    assert getattr(ginmi, name) is getattr(module, name)
    assert name in getattr(module, "__all__", [name])


def test_unknown_names_raise_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        ginmi.NoSuchThing  # noqa: B018
    with pytest.raises(ImportError):
        exec("from ginmi import NoSuchThing", {})
