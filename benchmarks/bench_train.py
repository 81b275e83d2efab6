"""Training throughput of ginmi against FrEIA (the GIN reference's library), same machine, same run.

Measures, interleaving the contenders round by round (the best round counts, so background load
hurts every contender alike):

- ``10d``: optimizer steps/s (forward + backward + Adam, batch 240) of the paper's 10-D network:
  ginmi's trainer (``ginmi.training.train``, data shuffling, noise, clipping and schedule included)
  vs FrEIA's GraphINN in a plain loop vs the GIN reference training loop (FrEIA + DataLoader over
  a TensorDataset + MultiStepLR, as in the reference code);
- ``image``: samples/s of the 784-dim EMNIST network (ginmi's ``image`` architecture in fp32 and
  with bf16 subnets, ``GINModel(precision=...)``, vs the same net built with FrEIA in fp32, as the
  reference's ``construct_net_emnist``);
- ``loop``: samples/s of the whole training of ``ginmi images`` (``train_image_model``: statistics,
  trainer, checkpoints) on Fashion-MNIST images in fp32 and bf16 vs the GIN reference loop, and the
  projected time of 100 epochs of 60,000 images;
- ``profile``: where the image network's bf16 step spends its time (forward, backward, Adam, the
  subnets; each convolution shape's passes) and the evaluation rate vs batch size (not in the default set);
- ``compiled``: the image step eager vs ``torch.compile`` (on a GPU ``reduce-overhead``: CUDA
  graphs), fp32 (TF32 on a GPU) and bf16, batch 240 and 960 (not in the default set);
- ``synthetic``: wall time of a whole ``ginmi synthetic`` run vs the reference loop's training
  time for the same samples, epochs and batch;
- ``trials``: time per epoch of N models trained together (``train_many``) vs one;
- ``scaling``: ginmi step time vs batch size and data dimension;
- ``memory``: peak RSS of computing the latents of 40,000 784-dim images in batches.

Usage: ``python benchmarks/bench_train.py [10d image loop synthetic trials scaling memory] [--rounds R]``;
prints Markdown tables (FrEIA needed for 10d/image/synthetic: ``pip install freia``).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import torch
from torch import nn

from ginmi.model import GINModel
from ginmi.precision import native_bf16
from ginmi.training import TrainConfig, train, train_many


def freia_net(blocks: nn.Module, input_shape: tuple[int, ...], subnets: dict[int, nn.Module]) -> nn.Module:
    """FrEIA GraphINN with the same blocks (couplings, permutations, downsampling, flatten) as ``blocks``."""
    import FrEIA.framework as ff
    import FrEIA.modules as fm

    from ginmi.flows import Flatten, GINCoupling, IRevNetDownsampling, Permutation

    nodes = [ff.InputNode(*input_shape, name="in")]
    for i, block in enumerate(blocks.blocks):
        if isinstance(block, GINCoupling):
            first = subnets[i]
            nodes.append(ff.Node(nodes[-1], fm.GINCouplingBlock, {"subnet_constructor": first, "clamp": block.clamp}))
        elif isinstance(block, Permutation):
            nodes.append(ff.Node(nodes[-1], fm.PermuteRandom, {"seed": i}))
        elif isinstance(block, IRevNetDownsampling):
            nodes.append(ff.Node(nodes[-1], fm.IRevNetDownsampling, {}))
        elif isinstance(block, Flatten):
            nodes.append(ff.Node(nodes[-1], fm.Flatten, {}))
    nodes.append(ff.OutputNode(nodes[-1]))
    return ff.GraphINN(nodes)


def _subnet_like(block: nn.Module) -> object:
    """A subnet constructor that deep-copies ginmi's subnets (so both nets start identical)."""
    import copy

    pending = [block.subnet1, block.subnet2]
    return lambda c_in, c_out: copy.deepcopy(pending.pop(0))


