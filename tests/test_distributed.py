"""Data-parallel training: 2 gloo processes under torchrun give the model of 1 process, same global batch."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap

import pytest
import torch

from ginmi.distributed import init_from_env, is_main_process, shard
from ginmi.model import GINModel
from ginmi.training import TrainConfig, evaluate_loss, train

_WORKER = textwrap.dedent("""
    import sys, torch
    from ginmi.distributed import cleanup, is_main_process, world_size
    from ginmi.model import GINModel
    from ginmi.training import TrainConfig, train
    sys.path.insert(0, sys.argv[2])
    from test_distributed import CONFIG, data, model
    x, u = data()
    out = {}
    for stats in ("trainable", "batch"):
        m = model(stats)
        history = train(m, x, u, CONFIG, progress=False, checkpoint_dir=sys.argv[1] + "/" + stats)
        out[stats] = m.state_dict()
        out[stats + "_loss"] = history["step_loss"]
    if is_main_process():
        out["world_size"] = world_size()
        torch.save(out, sys.argv[1] + "/ddp.pt")
    cleanup()
""")

CONFIG = TrainConfig(epochs=2, batch_size=50, lr=1e-2, warmup_steps=2, device="cpu")  # last batch: 30 of 130


def data():
    g = torch.Generator().manual_seed(1)
    u = torch.arange(130) % 3
    return torch.randn(130, 4, generator=g) + u[:, None].float(), u


def model(stats):
    return GINModel({"name": "vector", "dim": 4, "n_blocks": 2, "width": 8, "seed": 3}, 3, stats=stats)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_equal_one_process(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(_free_port()),
        "--no-python",
        sys.executable,
        "-c",
        _WORKER,
        str(tmp_path),
        str(__import__("pathlib").Path(__file__).parent),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ddp = torch.load(tmp_path / "ddp.pt", weights_only=True)
    assert ddp["world_size"] == 2
    x, u = data()
    for stats in ("trainable", "batch"):
        single = model(stats)
        history = train(single, x, u, CONFIG, progress=False)
        # the global-batch losses of every step agree
        torch.testing.assert_close(
            torch.tensor(ddp[stats + "_loss"]), torch.tensor(history["step_loss"]), rtol=1e-4, atol=1e-5
        )
        if stats == "trainable":
            for name, ref in single.state_dict().items():
                torch.testing.assert_close(ddp[stats][name], ref, rtol=1e-4, atol=1e-5, msg=f"{stats} {name}")
        else:
            # With batch statistics the loss is invariant to translations of w, so the gradient of
            # the last coupling's shift biases is 0 up to rounding, and Adam turns rounding noise
            # into +-lr steps there; compare the trained models by their likelihood instead.
            ddp_model = model(stats)
            ddp_model.load_state_dict(ddp[stats])
            assert abs(evaluate_loss(ddp_model, x, u) - evaluate_loss(single, x, u)) < 1e-3
        assert float((single.state_dict()["flow.blocks.0.subnet1.4.weight"]).abs().max()) > 1e-3  # it trained
    # only rank 0 wrote checkpoints, and they hold the final state
    assert sorted(p.name for p in (tmp_path / "batch").iterdir()) == ["checkpoint.pt"]


def test_single_process_context_and_sharding():
    ctx = init_from_env("cpu")
    assert (ctx.rank, ctx.world_size) == (0, 1) and is_main_process()
    batch = torch.arange(7)
    parts = [shard(batch, type(ctx)(r, 3, ctx.device)).tolist() for r in range(3)]
    assert parts == [[0, 3, 6], [1, 4], [2, 5]]
