"""Mixed precision of the coupling subnets (ginmi.precision, GINModel.set_precision): resolution of
"auto" and its fp32 fallback, exact invertibility, loss agreement with fp32 training, save/load."""

from __future__ import annotations

import argparse

import pytest
import torch
from torch import nn

from ginmi import precision
from ginmi.config import add_arguments, from_namespace
from ginmi.model import GINModel, load_model
from ginmi.precision import AutocastSequential, native_bf16, resolve_precision
from ginmi.training import TrainConfig, evaluate_loss, train

# a small image network: 8x8 images, two downsamplings, one conv coupling per stage, one fc coupling
ARCH = {
    "name": "image",
    "input_shape": (1, 8, 8),
    "conv_widths": (4, 8),
    "n_conv_blocks": 1,
    "fc_width": 32,
    "n_fc_blocks": 1,
    "seed": 0,
}


def _images(n: int = 240, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-dependent blobs on 8x8 images in [0, 1], 3 classes."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randint(0, 3, (n,), generator=g)
    grid = torch.linspace(-1, 1, 8)
    centres = torch.tensor([[-0.5, -0.5], [0.5, 0.0], [0.0, 0.6]])[u]
    d2 = (grid[None, :, None] - centres[:, 0, None, None]) ** 2 + (grid[None, None, :] - centres[:, 1, None, None]) ** 2
    x = torch.exp(-d2 / 0.2) + 0.1 * torch.rand(n, 8, 8, generator=g)
    return x.clamp(0, 1)[:, None], u


def _perturbed(model: GINModel, scale: float = 0.1) -> GINModel:
    """Random non-zero subnet weights, so the flow is far from its identity initialisation."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.flow.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return model


def _subnets(model: GINModel) -> list[nn.Module]:
    return [m for b in model.flow.blocks for m in (getattr(b, "subnet1", None), getattr(b, "subnet2", None)) if m]


def test_resolve_precision_and_error_names_the_parameter():
    assert resolve_precision("fp32") == "fp32" and resolve_precision("bf16") == "bf16"
    with pytest.raises(ValueError, match="`precision` must be one of"):
        resolve_precision("fp16")
    with pytest.raises(ValueError, match="`precision`"):
        GINModel(ARCH, 3, precision="half")


def test_auto_falls_back_to_fp32_without_native_bf16(monkeypatch):
    monkeypatch.setattr(precision, "_cpu_flags", lambda: frozenset({"avx2", "avx512f"}))
    assert not native_bf16("cpu")
    assert resolve_precision("auto") == "fp32"
    model = GINModel(ARCH, 3, precision="auto")
    assert model.precision == "fp32"
    assert all(type(net) is nn.Sequential for net in _subnets(model))


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch without oneDNN")
def test_auto_picks_bf16_with_native_bf16(monkeypatch):
    monkeypatch.setattr(precision, "_cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    assert resolve_precision("auto") == "bf16"
    model = GINModel(ARCH, 3, precision="auto")
    assert model.precision == "bf16"
    assert all(isinstance(net, AutocastSequential) for net in _subnets(model))
    assert model.set_precision("fp32").precision == "fp32"
    assert all(type(net) is nn.Sequential for net in _subnets(model))


def test_vector_networks_stay_fp32():
    arch = {"name": "vector", "dim": 4, "width": 8}
    with pytest.raises(ValueError, match="`precision` 'bf16' is for image networks"):
        GINModel(arch, 2, precision="bf16")
    assert GINModel(arch, 2, precision="auto").precision == "fp32"


def test_bf16_subnets_compute_in_bf16_while_training_and_fp32_in_eval():
    torch.manual_seed(0)
    net = AutocastSequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 16))
    x = torch.randn(32, 16)
    train_out = net(x)
    reference = nn.Sequential(*net)(x)
    assert train_out.dtype == torch.float32
    err = (train_out - reference).abs().max()
    assert 0 < err < 0.05 * reference.abs().max()  # bf16 rounding, and only that
    torch.testing.assert_close(net.eval()(x), reference, rtol=0, atol=0)
    double = net.double().train()
    torch.testing.assert_close(double(x.double()), nn.Sequential(*double)(x.double()), rtol=0, atol=0)  # float64 alone


def test_bf16_model_is_invertible_to_fp32_rounding():
    x, _ = _images(64)
    errors = {}
    for prec in ("fp32", "bf16"):
        model = _perturbed(GINModel(ARCH, 3, precision=prec)).eval()
        with torch.no_grad():
            errors[prec] = float((model.inverse(model.transform(x)) - x).abs().max())
    assert errors["fp32"] < 1e-5
    assert errors["bf16"] < 1e-5  # eval mode: the same float32 function as fp32


def test_bf16_gradients_and_loss_are_float32():
    x, u = _images(32)
    model = _perturbed(GINModel(ARCH, 3, precision="bf16")).train()
    loss = model.loss(x, u)
    loss.backward()
    assert loss.dtype == torch.float32
    assert all(p.grad.dtype == torch.float32 for p in model.parameters() if p.grad is not None)
    fp32 = _perturbed(GINModel(ARCH, 3)).train()
    assert 0 < abs(loss.item() - fp32.loss(x, u).item()) < 1e-2 * abs(loss.item())


def test_bf16_training_loss_agrees_with_fp32():
    """A short run (6 epochs of 5 steps) from the same initialisation and batches: the loss curves agree
    within 0.2% at every epoch (measured: 1e-4), and so do the fp32 evaluation losses of the trained models."""
    x, u = _images(240)
    config = TrainConfig(epochs=6, batch_size=48, lr=3e-3, warmup_steps=0, threads=1, device="cpu")
    curves, final = {}, {}
    for prec in ("fp32", "bf16"):
        model = GINModel(ARCH, 3, precision=prec)
        curves[prec] = torch.tensor(train(model, x, u, config, progress=False)["epoch_loss"])
        final[prec] = evaluate_loss(model, x, u)
    assert curves["fp32"][-1] < curves["fp32"][0] - 0.05  # it learns
    torch.testing.assert_close(curves["bf16"], curves["fp32"], rtol=2e-3, atol=0)
    assert abs(final["bf16"] - final["fp32"]) < 2e-3 * abs(final["fp32"])


def test_save_and_load_restore_precision(tmp_path):
    model = _perturbed(GINModel(ARCH, 3, precision="bf16"))
    assert set(model.state_dict()) == set(GINModel(ARCH, 3).state_dict())  # same keys in both precisions
    model.save(tmp_path / "model.pt")
    loaded = load_model(tmp_path / "model.pt")
    assert loaded.precision == "bf16" and loaded.describe()["precision"] == "bf16"
    assert all(isinstance(net, AutocastSequential) for net in _subnets(loaded))
    x, _ = _images(16)
    with torch.no_grad():
        torch.testing.assert_close(loaded.transform(x), model.eval().transform(x), rtol=0, atol=0)


def test_images_command_option_reaches_the_model():
    """`ginmi images --precision` (default auto) builds and trains the model in that precision."""
    from ginmi.app.images import ImageModelConfig, ImagesConfig, ImageTrainConfig, train_image_model

    parser = argparse.ArgumentParser()
    add_arguments(parser, ImagesConfig)
    assert from_namespace(ImagesConfig, parser.parse_args([])).model.precision == "auto"
    assert from_namespace(ImagesConfig, parser.parse_args(["--precision", "bf16"])).model.precision == "bf16"
    x, u = _images(96)
    small = {"conv_widths": (4, 8), "n_conv_blocks": 1, "fc_width": 16, "n_fc_blocks": 1}
    model, history, _ = train_image_model(
        x.numpy(),
        u.numpy(),
        [0, 1, 2],
        ImageModelConfig(**small, precision="bf16"),
        ImageTrainConfig(epochs=1, batch_size=48, threads=1),
        progress=False,
    )
    assert model.precision == "bf16" and len(history["epoch_loss"]) == 1