def _freia_for(model: GINModel) -> nn.Module:
    subnets = {i: _subnet_like(b) for i, b in enumerate(model.flow.blocks) if hasattr(b, "subnet1")}
    return freia_net(model.flow, model.input_shape, subnets)


def _nll(z: torch.Tensor, u: torch.Tensor, mu: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
    z = z.reshape(len(z), -1)
    ls = log_sigma[u]
    return (0.5 * (z - mu[u]) ** 2 * torch.exp(-2 * ls) + ls).mean()


DEVICE = torch.device("cpu")  # --device


def _sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def _freia_step(model: GINModel, x: torch.Tensor, u: torch.Tensor, batch: int) -> Callable[[], None]:
    """One step of FrEIA's net (same architecture and weights as ``model``) in a plain loop: index a batch,
    noise, forward, loss, backward, Adam."""
    net = _freia_for(model).to(DEVICE)
    mu = nn.Parameter(torch.zeros(model.n_classes, model.dim, device=DEVICE))
    ls = nn.Parameter(torch.zeros(model.n_classes, model.dim, device=DEVICE))
    opt = torch.optim.Adam([*net.parameters(), mu, ls], lr=1e-3)
    x, u = x.to(DEVICE), u.to(DEVICE)

    def step() -> None:
        idx = torch.randint(0, len(x), (batch,), device=DEVICE)
        z, _ = net(x[idx] + 1e-2 * torch.randn(batch, *x.shape[1:], device=DEVICE))
        loss = _nll(z, u[idx], mu, ls)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def freia_steps(model: GINModel, x: torch.Tensor, u: torch.Tensor, batch: int, seconds: float) -> float:
    """Steps/s of FrEIA's net in a plain loop (:func:`_freia_step`)."""
    step = _freia_step(model, x, u, batch)
    steps = 0
    for warm in (True, False):
        _sync()
        t0 = time.perf_counter()
        while True:
            step()
            steps += 1
            if warm and steps >= 3:
                steps = 0
                break
            if not warm and steps >= 5 and time.perf_counter() - t0 > seconds:
                _sync()
                return steps / (time.perf_counter() - t0)


def reference_loop(
    model: GINModel,
    x: torch.Tensor,
    u: torch.Tensor,
    batch: int,
    epochs: int,
    on_epoch: Callable[[], None] | None = None,
) -> float:
    """The GIN reference training loop (FrEIA + DataLoader + MultiStepLR); returns seconds.
    ``on_epoch()`` is called after every epoch."""
    net = _freia_for(model).to(DEVICE)
    mu = nn.Parameter(torch.zeros(model.n_classes, model.dim, device=DEVICE))
    ls = nn.Parameter(torch.zeros(model.n_classes, model.dim, device=DEVICE))
    opt = torch.optim.Adam([*net.parameters(), mu, ls], lr=1e-2)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [epochs // 2, int(0.8 * epochs)], 0.1)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, u), batch_size=batch, shuffle=True, drop_last=True
    )
    t0 = time.perf_counter()
    for _ in range(epochs):
        for xb, ub in loader:
            xb, ub = xb.to(DEVICE), ub.to(DEVICE)
            xb = xb + 1e-2 * torch.randn_like(xb)
            z, _ = net(xb)
            loss = _nll(z, ub, mu, ls)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        if on_epoch is not None:
            _sync()
            on_epoch()
    _sync()
    return time.perf_counter() - t0


def ginmi_steps(
    model: GINModel, x: torch.Tensor, u: torch.Tensor, batch: int, epochs: int, fused: bool = True
) -> float:
    """Steps/s of ginmi's trainer in steady state (best epoch; everything the trainer does included)."""
    h = train(
        model, x, u, TrainConfig(epochs=epochs, batch_size=batch, device=str(DEVICE), fused=fused), progress=False
    )
    steps = math.ceil(len(x) / batch)
    return steps / min(h["epoch_seconds"])


def _vector_data(n: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, dim, generator=g), torch.randint(0, 5, (n,), generator=g)


def bench_10d(rounds: int) -> None:
    x, u = _vector_data(24_000, 10)  # 100 steps per epoch
    rows = {
        "ginmi": [],
        "ginmi --no-fused (autograd)": [],
        "FrEIA (plain loop)": [],
        "reference loop (FrEIA + DataLoader)": [],
    }
    for _ in range(rounds):
        model = GINModel({"name": "vector", "dim": 10, "seed": 0}, 5)
        rows["ginmi"].append(ginmi_steps(model, x, u, 240, 3))
        model = GINModel({"name": "vector", "dim": 10, "seed": 0}, 5)
        rows["ginmi --no-fused (autograd)"].append(ginmi_steps(model, x, u, 240, 3, fused=False))
        rows["FrEIA (plain loop)"].append(freia_steps(GINModel({"name": "vector", "dim": 10}, 5), x, u, 240, 2.0))
        ref = GINModel({"name": "vector", "dim": 10}, 5)
        rows["reference loop (FrEIA + DataLoader)"].append(100 * 2 / reference_loop(ref, x, u, 240, 2))
    base = max(rows["FrEIA (plain loop)"])
    print(f"\n### 10-D network, batch 240, fwd+bwd+Adam (steps/s, best of {rounds} rounds)\n")
    print("| implementation | steps/s | vs FrEIA |\n|---|---|---|")
    for name, vals in rows.items():
        print(f"| {name} | {max(vals):.0f} | {max(vals) / base:.2f}x |")


def _rates(run: Callable[[], int]) -> tuple[float, float]:
    """Samples per wall second and per CPU second of this process for ``run()``, which returns the
    samples it processed. On a machine shared with other jobs the CPU rate is the steadier one (time
    the process waits for a core is not counted); with one torch thread it is the compute speed."""
    _sync()
    wall, cpu = time.perf_counter(), time.process_time()
    samples = run()
    _sync()
    return samples / (time.perf_counter() - wall), samples / (time.process_time() - cpu)


def freia_samples(model: GINModel, x: torch.Tensor, u: torch.Tensor, batch: int, steps: int) -> int:
    """``steps`` steps of FrEIA's net in a plain loop (:func:`_freia_step`); returns the samples."""
    step = _freia_step(model, x, u, batch)
    for _ in range(steps):
        step()
    return steps * batch


def _table(
    title: str,
    rows: dict[str, list[tuple[float, float]]],
    base: str,
    extra: Callable[[float], str] | None = None,
    extra_head: str = "",
) -> None:
    """Markdown table of the best wall and CPU rate of each row and their ratios to row ``base``."""
    best = {k: (max(w for w, _ in v), max(c for _, c in v)) for k, v in rows.items()}
    bw, bc = best[base]
    print(f"\n### {title}\n")
    print(
        "| implementation | samples/s (wall) | ratio (wall) | samples per CPU-s | ratio (CPU) |"
        + (f" {extra_head} |" if extra else "")
        + "\n|---|---|---|---|---|"
        + ("---|" if extra else "")
    )
    for name, (w, c) in best.items():
        print(f"| {name} | {w:.0f} | {w / bw:.2f}x | {c:.0f} | {c / bc:.2f}x |" + (f" {extra(c)} |" if extra else ""))
    print(
        "\n(all rounds, wall/CPU: "
        + "; ".join(f"{k} " + ", ".join(f"{w:.0f}/{c:.0f}" for w, c in v) for k, v in rows.items())
        + ")"
    )


def bench_image(rounds: int, batch: int = 240, epochs: int = 3) -> None:
    """Samples/s of the image network's step: ginmi's trainer in fp32 and in bf16 (``precision``) vs FrEIA.

    Each contender processes the same samples' count (``epochs`` epochs of 2,400 images, warm-up
    included), interleaved round by round; the best round counts."""
    x = torch.rand(2400, 1, 28, 28)
    u = torch.randint(0, 10, (2400,))
    arch = {"name": "image", "input_shape": (1, 28, 28), "seed": 0}
    steps = epochs * math.ceil(len(x) / batch)
    rows: dict[str, list[tuple[float, float]]] = {"ginmi fp32": [], "ginmi bf16": [], "FrEIA (plain loop, fp32)": []}

    def ginmi(precision: str) -> int:
        config = TrainConfig(epochs=epochs, batch_size=batch, device=str(DEVICE))
        train(GINModel(arch, 10, precision=precision), x, u, config, progress=False)
        return steps * batch

    for _ in range(rounds):
        for precision in ("fp32", "bf16"):
            rows[f"ginmi {precision}"].append(_rates(lambda p=precision: ginmi(p)))
        rows["FrEIA (plain loop, fp32)"].append(_rates(lambda: freia_samples(GINModel(arch, 10), x, u, batch, steps)))
    _table(
        f"Image network (784-dim EMNIST net), batch {batch}, fwd+bwd+Adam, {steps} steps (best of {rounds})",
        rows,
        "FrEIA (plain loop, fp32)",
    )


def _fashion_or_random(n: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    """The first ``n`` Fashion-MNIST training images when installed, else uniform noise images."""
    from ginmi.data.images import load_split

    try:
        x, u = load_split("fashion-mnist", "train")
        return torch.from_numpy(x[:n]), torch.from_numpy(u[:n]).long(), f"{n} Fashion-MNIST training images"
    except (FileNotFoundError, ValueError):
        g = torch.Generator().manual_seed(0)
        return (
            torch.rand(n, 1, 28, 28, generator=g),
            torch.randint(0, 10, (n,), generator=g),
            f"{n} random images (Fashion-MNIST not found)",
        )


def bench_images_loop(rounds: int, n: int = 2400, epochs: int = 4) -> None:
    """Samples/s of the whole training of ``ginmi images`` (:func:`ginmi.app.images.train_image_model`:
    class statistics from the data, ``train`` with a checkpoint folder (shuffling, noise, clipping,
    schedule, checks, checkpoints), the final statistics) at the image defaults, fp32 and bf16, vs the
    GIN reference loop (FrEIA + DataLoader + MultiStepLR) on the same images and batch.

    The rate is that of epochs 2 to ``epochs`` (the first one warms up); the fixed wall time per run
    outside them (ginmi: the two passes of the class statistics over the data, in fp32), scaled to
    60,000 images, is measured beside it, and both give the projected time of 100 epochs of 60,000
    images."""
    from ginmi.app.images import ImageModelConfig, ImageTrainConfig, train_image_model

    x, u, what = _fashion_or_random(n)
    ref_name = "reference loop (FrEIA + DataLoader), fp32"
    rows: dict[str, list[tuple[float, float]]] = {
        "`ginmi images` training, fp32": [],
        "`ginmi images` training, bf16": [],
        ref_name: [],
    }
    fixed: dict[str, list[float]] = {name: [] for name in rows}
    curves: dict[str, list[float]] = {}

    def steady(
        marks: list[tuple[float, float]], start: tuple[float, float], end: tuple[float, float]
    ) -> tuple[tuple[float, float], float]:
        """Rates over epochs 2..epochs and the wall seconds of the run outside them (its fixed cost)."""
        samples = n * (epochs - 1)
        wall, cpu = marks[-1][0] - marks[0][0], marks[-1][1] - marks[0][1]
        return (samples / wall, samples / cpu), end[0] - start[0] - wall * epochs / (epochs - 1)

    def clock() -> tuple[float, float]:
        return time.perf_counter(), time.process_time()

    for _ in range(rounds):
        for precision in ("fp32", "bf16"):
            marks: list[tuple[float, float]] = []
            start = clock()
            with tempfile.TemporaryDirectory() as out:
                _, history, _ = train_image_model(
                    x.numpy(),
                    u.numpy(),
                    list(range(10)),
                    ImageModelConfig(precision=precision),
                    ImageTrainConfig(epochs=epochs, device=str(DEVICE)),
                    progress=False,
                    checkpoint_dir=out,
                    on_epoch=lambda epoch, loss, marks=marks: marks.append(clock()),
                )
            curves[precision] = history["epoch_loss"]
            rate, cost = steady(marks, start, clock())
            rows[f"`ginmi images` training, {precision}"].append(rate)
            fixed[f"`ginmi images` training, {precision}"].append(cost)
        marks = []
        start = clock()
        reference_loop(
            GINModel({"name": "image", "input_shape": (1, 28, 28), "seed": 0}, 10),
            x,
            u,
            240,
            epochs,
            on_epoch=lambda marks=marks: marks.append(clock()),
        )
        rate, cost = steady(marks, start, clock())
        rows[ref_name].append(rate)
        fixed[ref_name].append(cost)

    def projection(name: str) -> str:
        wall_rate = max(w for w, _ in rows[name])
        cost = max(0.0, min(fixed[name])) / n * 60_000
        return f"{cost:.0f} s | {(6e6 / wall_rate + cost) / 60:.0f} min"

    best = {k: (max(w for w, _ in v), max(c for _, c in v)) for k, v in rows.items()}
    print(f"\n### Whole image training loop ({what}, batch 240, epochs 2-{epochs} of {epochs}; best of {rounds})\n")
    print(
        "| implementation | samples/s (wall) | ratio (wall) | samples per CPU-s | ratio (CPU) | fixed cost per run, "
        "60,000 images | 100 epochs x 60,000 images (wall) |\n|---|---|---|---|---|---|---|"
    )
    for name, (w, c) in best.items():
        print(
            f"| {name} | {w:.0f} | {w / best[ref_name][0]:.2f}x | {c:.0f} | {c / best[ref_name][1]:.2f}x | "
            f"{projection(name)} |"
        )
    print(
        "\n(all rounds, wall/CPU: "
        + "; ".join(f"{k} " + ", ".join(f"{w:.0f}/{c:.0f}" for w, c in v) for k, v in rows.items())
        + ")"
    )
    gap = max(abs(b - f) / abs(f) for f, b in zip(curves["fp32"], curves["bf16"]))
    print(
        "\nLoss per dim after each epoch (same initialisation, batches and noise): "
        + "; ".join(f"{p} " + ", ".join(f"{v:.4f}" for v in c) for p, c in curves.items())
        + f"; largest relative difference {gap:.1e}"
    )


def _image_step_rate(precision: str, batch: int, compile_mode: str | None, seconds: float) -> float:
    """Samples/s of a plain loop of the image network's step (``model.loss``, backward, fused Adam) on
    DEVICE, eager or ``torch.compile(mode=compile_mode)`` ("reduce-overhead" = CUDA graphs)."""
    model = GINModel({"name": "image", "input_shape": (1, 28, 28), "seed": 0}, 10, precision=precision)
    model.to(DEVICE).train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-4, fused=True)
    loss_fn = model.loss if compile_mode is None else torch.compile(model.loss, mode=compile_mode)
    x = torch.rand(batch, 1, 28, 28, device=DEVICE)
    u = torch.randint(0, 10, (batch,), device=DEVICE)

    def step() -> None:
        loss = loss_fn(x, u)
        opt.zero_grad(set_to_none=False)
        loss.backward()
        opt.step()

    for _ in range(5):  # warm-up (and compilation)
        step()
    _sync()
    t0, steps = time.perf_counter(), 0
    while steps < 10 or time.perf_counter() - t0 < seconds:
        step()
        steps += 1
        if steps % 10 == 0:
            _sync()
    _sync()
    return steps * batch / (time.perf_counter() - t0)


def bench_image_compiled(batches: tuple[int, ...] = (240, 960)) -> None:
    """The image step eager vs compiled, fp32 (TF32 allowed on a GPU) and bf16, at two batch sizes."""
    if DEVICE.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    modes = [None, "reduce-overhead"] if DEVICE.type == "cuda" else [None, "default"]
    print(f"\n### Image network step on {DEVICE}: eager vs torch.compile (samples/s; TF32 allowed on a GPU)\n")
    print(
        "| precision | compile | " + " | ".join(f"batch {b}" for b in batches) + " |\n|---|---|" + "---|" * len(batches)
    )
    for precision in ("fp32", "bf16"):
        for mode in modes:
            cells = []
            for batch in batches:
                t0 = time.perf_counter()
                try:
                    cells.append(f"{_image_step_rate(precision, batch, mode, 5.0):.0f}")
                except Exception as err:  # a failing variant is reported, the others still run
                    cells.append(f"failed: {type(err).__name__}")
                cells[-1] += f" ({time.perf_counter() - t0:.0f} s)"
            print(f"| {precision} | {mode or 'eager'} | " + " | ".join(cells) + " |", flush=True)
    print("\n(in brackets: wall seconds of the variant, compilation included)")


def _best_ms(fn: Callable[[], object], repeats: int = 20, rounds: int = 3) -> float:
    """Best over ``rounds`` of the mean wall milliseconds of ``fn`` over ``repeats`` calls (after a warm-up)."""
    for _ in range(3):
        fn()
    best = math.inf
    for _ in range(rounds):
        _sync()
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        _sync()
        best = min(best, (time.perf_counter() - t0) / repeats * 1e3)
    return best


def bench_profile(batch: int = 240) -> None:
    """Where the image network's bf16 step spends its time: forward / backward / Adam, the share of the
    coupling subnets, each convolution shape's forward, input-gradient and weight-gradient pass (bf16,
    channels-last, as the subnets run them), and the evaluation forward pass vs its batch size."""
    model = GINModel({"name": "image", "input_shape": (1, 28, 28), "seed": 0}, 10, precision="bf16")
    model.to(DEVICE).train()
    with torch.no_grad():  # trained-like weights: the zero last layers would make the couplings identities
        for p in model.flow.parameters():
            p.add_(0.01 * torch.randn_like(p))
    opt = torch.optim.Adam(model.parameters(), lr=3e-4, fused=True)
    x = torch.rand(batch, 1, 28, 28, device=DEVICE)
    u = torch.randint(0, 10, (batch,), device=DEVICE)
    parts = {
        "forward (loss)": lambda: model.loss(x, u),
        "forward + backward": lambda: model.loss(x, u).backward(),
        "Adam": opt.step,
    }
    ms = {k: _best_ms(f) for k, f in parts.items()}
    inputs: list[tuple[nn.Module, torch.Tensor]] = []
    subnets = [m for b in model.flow.blocks for m in (getattr(b, "subnet1", None), getattr(b, "subnet2", None)) if m]
    hooks = [m.register_forward_pre_hook(lambda mod, a: inputs.append((mod, a[0].detach()))) for m in subnets]
    model.loss(x, u)
    for h in hooks:
        h.remove()

    def subnets_fwd_bwd() -> None:
        for mod, a in inputs:
            out = mod(a.requires_grad_())
            out.backward(torch.ones_like(out))

    sub = _best_ms(subnets_fwd_bwd)
    step = ms["forward + backward"] + ms["Adam"]
    print(f"\n### Image network, bf16, batch {batch}, {torch.get_num_threads()} threads: where a step goes\n")
    print("| part | ms | share of a step |\n|---|---|---|")
    for name, value in [*ms.items(), (f"the {len(inputs)} coupling subnets, forward + backward", sub)]:
        print(f"| {name} | {value:.1f} | {value / step:.0%} |")
    conv_backward = torch.ops.aten.convolution_backward
    shapes = _conv_shapes(inputs)
    print(f"\n### Convolutions, bf16 channels-last, batch {batch} (ms per call, best of 3)\n")
    print("| in -> out channels, size | forward | input gradient | weight + bias gradient |\n|---|---|---|---|")
    for c_in, c_out, size in shapes:
        a = torch.randn(batch, c_in, size, size, device=DEVICE).to(torch.bfloat16, memory_format=torch.channels_last)
        w = torch.randn(c_out, c_in, 3, 3, device=DEVICE, dtype=torch.bfloat16)
        g = torch.randn(batch, c_out, size, size, device=DEVICE).to(torch.bfloat16, memory_format=torch.channels_last)
        args = (g, a, w, [c_out], [1, 1], [1, 1], [1, 1], False, [0, 0], 1)
        cells = [
            _best_ms(lambda a=a, w=w: torch.nn.functional.conv2d(a, w, padding=1)),
            _best_ms(lambda args=args: conv_backward(*args, [True, False, False])),
            _best_ms(lambda args=args: conv_backward(*args, [False, True, True])),
        ]
        print(f"| {c_in} -> {c_out}, {size}x{size} | " + " | ".join(f"{c:.2f}" for c in cells) + " |")
    model.eval()
    images = torch.rand(4000, 1, 28, 28, device=DEVICE)
    print("\n### Latents in eval mode (fp32), 4,000 images\n\n| batch | images/s |\n|---|---|")
    with torch.inference_mode():
        for size in (250, 1000, 4000):
            rate = 4000 / _best_ms(lambda size=size: [model.transform(b) for b in images.split(size)], 1) * 1e3
            print(f"| {size} | {rate:.0f} |")


def _conv_shapes(inputs: list[tuple[nn.Module, torch.Tensor]]) -> list[tuple[int, int, int]]:
    """``(in_channels, out_channels, image size)`` of every distinct convolution of the recorded subnets."""
    shapes = set()
    for mod, a in inputs:
        for layer in mod:
            if isinstance(layer, nn.Conv2d):
                shapes.add((layer.in_channels, layer.out_channels, a.shape[-1]))
    return sorted(shapes)


def bench_synthetic(rounds: int, epochs: int = 60) -> None:
    """Wall time of a whole ``ginmi synthetic`` run vs the reference loop's training alone (interleaved, best of each)."""
    x, u = _vector_data(10_000, 10)
    walls, refs = [], []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "ginmi", "synthetic", "--out", out, "--no-progress", "--epochs", str(epochs)],
                check=True,
                capture_output=True,
            )
            walls.append(time.perf_counter() - t0)
        refs.append(reference_loop(GINModel({"name": "vector", "dim": 10}, 5), x, u, 240, epochs))
    wall, ref = min(walls), min(refs)
    print(f"\n### Whole `ginmi synthetic` run (10,000 samples, {epochs} epochs, batch 240; best of {rounds})\n")
    print("| what | seconds |\n|---|---|")
    print(f"| `ginmi synthetic` (process start, data, training, MI, tasks, figures, report) | {wall:.1f} |")
    print(f"| reference training loop only (FrEIA + DataLoader), same epochs and batch | {ref:.1f} |")
    print(f"| ratio | {wall / ref:.2f} |")
    print(
        f"\n(all rounds: ginmi {', '.join(f'{w:.1f}' for w in walls)}; reference {', '.join(f'{r:.1f}' for r in refs)})"
    )


