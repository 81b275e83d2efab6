"""The platform helper: one place asks for the usable cores, and it works where os.sched_getaffinity is missing."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import ginmi
from ginmi._platform import usable_cores


def test_usable_cores_with_and_without_affinity(monkeypatch):
    if hasattr(os, "sched_getaffinity"):
        assert usable_cores() == len(os.sched_getaffinity(0))
        monkeypatch.delattr(os, "sched_getaffinity")  # as on macOS and Windows
    monkeypatch.delattr(os, "process_cpu_count", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 5)
    assert usable_cores() == 5
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # "undetermined"
    assert usable_cores() == 1


def test_mutual_information_without_sched_getaffinity(monkeypatch):
    """Issue 14: mi._n_workers called os.sched_getaffinity unguarded (AttributeError on macOS and Windows)."""
    from sklearn.feature_selection import mutual_info_classif

    from ginmi.mi import mutual_information

    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr("ginmi.mi._CHUNK_ELEMENTS", 64)  # several column chunks: the thread pool is used
    rng = np.random.default_rng(0)
    u = np.repeat([0, 1], 50)
    w = rng.standard_normal((100, 4)) + u[:, None] * [0.0, 1.0, 2.0, 0.0]
    ref = mutual_info_classif(w, u, discrete_features=False, random_state=0)
    assert np.abs(mutual_information(w, u, random_state=0) - ref).max() < 1e-10


@pytest.mark.parametrize("module", ["mi.py", "training.py", "app/plots.py"])
def test_one_helper_asks_for_the_cores(module):
    src = Path(ginmi.__file__).parent
    assert "sched_getaffinity" not in (src / module).read_text()
    assert "usable_cores" in (src / module).read_text()
    users = [p.name for p in src.rglob("*.py") if "sched_getaffinity" in p.read_text()]
    assert users == ["_platform.py"]
