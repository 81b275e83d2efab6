"""One tiny ``ginmi synthetic`` run shared by the report and pipeline tests (made once per session)."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from ginmi.app.cli import main

TINY = [
    "--n-samples",
    "600",
    "--epochs",
    "2",
    "--batch-size",
    "120",
    "--warmup-steps",
    "3",
    "--n-test",
    "200",
    "--no-progress",
]
TRIALS = 2


def tiny_image_net(conv_widths: tuple[int, ...] = (4, 8), fc_width: int = 16) -> list[str]:
    """``ginmi images`` options of a small image network: one coupling per convolutional width, one
    fully-connected coupling."""
    widths = [str(w) for w in conv_widths]
    return ["--conv-widths", *widths, "--n-conv-blocks", "1", "--fc-width", str(fc_width), "--n-fc-blocks", "1"]


VARIANTS = ["main", "low-noise", "batch-stats"]


@functools.cache
def tiny_run() -> Path:
    """Run folder of ``ginmi synthetic`` at tiny sizes with 2 trials and 3 variants."""
    run = Path(tempfile.mkdtemp(prefix="ginmi-tiny-")) / "run"
    code = main(["synthetic", *TINY, "--trials", str(TRIALS), "--variants", *VARIANTS, "--out", str(run)])
    assert code == 0
    return run
