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


def freia_steps(model: GINModel, x: torch.Tensor, u: torch.Tensor, batch: int, seconds: float) -> float:
    """Steps/s of FrEIA's net in a plain loop: index a batch, noise, fwd, bwd, Adam."""
    net = _freia_for(model).to(DEVICE)
    mu = nn.Parameter(torch.zeros(model.n_classes, model.dim, device=DEVICE))
    ls = nn.Parameter(torch.zeros(model.n_classes, model.dim, device=DEVICE))
    opt = torch.optim.Adam([*net.parameters(), mu, ls], lr=1e-3)
    x, u = x.to(DEVICE), u.to(DEVICE)
    n, steps = len(x), 0
    for warm in (True, False):
        _sync()
        t0 = time.perf_counter()
        while True:
            idx = torch.randint(0, n, (batch,), device=DEVICE)
            xb = x[idx] + 1e-2 * torch.randn(batch, *x.shape[1:], device=DEVICE)
            z, _ = net(xb)
            loss = _nll(z, u[idx], mu, ls)
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
            if warm and steps >= 3:
                steps = 0
                break
            if not warm and steps >= 5 and time.perf_counter() - t0 > seconds:
                _sync()
                return steps / (time.perf_counter() - t0)


def reference_loop(model: GINModel, x: torch.Tensor, u: torch.Tensor, batch: int, epochs: int) -> float:
    """The GIN reference training loop (FrEIA + DataLoader + MultiStepLR); returns seconds."""
    net = _freia_for(model).to(DEVICE)
    mu = nn.Parameter(torch.zeros(model.n_classes, model.dim, device=DEVICE))
    ls = nn.Parameter(torch.zeros(model.n_classes, model.dim, device=DEVICE))
    opt = torch.optim.Adam([*net.parameters(), mu, ls], lr=1e-2)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [epochs // 2, int(0.8 * epochs)], 0.1)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, u), batch_size=batch, shuffle=True,
                                         drop_last=True)
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
    _sync()
    return time.perf_counter() - t0


def ginmi_steps(model: GINModel, x: torch.Tensor, u: torch.Tensor, batch: int, epochs: int, fused: bool = True) -> float:
    """Steps/s of ginmi's trainer in steady state (best epoch; everything the trainer does included)."""
    h = train(model, x, u, TrainConfig(epochs=epochs, batch_size=batch, device=str(DEVICE), fused=fused),
              progress=False)
    steps = math.ceil(len(x) / batch)
    return steps / min(h["epoch_seconds"])


def _vector_data(n: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, dim, generator=g), torch.randint(0, 5, (n,), generator=g)


def bench_10d(rounds: int) -> None:
    x, u = _vector_data(24_000, 10)  # 100 steps per epoch
    rows = {"ginmi": [], "ginmi --no-fused (autograd)": [], "FrEIA (plain loop)": [],
            "reference loop (FrEIA + DataLoader)": []}
    for _ in range(rounds):
        model = GINModel({"name": "vector", "dim": 10, "seed": 0}, 5)
        rows["ginmi"].append(ginmi_steps(model, x, u, 240, 3))
        model = GINModel({"name": "vector", "dim": 10, "seed": 0}, 5)
        rows["ginmi --no-fused (autograd)"].append(ginmi_steps(model, x, u, 240, 3, fused=False))
        rows["FrEIA (plain loop)"].append(freia_steps(GINModel({"name": "vector", "dim": 10}, 5), x, u, 240, 2.0))
        ref = GINModel({"name": "vector", "dim": 10}, 5)
        rows["reference loop (FrEIA + DataLoader)"].append(100 * 2 / reference_loop(ref, x, u, 240, 2))
    base = max(rows["FrEIA (plain loop)"])
    print("\n### 10-D network, batch 240, fwd+bwd+Adam (steps/s, best of %d rounds)\n" % rounds)
    print("| implementation | steps/s | vs FrEIA |\n|---|---|---|")
    for name, vals in rows.items():
        print(f"| {name} | {max(vals):.0f} | {max(vals) / base:.2f}x |")


def bench_image(rounds: int, batch: int = 240) -> None:
    """Samples/s of the image network's step: ginmi's trainer in fp32 and in bf16 (``precision``) vs FrEIA."""
    x = torch.rand(2400, 1, 28, 28)
    u = torch.randint(0, 10, (2400,))
    arch = {"name": "image", "input_shape": (1, 28, 28), "seed": 0}
    rows: dict[str, list[float]] = {"ginmi fp32": [], "ginmi bf16": [], "FrEIA (plain loop, fp32)": []}
    for _ in range(rounds):
        for precision in ("fp32", "bf16"):  # best epoch: the first one warms up
            rows[f"ginmi {precision}"].append(ginmi_steps(GINModel(arch, 10, precision=precision), x, u, batch, 3) * batch)
        rows["FrEIA (plain loop, fp32)"].append(freia_steps(GINModel(arch, 10), x, u, batch, 8.0) * batch)
    base = max(rows["FrEIA (plain loop, fp32)"])
    print(f"\n### Image network (784-dim EMNIST net), batch {batch}, fwd+bwd+Adam (samples/s, best of {rounds})\n")
    print("| implementation | samples/s | vs FrEIA |\n|---|---|---|")
    for name, vals in rows.items():
        print(f"| {name} | {max(vals):.0f} | {max(vals) / base:.2f}x |")
    print(f"\n(all rounds: " + "; ".join(f"{k} {', '.join(f'{v:.0f}' for v in vals)}" for k, vals in rows.items()) + ")")


