"""``ginmi fit`` and ``ginmi transform``: the pipeline on a user's own data files."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ginmi.app.common import environment, make_run_dir, release_run_dir, stage, write_run_config
from ginmi.app.images import load_image_file
from ginmi.app.logging_utils import LogConfig, MetricsLogger
from ginmi.app.report import write_report
from ginmi.app.results import (
    RESULTS,
    BaselineRecovery,
    FitAccuracy,
    FitAuroc,
    FitDataInfo,
    FitResults,
    FitTiming,
    Mcc,
    Recovery,
    RocCurves,
    ScoredCriterion,
    Training,
    TransformResult,
    ValueAdded,
)
from ginmi.config import flatten, option
from ginmi.data.files import load_table, match_columns
from ginmi.io import atomic_open, atomic_write_json
from ginmi.mi import mutual_information
from ginmi.model import load_model
from ginmi.selection import SelectionConfig, label_entropy, score_criteria
from ginmi.tasks.classification import PRIORS, accuracy_vs_k
from ginmi.tasks.identifiability import abs_correlation, criteria_recovery, matching, mcc_scores
from ginmi.tasks.ood import auroc_vs_k, log_density, roc
from ginmi.tasks.recovery_baselines import baseline_recovery, value_added
from ginmi.training import TrainConfig, training_device
from ginmi.vector import VectorModelConfig, check_features, compute_latents, encode_labels, train_vector_model

__all__ = ["FitConfig", "run_fit", "TransformConfig", "run_transform", "write_figures"]


@dataclass
class FitConfig:
    """Options of ``ginmi fit DATA``."""

    data: str = option(
        "",
        "the data file: .npz (arrays x, u) or .csv (a header row; comma-, semicolon- or tab-separated)",
        cli=False,
    )
    label_column: str = option("label", "name of the label column of a CSV file")
    test_data: str | None = option(
        None, "labelled held-out file for classification vs k (default: the training data, i.e. training accuracy)"
    )
    ood_data: str | None = option(None, "file of outliers (features only) for OOD detection: AUROC vs k")
    n_informative: int | None = option(
        None,
        "with true latents in the .npz (array latent): its first N columns are the informative ones "
        "(default: the columns whose I(latent_i; u) is at least --min-effect of H(u))",
    )
    prior: str = option("empirical", "class prior p(u) of the Bayes classifier and the OOD density", choices=PRIORS)
    report: bool = option(True, "write report.html into the run folder")
    out: str | None = option(None, "run folder (default runs/fit-<timestamp>)")
    progress: bool = option(True, "show progress bars")
    model: VectorModelConfig = field(default_factory=VectorModelConfig, metadata={"help": "model"})
    train: TrainConfig = field(default_factory=TrainConfig, metadata={"help": "training"})
    selection: SelectionConfig = field(default_factory=SelectionConfig, metadata={"help": "selection"})
    log: LogConfig = field(default_factory=LogConfig, metadata={"help": "experiment logs"})

    def __post_init__(self) -> None:
        if self.n_informative is not None and self.n_informative < 1:
            raise ValueError(f"`n_informative` must be >= 1, got {self.n_informative}")


def _features_like(
    path: str, n_features: int, names: list[str] | None, label_column: str, *, labels: bool
) -> tuple[np.ndarray, Any]:
    """Features (and labels) of an evaluation file: its columns matched by name to the training data's
    (CSV files), or checked against their width."""
    table = load_table(path, label_column=label_column, require_labels=labels)
    x = check_features(match_columns(table, names, path, "the training data"), f"features of {path}")
    if x.shape[1] != n_features:
        raise ValueError(
            f"{path} has {x.shape[1]} features but the training data have {n_features}; use the same columns"
        )
    return x, table.u


def _evaluation_files(
    config: FitConfig, n_features: int, names: list[str] | None, classes: list[Any]
) -> dict[str, Any]:
    """The ``--test-data`` and ``--ood-data`` files, read and checked before anything is trained or written."""
    files: dict[str, Any] = {}
    if config.test_data:
        x, raw = _features_like(config.test_data, n_features, names, config.label_column, labels=True)
        index = {c: i for i, c in enumerate(classes)}
        values = [v.item() if hasattr(v, "item") else v for v in np.asarray(raw).reshape(-1)]
        unknown = sorted({str(v) for v in values if v not in index})
        if unknown:
            raise ValueError(f"{config.test_data} has labels not seen in training: {unknown[:5]}")
        files["test"] = (x, np.array([index[v] for v in values]))
    if config.ood_data:
        files["ood"] = _features_like(config.ood_data, n_features, names, config.label_column, labels=False)[0]
    return files


def _downstream(
    config: FitConfig, model: Any, x: np.ndarray, u: np.ndarray, criteria: dict[str, Any], files: dict[str, Any]
) -> dict[str, Any]:
    """The ``FitResults`` fields of the downstream tasks: classification vs k (test file or training data),
    OOD AUROC vs k and ROC (with an outlier file), the |correlation| of each latent with each input feature."""
    eval_x, eval_u = files.get("test", (x, u))
    where = str(config.test_data) if "test" in files else "training data"
    w_eval = compute_latents(model, eval_x)
    out: dict[str, Any] = {
        "accuracy_vs_k": FitAccuracy(
            **{
                name: accuracy_vs_k(model, w_eval, eval_u, sel.order.tolist(), prior=config.prior)
                for name, sel in criteria.items()
            },
            evaluated_on=where,
        )
    }
    if "ood" in files:
        x_ood = files["ood"]
        w_ood = compute_latents(model, x_ood)
        out["auroc_vs_k"] = FitAuroc(
            **{
                name: auroc_vs_k(model, w_eval, w_ood, sel.order.tolist(), prior=config.prior)
                for name, sel in criteria.items()
            },
            normal=where,
            outliers=str(config.ood_data),
            n_outliers=len(x_ood),
        )
        k = max(1, len(criteria["mi"].selected))
        grid = np.linspace(0.0, 1.0, 101)
        tprs = {}
        for name, sel in criteria.items():
            dims = sel.order[:k].tolist()
            fpr, tpr = roc(
                log_density(model, w_eval, dims, config.prior), log_density(model, w_ood, dims, config.prior)
            )
            tprs[name] = np.interp(grid, fpr, tpr).tolist()
        out["roc"] = RocCurves(k=k, fpr=grid.tolist(), **tprs)
    out["feature_correlation"] = abs_correlation(compute_latents(model, x), x).tolist()
    return out


def _true_informative(config: FitConfig, latent: np.ndarray, u: np.ndarray) -> list[int]:
    """The informative columns of the true latents: the first ``n_informative``, else those carrying label
    information (kNN MI at least ``min_effect`` of ``H(u)``)."""
    if config.n_informative is not None:
        if not 1 <= config.n_informative <= latent.shape[1]:
            raise ValueError(
                f"n_informative must lie in 1..{latent.shape[1]} (the columns of latent), got {config.n_informative}"
            )
        return list(range(config.n_informative))
    mi = mutual_information(latent, u, random_state=config.train.seed)
    found = np.flatnonzero(mi >= max(config.selection.min_effect, 0.01) * label_entropy(u)).tolist()
    if not found:
        raise ValueError("no column of the true latents carries label information; give n_informative")
    return found


def _identifiability(
    config: FitConfig,
    model: Any,
    x: np.ndarray,
    u: np.ndarray,
    w: np.ndarray,
    latent: np.ndarray,
    informative: list[int],
    criteria: dict[str, Any],
) -> dict[str, Any]:
    """With true latents in the data file: the ``FitResults`` fields of the MCC of the trained flow and of the
    baselines, on the training data."""
    corr = abs_correlation(w, latent)
    rows = set(matching(corr, informative)[0].tolist())
    scores = {"mcc": mcc_scores(corr, informative)}
    baselines = baseline_recovery(model, x, u, x, latent, informative, seed=config.train.seed)
    return {
        "true_informative": informative,
        "informative_w_dims": sorted(rows),
        "recovery": {name: Recovery.from_json(r) for name, r in criteria_recovery(criteria, rows).items()},
        "mcc": Mcc(**scores["mcc"]),
        "baselines": {name: BaselineRecovery.from_json(b) for name, b in baselines.items()},
        "value_added": ValueAdded.from_json(value_added(scores, baselines)),
    }


def write_figures(run_dir: str | Path, results: dict[str, Any]) -> list[Path]:
    """Figures of a ``fit`` run from its results and saved model (the data file is read again)."""
    from ginmi.app import plots  # matplotlib is imported only when figures are drawn

    run_dir = Path(run_dir)
    fig_dir = run_dir / "figures"
    figures = plots.FigureFolder(fig_dir)
    add = figures.add  # queued, then drawn by figures.render() (in two processes where possible)

    typed = FitResults.from_json(results)
    acc, auroc, roc_curves = typed.accuracy_vs_k, typed.auroc_vs_k, typed.roc
    where = acc.evaluated_on
    add(
        "accuracy_vs_k.png",
        plots.curves_vs_k,
        {f"on {where}": {"mi": np.array([acc.mi]), "var": np.array([acc.var])}},
        "training accuracy" if where == "training data" else "test accuracy",
    )
    if auroc is not None and roc_curves is not None:
        add(
            "auroc_vs_k.png",
            plots.curves_vs_k,
            {"OOD detection": {"mi": np.array([auroc.mi]), "var": np.array([auroc.var])}},
            "AUROC",
        )
        k = roc_curves.k
        add(
            "roc.png",
            plots.roc_curves_spread,
            np.asarray(roc_curves.fpr),
            {f"{o.upper()} top-{k}": np.array([tpr]) for o, tpr in (("mi", roc_curves.mi), ("var", roc_curves.var))},
            {f"{o.upper()} top-{k}": np.array([curve[k - 1]]) for o, curve in (("mi", auroc.mi), ("var", auroc.var))},
        )
    add(
        "feature_correlation.png",
        plots.correlation_heatmaps,
        [np.asarray(typed.feature_correlation)],
        ["|corr(w, x)|, training data"],
        ylabel="input feature of x",
        row_names=typed.data.feature_names,
    )
    if typed.training.epoch_loss:
        add("loss.png", plots.loss_curve, typed.training.epoch_loss)
    cfg = typed.config
    model_path, data_path = run_dir / "model.pt", Path(cfg.get("data", ""))
    if model_path.is_file() and data_path.is_file():
        table = load_table(str(data_path), label_column=cfg.get("label_column", "label"))
        x = check_features(table.x)
        u, _ = encode_labels(table.u, len(x))
        w = compute_latents(load_model(model_path), x)
        crit = typed.criteria
        add(
            "criteria.png",
            plots.criteria_figure,
            w,
            u,
            np.asarray(crit["var"].scores),
            np.asarray(crit["mi"].scores),
            class_names=typed.data.classes,
        )
    return figures.render()


def run_fit(config: FitConfig) -> dict[str, Any]:
    """Train on the user's file, score and select latents, write the run folder."""
    t_start = time.perf_counter()
    table = load_table(config.data, label_column=config.label_column)
    if np.ndim(table.x) > 2:
        raise ValueError(
            f"{config.data} holds images x of shape {np.shape(table.x)}; ginmi fit takes feature tables "
            f"(n_samples, n_features): train on images with ginmi images --data {config.data}"
        )
    x = check_features(table.x)
    u, classes = encode_labels(table.u, len(x))
    if x.shape[1] < 2:
        raise ValueError(f"the data need at least 2 feature columns for a coupling flow, got {x.shape[1]}")
    config.selection.check_dims(x.shape[1])
    names = table.feature_names if table.named else None
    files = _evaluation_files(config, x.shape[1], names, classes)
    informative = _true_informative(config, table.latent, u) if table.latent is not None else None
    run_dir = make_run_dir(config.out, "fit", config.train, config=config)
    write_run_config(run_dir, "fit", config)
    with MetricsLogger(run_dir, config.train, len(x), tensorboard=config.log.tensorboard) as log:
        model, history, train_seconds = train_vector_model(
            x,
            u,
            classes,
            config.model,
            config.train,
            progress=config.progress,
            checkpoint_dir=run_dir,
            **log.callbacks(),
        )
    model.feature_names = names
    model.save(run_dir / "model.pt")
    stage("scoring latents (MI, VAR)", config.progress)
    w = compute_latents(model, x)
    criteria = score_criteria(w, u, config.selection, seed=config.train.seed, model=model)
    stage(
        "evaluating (classification"
        + (", OOD detection" if "ood" in files else "")
        + (", baselines" if informative is not None else "")
        + ")",
        config.progress,
    )
    results = FitResults(
        command="fit",
        config=flatten(config),
        data=FitDataInfo(
            path=str(config.data),
            n_samples=len(x),
            n_features=x.shape[1],
            feature_names=table.feature_names,
            classes=classes,
        ),
        criteria={name: ScoredCriterion.from_json(sel.to_dict()) for name, sel in criteria.items()},
        **_downstream(config, model, x, u, criteria, files),
        **(
            _identifiability(config, model, x, u, w, table.latent, informative, criteria)
            if informative is not None
            else {}
        ),
        training=Training(epoch_loss=history["epoch_loss"], final_loss=history["epoch_loss"][-1]),
        timing=FitTiming(train_seconds=train_seconds),
        environment=environment(str(training_device(config.train, model))),
    )
    stage("drawing figures", config.progress)
    write_figures(run_dir, results.to_json())
    results.timing.total_seconds = time.perf_counter() - t_start
    written = results.to_json()
    atomic_write_json(run_dir / "results.json", written)
    if config.report:
        write_report(run_dir, written)
    release_run_dir(run_dir)
    return {**written, "run_dir": str(run_dir)}