def bench_trials(rounds: int, counts: tuple[int, ...] = (1, 10), epochs: int = 4) -> None:
    """Wall time per epoch of N models trained at once (``train_many``, what ``--trials`` uses) vs one (``train``)."""
    x, u = _vector_data(10_000, 10)
    config = TrainConfig(epochs=epochs, device="cpu")
    best = {}
    for _ in range(rounds):
        for n in counts:
            models = [GINModel({"name": "vector", "dim": 10, "seed": s}, 5) for s in range(n)]
            t0 = time.perf_counter()
            if n == 1:
                train(models[0], x, u, config, progress=False)
            else:
                train_many(models, [x] * n, [u] * n, config, progress=False)
            best[n] = min(best.get(n, math.inf), (time.perf_counter() - t0) / epochs)
    print("\n### Trials together (10-D study, 10,000 samples, batch 240; wall seconds per epoch)\n")
    print("| models | s/epoch | vs one model |\n|---|---|---|")
    for n in counts:
        print(f"| {n} {'(train)' if n == 1 else '(train_many)'} | {best[n]:.3f} | {best[n] / best[1]:.2f}x |")
    study = {}
    for n in counts:  # the whole study: data, training, MI, tasks, figures, report of every trial
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "ginmi",
                    "synthetic",
                    "--variants",
                    "main",
                    "--trials",
                    str(n),
                    "--out",
                    out,
                    "--no-progress",
                ],
                check=True,
                capture_output=True,
            )
            study[n] = time.perf_counter() - t0
    print("\n| `ginmi synthetic --variants main --trials N` (whole study) | seconds | vs one trial |\n|---|---|---|")
    for n in counts:
        print(f"| N = {n} | {study[n]:.1f} | {study[n] / study[counts[0]]:.2f}x |")


