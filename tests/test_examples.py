"""The scripts in examples/ run end to end at their --quick settings (as in CI)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(name: str, *args: str) -> str:
    # one thread: these models are tiny, and a loaded CI machine makes torch's thread pool thrash
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--quick", *args], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_synthetic_study():
    out = _run("synthetic_study.py")
    assert "MI: selects" in out and "VAR: selects" in out and "MCC" in out


@pytest.mark.slow
def test_select_user_data_on_wine():
    out = _run("select_user_data.py")
    assert "informative features" in out and "flavanoids" in out
    assert "accuracy" in out and "grid search: best number of latents" in out


@pytest.mark.slow
def test_select_user_data_on_a_csv_file(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    label = np.repeat(["a", "b"], 60)
    signal = (label == "b") + 0.3 * rng.standard_normal(120)
    rows = [f"{s:.5f},{n:.5f},{m:.5f},{lab}" for s, n, m, lab in zip(signal, *rng.standard_normal((2, 120)), label)]
    path = tmp_path / "mine.csv"
    path.write_text("signal,noise,more_noise,kind\n" + "\n".join(rows) + "\n")
    out = _run("select_user_data.py", "--data", str(path), "--label-column", "kind")
    assert "classes ['a', 'b']" in out and "  signal " in out and "  noise " not in out


@pytest.mark.slow
def test_ood_images():
    from ginmi.data.images import FASHION_MNIST_SYSTEM_DIR

    if not FASHION_MNIST_SYSTEM_DIR.is_dir() and not os.environ.get("GINMI_DATA_DIR"):
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    out = _run("ood_images.py")
    assert "OOD AUROC" in out and "by MI" in out
