"""Checkpoints: exact resume, atomic saves that survive SIGKILL, pickle-free loading."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace

import pytest
import torch

from ginmi.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from ginmi.model import GINModel
from ginmi.training import DivergenceError, TrainConfig, train


def _data(n=300, dim=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    u = torch.arange(n) % 3
    x = torch.randn(n, dim, generator=g) + u[:, None].float()
    return x, u


def _model(stats="trainable"):
    return GINModel({"name": "vector", "dim": 4, "n_blocks": 2, "width": 8, "seed": 0}, 3, stats=stats)


class _Stop(Exception):
    pass


@pytest.mark.parametrize("stats", ["trainable", "batch"])
def test_interrupted_and_resumed_run_equals_uninterrupted(tmp_path, stats):
    x, u = _data()
    config = TrainConfig(epochs=4, batch_size=64, lr=1e-2, warmup_steps=3, device="cpu", checkpoint_seconds=0)
    full = _model(stats)
    h_full = train(full, x, u, config, progress=False, checkpoint_dir=tmp_path / "full")

    def interrupt(epoch, loss):
        if epoch == 1:  # after the checkpoint of epoch 2 was written
            raise _Stop

    with pytest.raises(_Stop):
        train(_model(stats), x, u, config, progress=False, on_epoch=interrupt, checkpoint_dir=tmp_path / "cut")
    assert load_checkpoint(tmp_path / "cut" / CHECKPOINT_NAME)["epoch"] == 2
    resumed = _model(stats)  # a fresh process: new model, same command
    h_res = train(resumed, x, u, replace(config, resume=True), progress=False, checkpoint_dir=tmp_path / "cut")
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert h_res["step_loss"] == h_full["step_loss"]
    assert h_res["epoch_loss"] == h_full["epoch_loss"]


def test_resume_refuses_other_options_and_starts_fresh_without_checkpoint(tmp_path):
    x, u = _data()
    config = TrainConfig(epochs=2, batch_size=64, device="cpu", resume=True)
    train(_model(), x, u, config, progress=False, checkpoint_dir=tmp_path)  # no checkpoint yet: fresh start
    assert load_checkpoint(tmp_path / CHECKPOINT_NAME)["epoch"] == 2
    with pytest.raises(ValueError, match="other training options.*lr"):
        train(_model(), x, u, replace(config, lr=0.5), progress=False, checkpoint_dir=tmp_path)


def test_checkpoint_holds_what_resume_needs(tmp_path):
    x, u = _data()
    train(_model(), x, u, TrainConfig(epochs=1, batch_size=64, device="cpu"), progress=False, checkpoint_dir=tmp_path)
    state = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert {"model", "optimizer", "scheduler", "epoch", "step", "rng", "history", "config"} <= set(state)
    assert state["step"] == 5 and set(state["rng"]) == {"order", "noise", "torch"}
    assert not list(tmp_path.glob(".*tmp"))


def test_divergence_keeps_the_last_good_checkpoint(tmp_path):
    x, u = _data()
    model = _model()

    def corrupt(step, loss):
        if step == 7:  # epoch 2 (5 steps per epoch)
            with torch.no_grad():
                model.flow.blocks[0].subnet1[0].weight[0, 0] = float("nan")

    with pytest.raises(DivergenceError, match=r"step 8 \(epoch 2\).*epoch 1.*lower the learning rate"):
        train(
            model,
            x,
            u,
            TrainConfig(epochs=3, batch_size=64, device="cpu", checkpoint_seconds=0),
            progress=False,
            on_step=corrupt,
            checkpoint_dir=tmp_path,
        )
    state = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


_SAVER = textwrap.dedent("""
    import sys, torch
    from ginmi.checkpoint import save_checkpoint
    path = sys.argv[1]
    big = torch.randn(4_000_000)
    epoch = 0
    while True:
        epoch += 1
        save_checkpoint(path, {"model": {"w": big + epoch}, "epoch": epoch, "step": epoch})
        print(epoch, flush=True)
""")


def test_sigkill_during_save_leaves_previous_checkpoint_loadable(tmp_path):
    path = tmp_path / CHECKPOINT_NAME
    seen_partial = False
    for attempt in range(6):
        proc = subprocess.Popen([sys.executable, "-c", _SAVER, str(path)], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip()  # one complete save
            time.sleep(0.05 + 0.03 * attempt)  # now it is (almost always) in the middle of the next save
            seen_partial |= bool(list(tmp_path.glob(f".{CHECKPOINT_NAME}.*.tmp")))
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait()
        state = load_checkpoint(path)  # never a half-written file
        assert state["epoch"] >= 1
        assert state["model"]["w"].shape == (4_000_000,)
        if seen_partial:
            break
    assert seen_partial, "the kill never landed during a save"
    save_checkpoint(path, {"model": {}, "epoch": 99, "step": 0})  # the next save cleans up the stale temporary
    assert not list(tmp_path.glob(".*.tmp"))


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def test_malicious_and_corrupt_files_give_clear_errors(tmp_path):
    evil = tmp_path / "evil.pt"
    marker = tmp_path / "pwned"
    torch.save({"checkpoint_version": 1, "model": _Payload(str(marker)), "epoch": 1, "step": 1}, evil)
    with pytest.raises(ValueError, match="refuses to unpickle"):
        load_checkpoint(evil)
    assert not marker.exists()

    good = tmp_path / "good.pt"
    save_checkpoint(good, {"model": {"w": torch.randn(1000)}, "epoch": 1, "step": 1})
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="corrupt, truncated"):
        load_checkpoint(truncated)
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a ginmi training checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


def test_periodic_checkpoints_wait_for_checkpoint_seconds_but_the_final_state_is_always_saved(tmp_path):
    x, u = _data()
    config = TrainConfig(epochs=3, batch_size=64, device="cpu", checkpoint_seconds=3600)

    def interrupt(epoch, loss):
        if epoch == 1:
            raise _Stop

    with pytest.raises(_Stop):
        train(_model(), x, u, config, progress=False, on_epoch=interrupt, checkpoint_dir=tmp_path / "cut")
    assert not (tmp_path / "cut" / CHECKPOINT_NAME).exists()  # a fast run: no periodic checkpoint yet
    train(_model(), x, u, config, progress=False, checkpoint_dir=tmp_path / "full")
    assert load_checkpoint(tmp_path / "full" / CHECKPOINT_NAME)["epoch"] == 3


def test_a_run_resumes_across_the_fused_and_autograd_paths(tmp_path):
    x, u = _data()
    config = TrainConfig(epochs=3, batch_size=64, device="cpu", checkpoint_seconds=0, fused=True)

    def interrupt(epoch, loss):
        if epoch == 0:
            raise _Stop

    with pytest.raises(_Stop):
        train(_model(), x, u, config, progress=False, on_epoch=interrupt, checkpoint_dir=tmp_path)
    state = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert state["epoch"] == 1 and state["optimizer"]["state"][0]["step"] == 5  # FlatAdam wrote torch's format
    resumed = _model()
    history = train(resumed, x, u, replace(config, fused=False, resume=True), progress=False, checkpoint_dir=tmp_path)
    full = train(_model(), x, u, config, progress=False)
    assert len(history["step_loss"]) == len(full["step_loss"]) == 15
    torch.testing.assert_close(
        torch.tensor(history["step_loss"]), torch.tensor(full["step_loss"]), rtol=1e-4, atol=1e-5
    )