def bench_scaling() -> None:
    print(
        "\n### ginmi step time vs batch size and data dimension (ms per step, 8 blocks, width = max(10, dim); "
        "fused step / --no-fused autograd)\n"
    )
    print("| dim \\ batch | 60 | 240 | 1000 | 4000 |\n|---|---|---|---|---|")
    for dim in (10, 40, 160):
        cells = []
        for batch in (60, 240, 1000, 4000):
            x, u = _vector_data(max(24_000 if dim <= 40 else 6_000, 5 * batch), dim)
            times = []
            for fused in (True, False):
                model = GINModel({"name": "vector", "dim": dim, "width": max(10, dim)}, 5)
                times.append(1000 / ginmi_steps(model, x, u, batch, 2, fused=fused))
            cells.append(f"{times[0]:.2f} / {times[1]:.2f}")
        print(f"| {dim} (width {max(10, dim)}) | " + " | ".join(cells) + " |", flush=True)


_MEMORY = """
import resource, torch
from ginmi.model import GINModel
from ginmi.vector import compute_latents
model = GINModel({"name": "image", "input_shape": (1, 28, 28)}, 10).eval()
x = torch.rand(40_000, 1, 28, 28)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
w = compute_latents(model, x, batch_size=BATCH)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(before / 1024, after / 1024, w.shape)
"""