def _fashion_or_random(n: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    """The first ``n`` Fashion-MNIST training images when installed, else uniform noise images."""
    from ginmi.data.images import load_split

    try:
        x, u = load_split("fashion-mnist", "train")
        return torch.from_numpy(x[:n]), torch.from_numpy(u[:n]).long(), f"{n} Fashion-MNIST training images"
    except (FileNotFoundError, ValueError):
        g = torch.Generator().manual_seed(0)
        return (torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g),
                f"{n} random images (Fashion-MNIST not found)")


def bench_images_loop(rounds: int, n: int = 4800, epochs: int = 2) -> None:
    """Samples/s of the whole training of ``ginmi images`` (:func:`ginmi.app.images.train_image_model`:
    class statistics from the data, ``train`` with a checkpoint folder, the final statistics) at the
    image defaults, fp32 and bf16, vs the GIN reference loop (FrEIA + DataLoader + MultiStepLR) on
    the same images, epochs and batch; and the projected 100 epochs of 60,000 images."""
    from ginmi.app.images import ImageModelConfig, ImageTrainConfig, train_image_model

    x, u, what = _fashion_or_random(n)
    rows: dict[str, list[float]] = {"`ginmi images` training, fp32": [], "`ginmi images` training, bf16": [],
                                    "reference loop (FrEIA + DataLoader), fp32": []}
    for _ in range(rounds):
        for precision in ("fp32", "bf16"):
            with tempfile.TemporaryDirectory() as out:
                config = ImageTrainConfig(epochs=epochs, device=str(DEVICE))
                _, _, seconds = train_image_model(x.numpy(), u.numpy(), list(range(10)),
                                                  ImageModelConfig(precision=precision), config, progress=False,
                                                  checkpoint_dir=out)
            rows[f"`ginmi images` training, {precision}"].append(n * epochs / seconds)
        ref = GINModel({"name": "image", "input_shape": (1, 28, 28), "seed": 0}, 10)
        rows["reference loop (FrEIA + DataLoader), fp32"].append(n * epochs / reference_loop(ref, x, u, 240, epochs))
    base = max(rows["reference loop (FrEIA + DataLoader), fp32"])
    print(f"\n### Whole image training loop ({what}, {epochs} epochs, batch 240; samples/s, best of {rounds})\n")
    print("| implementation | samples/s | vs reference loop | 100 epochs of 60,000 images |\n|---|---|---|---|")
    for name, vals in rows.items():
        print(f"| {name} | {max(vals):.0f} | {max(vals) / base:.2f}x | {6e6 / max(vals) / 60:.0f} min |")
    print(f"\n(all rounds: " + "; ".join(f"{k} {', '.join(f'{v:.0f}' for v in vals)}" for k, vals in rows.items()) + ")")


def bench_synthetic(rounds: int, epochs: int = 60) -> None:
    """Wall time of a whole ``ginmi synthetic`` run vs the reference loop's training alone (interleaved, best of each)."""
    x, u = _vector_data(10_000, 10)
    walls, refs = [], []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "ginmi", "synthetic", "--out", out, "--no-progress",
                            "--epochs", str(epochs)], check=True, capture_output=True)
            walls.append(time.perf_counter() - t0)
        refs.append(reference_loop(GINModel({"name": "vector", "dim": 10}, 5), x, u, 240, epochs))
    wall, ref = min(walls), min(refs)
    print(f"\n### Whole `ginmi synthetic` run (10,000 samples, {epochs} epochs, batch 240; best of {rounds})\n")
    print("| what | seconds |\n|---|---|")
    print(f"| `ginmi synthetic` (process start, data, training, MI, tasks, figures, report) | {wall:.1f} |")
    print(f"| reference training loop only (FrEIA + DataLoader), same epochs and batch | {ref:.1f} |")
    print(f"| ratio | {wall / ref:.2f} |")
    print(f"\n(all rounds: ginmi {', '.join(f'{w:.1f}' for w in walls)}; reference {', '.join(f'{r:.1f}' for r in refs)})")


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
            subprocess.run([sys.executable, "-m", "ginmi", "synthetic", "--variants", "main", "--trials", str(n),
                            "--out", out, "--no-progress"], check=True, capture_output=True)
            study[n] = time.perf_counter() - t0
    print("\n| `ginmi synthetic --variants main --trials N` (whole study) | seconds | vs one trial |\n|---|---|---|")
    for n in counts:
        print(f"| N = {n} | {study[n]:.1f} | {study[n] / study[counts[0]]:.2f}x |")


def bench_scaling() -> None:
    print("\n### ginmi step time vs batch size and data dimension (ms per step, 8 blocks, width = max(10, dim); "
          "fused step / --no-fused autograd)\n")
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
        out = subprocess.run([sys.executable, "-c", _MEMORY.replace("BATCH", str(batch))], check=True,
                             capture_output=True, text=True).stdout.split()
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
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}, python {platform.python_version()}, device {DEVICE}{gpu}, "
          f"native bf16: {native_bf16(DEVICE)}, load average {os.getloadavg()[0]:.1f}")
    for what in args.what:
        {"10d": lambda: bench_10d(args.rounds), "image": lambda: bench_image(args.rounds),
         "loop": lambda: bench_images_loop(args.rounds),
         "synthetic": lambda: bench_synthetic(args.rounds), "trials": lambda: bench_trials(args.rounds), "scaling": bench_scaling,
         "memory": bench_memory}[what]()
        sys.stdout.flush()
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