@dataclass
class TransformConfig:
    """Options of ``ginmi transform MODEL DATA``."""

    model_path: str = option("", "a model.pt written by ginmi", cli=False)
    data: str = option(
        "",
        "the data file: .npz (array x) or .csv; for a model of ginmi images an .npz of images x "
        "(N, C, H, W) or (N, H, W) like its --data",
        cli=False,
    )
    label_column: str = option("label", "name of a label column of a CSV file to ignore")
    criterion: str = option("mi", "whose selected dims to write as w_selected", choices=("mi", "var"))
    out: str = option(
        "latents.npz",
        "output file: .npz (arrays w, w_selected, selected) or .csv (columns w0, w1, "
        "...); other extensions are refused",
    )


def run_transform(config: TransformConfig) -> dict[str, Any]:
    """Write ``w = g(x)`` for new data (and the columns selected in the model's run folder): feature
    tables for the models of ``ginmi fit`` and ``ginmi synthetic``, images for those of ``ginmi images``.

    CSV columns are matched by name to the training data's (kept in the model file): reordered,
    or refused with the names of missing and unknown columns.
    """
    out = Path(config.out)
    if out.suffix.lower() not in (".npz", ".csv"):
        raise ValueError(f"--out {out}: name a .npz file (arrays w, w_selected, selected) or a .csv file (w)")
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; name a .npz or .csv file")
    if not out.parent.is_dir() and out.parent.exists():
        raise ValueError(f"--out {out}: {out.parent} is not a folder")
    model = load_model(config.model_path)
    if len(model.input_shape) > 1:  # a model of `ginmi images`: images as its --data takes them
        x, _ = load_image_file(config.data, labels=False)
        if x.shape[1:] != tuple(model.input_shape):
            raise ValueError(
                f"{config.data} holds images of shape {x.shape[1:]} (C, H, W), but the model "
                f"{config.model_path} was trained on images of shape {tuple(model.input_shape)}"
            )
    else:
        table = load_table(config.data, label_column=config.label_column, require_labels=False)
        x = check_features(match_columns(table, model.feature_names, config.data))
        if x.shape[1] != model.dim:
            raise ValueError(
                f"the data have {x.shape[1]} features but the model {config.model_path} expects {model.dim}; "
                "use data with the same columns as the training data"
            )
    w = compute_latents(model, x)
    results_path = Path(config.model_path).parent / "results.json"
    selected = None
    if results_path.is_file():
        stored = json.loads(results_path.read_text())
        run = RESULTS[stored.get("command", "fit")].from_json(stored)  # the model's run: fit, synthetic or images
        selected = np.asarray(run.criteria[config.criterion].selected, dtype=int)
    if out.suffix.lower() == ".csv":
        header = ",".join(f"w{i}" for i in range(w.shape[1]))
        with atomic_open(out, "w") as f:
            np.savetxt(f, w, delimiter=",", header=header, comments="")
    else:
        arrays = {"w": w}
        if selected is not None:
            arrays.update(selected=selected, w_selected=w[:, selected])
        with atomic_open(out, "wb") as f:
            np.savez(f, **arrays)
    return TransformResult(
        out=str(out), n_samples=len(w), selected=None if selected is None else selected.tolist()
    ).to_json()