def bench_memory() -> None:
    print("\n### Peak memory, latents of 40,000 images (784-dim network), batched\n")
    print("| batch | RSS before (MiB) | peak RSS (MiB) | data (MiB) |\n|---|---|---|---|")
    for batch in (1024, 4096):
        out = subprocess.run(
            [sys.executable, "-c", _MEMORY.replace("BATCH", str(batch))], check=True, capture_output=True, text=True
        ).stdout.split()
        print(f"| {batch} | {float(out[0]):.0f} | {float(out[1]):.0f} | {40_000 * 784 * 4 / 2**20:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", nargs="*", default=["10d", "image", "loop", "synthetic", "trials", "scaling", "memory"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--device", default="cpu", help="device of the 10d/image contenders (cpu, cuda)")
    args = parser.parse_args()
    global DEVICE
    DEVICE = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    gpu = f", {torch.cuda.get_device_name(DEVICE)}" if DEVICE.type == "cuda" else ""
    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, python {platform.python_version()}, device {DEVICE}{gpu}, "
        f"native bf16: {native_bf16(DEVICE)}, load average {os.getloadavg()[0]:.1f}"
    )
    for what in args.what:
        {
            "10d": lambda: bench_10d(args.rounds),
            "image": lambda: bench_image(args.rounds),
            "loop": lambda: bench_images_loop(args.rounds),
            "compiled": bench_image_compiled,
            "profile": bench_profile,
            "synthetic": lambda: bench_synthetic(args.rounds),
            "trials": lambda: bench_trials(args.rounds),
            "scaling": bench_scaling,
            "memory": bench_memory,
        }[what]()
        sys.stdout.flush()
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
