"""``ginmi synthetic``: the paper's synthetic study (Sections 3 and 5, Appendices C-D), end to end.

One trial: generate data (seeded) -> train GIN -> score the latents by MI and VAR on the training
set -> evaluate on a held-out test set drawn from the same mixture and generator, plus as many
outliers from the two Gaussians of Eq. 17 pushed through the same generator:

- identifiability: |correlation| between ``w`` and the true ``(z, eps)``, MCC, and the ratio of
  the std of each matched ``w`` dim to the std of its true latent (variance preservation, Fig. 8);
- classification (Eq. 6) with the top-``k`` dims of the MI and the VAR order, ``k = 1..d``, and the
  Bayes accuracy of the true mixture on the true latents (the asymptotic bound of Fig. 4);
- OOD detection by the density of the top-``k`` dims under the learned mixture: AUROC vs ``k``
  and ROC curves (Fig. 5).

Trials repeat this with seeds ``seed, seed + 1, ...`` (data, initialisation, batching); variants
repeat it in other settings: ``low-noise`` (noise std 1e-2, Fig. 8), ``batch-stats`` (Appendix C,
Fig. 10) and ``batch-stats-low-noise`` (Fig. 11). ``results.json`` keeps every trial and the mean
and spread of every number (schema: :class:`ginmi.app.results.SyntheticResults`); :mod:`ginmi.app.report`
turns the run folder into ``report.html``.

Example:
    >>> import tempfile
    >>> from ginmi.app.synthetic import SyntheticConfig, run_synthetic
    >>> from ginmi.training import TrainConfig, training_device
    >>> config = SyntheticConfig(n_samples=300, n_test=100, progress=False, report=False,
    ...                          out=tempfile.mkdtemp(), train=TrainConfig(epochs=1))
    >>> results = run_synthetic(config)
    >>> len(results["accuracy_vs_k"]["mi"]), len(results["auroc_vs_k"]["var"])
    (10, 10)
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ginmi.app.common import environment, make_run_dir, stage, write_run_config
from ginmi.app.logging_utils import LogConfig, MetricsLogger
from ginmi.app.report import synthetic_claims, write_report
from ginmi.app.results import (
    BaselineRecovery,
    Mcc,
    OrderCurves,
    Primary,
    Recovery,
    RocCurves,
    RunTiming,
    StdPreservation,
    SyntheticAccuracy,
    SyntheticCriterion,
    SyntheticDataInfo,
    SyntheticResults,
    SyntheticTrial,
    SyntheticVariant,
    Training,
    TrialEvaluation,
    TrialTiming,
    TrueLatents,
    ValueAdded,
)
from ginmi.config import config_from_dict, flatten, option
from ginmi.data.synthetic import DEFAULT_MIXING, GENERATORS, SyntheticData, make_synthetic, sample_latent, sample_ood
from ginmi.distributed import is_main_process
from ginmi.io import atomic_write_json
from ginmi.model import GINModel, load_model
from ginmi.selection import SelectionConfig, mi_scores, score_criteria, var_scores
from ginmi.tasks.classification import PRIORS, accuracy_vs_k, bayes_accuracy
from ginmi.tasks.identifiability import abs_correlation, criteria_recovery, matching, mcc_scores
from ginmi.tasks.ood import auroc_vs_k, log_density, roc
from ginmi.tasks.recovery_baselines import baseline_recovery, value_added
from ginmi.training import TrainConfig, training_device
from ginmi.vector import VectorModelConfig, compute_latents, train_vector_model, train_vector_models

__all__ = [
    "LOW_NOISE_STD",
    "VARIANTS",
    "SyntheticConfig",
    "SyntheticTest",
    "run_synthetic",
    "make_test_sets",
    "evaluate_trial",
    "aggregate",
    "write_figures",
]

LOW_NOISE_STD = 1e-2
"""Noise std of the low-noise setting: variance 1e-4 (paper Section 5, Fig. 8)."""

VARIANTS: dict[str, dict[str, Any]] = {
    "main": {},
    "low-noise": {"noise_std": LOW_NOISE_STD},
    "batch-stats": {"stats": "batch"},
    "batch-stats-low-noise": {"noise_std": LOW_NOISE_STD, "stats": "batch"},
}
"""Settings of the study: overrides of the configured noise std and class statistics."""

ORDERS = ("mi", "var", "var_std")
"""The orders compared: MI, VAR as GIN's class-RMS std, VAR as the plain std."""

ROC_GRID = np.linspace(0.0, 1.0, 101)
"""False-positive rates at which ROC curves are stored (so trials can be averaged)."""

# keys whose numbers are indices or per-dim values in a trial-specific order: not averaged
_NOT_AGGREGATED = {
    "order",
    "selected",
    "top_n",
    "informative_w_dims",
    "true_informative",
    "scores",
    "pvalues",
    "correlation",
    "w_dims",
    "latent_dims",
    "seed",
    "trial",
    "epoch_loss",
    "fpr",
    "model",
    "k",
    "best_baseline",
}


@dataclass
class SyntheticModelConfig(VectorModelConfig):
    """The flow of the synthetic study: as for any vector data, but the data enter as the paper's do."""

    standardize: bool = option(
        False,
        "standardise inputs per feature (median / MAD); off by default: the "
        "paper's study feeds x as generated, so that the flow alone is volume-"
        "preserving (per-feature rescaling hurts the low-noise study)",
    )


@dataclass
class SyntheticConfig:
    """Options of ``ginmi synthetic`` (defaults: the paper's high-noise setting)."""

    n_samples: int = option(10_000, "number of training samples")
    n_test: int = option(
        2000, "held-out test samples from the training mixture, and as many Eq. 17 outliers, for the downstream tasks"
    )
    data_dim: int = option(10, "dimension of x (= of the latent (z, eps))")
    n_informative: int = option(2, "number of informative latents z")
    n_components: int = option(5, "number of mixture components (classes u)")
    noise_std: float = option(1.0, "std of the noise latents eps (1 = the paper's high noise, 1e-2 = low)")
    preset: str | None = option(None, "use the paper's Eq. 16 mixture statistics", choices=("paper",))
    generator: str = option(
        "mixing",
        "random flow f mapping latents to data: mixing (rotations and bounded "
        "volume-preserving couplings, strongly mixing), paper (the GIN reference's GLOW flow with "
        "the 2020 soft clamp), reference (the same with today's clamp: heavy tails), ginmi "
        "(ginmi's earlier, weakly mixing default)",
        choices=GENERATORS,
    )
    mixing: float = option(
        DEFAULT_MIXING, "strength of --generator mixing: bound of its coupling shifts (0: a pure rotation)"
    )
    trials: int = option(
        1,
        "independent repeats with seeds seed, seed+1, ... (data, initialisation, batching); "
        "results and figures show the mean and spread",
    )
    variants: tuple[str, ...] | None = option(
        None,
        "settings to run: main (as configured), low-noise (noise std 1e-2), batch-stats (Appendix C), "
        "batch-stats-low-noise; default: main for one trial, all four for --trials > 1",
        choices=tuple(VARIANTS),
    )
    prior: str = option(
        "uniform", "class prior p(u) of the Bayes classifier and the OOD density (the paper: uniform)", choices=PRIORS
    )
    jobs: int = option(
        0,
        "models trained in parallel processes, one thread each (0: one per CPU core, "
        "at most one per model; 1: one after another in this process)",
    )
    together: bool = option(
        True,
        "train the trials of each setting together in one process (train_many: one "
        "thread per core with the fused step, else stacked parameters); --no-together trains "
        "them one by one (--jobs processes), with per-trial checkpoints, metrics.csv and --resume",
    )
    report: bool = option(True, "write report.html into the run folder")
    out: str | None = option(None, "run folder (default runs/synthetic-<timestamp>)")
    progress: bool = option(True, "show progress bars")
    model: SyntheticModelConfig = field(default_factory=SyntheticModelConfig, metadata={"help": "model"})
    train: TrainConfig = field(default_factory=TrainConfig, metadata={"help": "training"})
    selection: SelectionConfig = field(default_factory=SelectionConfig, metadata={"help": "selection"})
    log: LogConfig = field(default_factory=LogConfig, metadata={"help": "experiment logs"})

    def __post_init__(self) -> None:
        for name in ("n_samples", "n_test", "trials"):
            if getattr(self, name) <= 0:
                raise ValueError(f"`{name}` must be positive, got {getattr(self, name)}")
        if self.jobs < 0:
            raise ValueError(f"`jobs` must be >= 0 (0: automatic), got {self.jobs}")
        if self.variants is not None:
            unknown = [v for v in self.variants if v not in VARIANTS]
            if unknown or not self.variants:
                raise ValueError(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
            if len(set(self.variants)) != len(self.variants):
                raise ValueError(f"variants given twice: {list(self.variants)}")
        if self.prior not in PRIORS:
            raise ValueError(f"`prior` must be one of {PRIORS}, got {self.prior!r}")

    def resolved_variants(self) -> tuple[str, ...]:
        """The variants to run: as given, else ``main`` for one trial and all four for several."""
        if self.variants is not None:
            return tuple(self.variants)
        return ("main",) if self.trials == 1 else tuple(VARIANTS)

    def variant_settings(self, variant: str) -> dict[str, Any]:
        """``noise_std`` and ``stats`` of a variant (the configured values, overridden by the variant)."""
        settings = {"noise_std": self.noise_std, "stats": self.model.stats}
        settings.update(VARIANTS[variant])
        return settings


@dataclass
class SyntheticTest:
    """Held-out samples of the training mixture (``x``, ``u``, ``latent``) and Eq. 17 outliers."""

    x: np.ndarray
    u: np.ndarray
    latent: np.ndarray
    x_ood: np.ndarray
    latent_ood: np.ndarray


def _make_data(config: SyntheticConfig, noise_std: float, seed: int, n_samples: int | None = None) -> SyntheticData:
    return make_synthetic(
        config.n_samples if n_samples is None else n_samples,
        data_dim=config.data_dim,
        n_informative=config.n_informative,
        n_components=config.n_components,
        noise_std=noise_std,
        preset=config.preset,
        generator=config.generator,
        mixing=config.mixing,
        seed=seed,
    )


@torch.no_grad()
def make_test_sets(data: SyntheticData, n_test: int, seed: int) -> SyntheticTest:
    """``n_test`` new samples of the mixture and ``n_test`` outliers (:func:`sample_ood`), both through
    the data's generator, from random streams independent of the training data's."""
    k = len(data.informative)
    rng = np.random.default_rng([seed, 1])
    latent, u = sample_latent(n_test, data.means, data.stds, data.latent.shape[1] - k, data.noise_std, rng)
    x = data.generator(torch.as_tensor(latent, dtype=torch.float64))[0].numpy()
    x_ood, latent_ood = sample_ood(data, n_test, seed=[seed, 2])  # type: ignore[arg-type]
    return SyntheticTest(x=x, u=u, latent=latent, x_ood=x_ood, latent_ood=latent_ood)


def evaluate_trial(
    model: GINModel,
    data: SyntheticData,
    test: SyntheticTest,
    selection: SelectionConfig,
    *,
    prior: str = "uniform",
    seed: int = 0,
) -> TrialEvaluation:
    """Score, select and evaluate one trained model on the synthetic ground truth.

    Criteria are computed on the training data; everything else on the held-out ``test`` sets.
    Returns the evaluation entries of a trial of ``results.json`` (``.to_json()``: its dict).
    """
    n_inf = len(data.informative)
    w = compute_latents(model, data.x)
    criteria = score_criteria(w, data.u, selection, seed=seed, model=model)
    w_test, w_ood = compute_latents(model, test.x), compute_latents(model, test.x_ood)
    corr = abs_correlation(w_test, test.latent)
    inf_rows, _ = matching(corr, data.informative)
    true_set = set(inf_rows.tolist())
    recovery = criteria_recovery(criteria, true_set)
    rows, cols = matching(corr)
    by_latent = np.argsort(cols)
    rows, cols = rows[by_latent], cols[by_latent]
    ratio = w_test.std(0)[rows] / test.latent.std(0)[cols]
    log_ratio = np.log10(ratio)
    accuracy: dict[str, list[float]] = {}
    auroc: dict[str, list[float]] = {}
    roc_curves: dict[str, list[float]] = {}
    for name, sel in criteria.items():
        order = sel.order.tolist()
        accuracy[name] = accuracy_vs_k(model, w_test, test.u, order, prior=prior)
        auroc[name] = auroc_vs_k(model, w_test, w_ood, order, prior=prior)
        fpr, tpr = roc(
            log_density(model, w_test, order[:n_inf], prior), log_density(model, w_ood, order[:n_inf], prior)
        )
        roc_curves[name] = np.interp(ROC_GRID, fpr, tpr).tolist()
    bound = bayes_accuracy(test.latent[:, data.informative], test.u, data.means, data.stds)
    # the true latents have no fitted model: the gaussian estimator falls back to the kNN one there
    true_selection = replace(selection, mi_estimator="knn") if selection.mi_estimator == "gaussian" else selection
    true_mi = mi_scores(data.latent, data.u, true_selection, seed=seed)
    true_var = var_scores(data.latent, data.u, criteria["var"].extra.get("kind", "class-rms"))
    scores = {"mcc": mcc_scores(corr, data.informative)}
    baselines = baseline_recovery(model, data.x, data.u, test.x, test.latent, data.informative, seed=seed)
    return TrialEvaluation(
        criteria={
            name: SyntheticCriterion.from_json({**sel.to_dict(), "sorted_scores": np.sort(sel.scores)[::-1].tolist()})
            for name, sel in criteria.items()
        },
        true_informative=list(data.informative),
        informative_w_dims=sorted(true_set),
        recovery={name: Recovery.from_json(r) for name, r in recovery.items()},
        correlation=corr.tolist(),
        mcc=Mcc(**scores["mcc"]),
        baselines={name: BaselineRecovery.from_json(b) for name, b in baselines.items()},
        value_added=ValueAdded.from_json(value_added(scores, baselines)),
        true_latents=TrueLatents(
            std=data.latent.std(0).tolist(),
            mi=true_mi.tolist(),
            var=true_var.tolist(),
            sorted_std=np.sort(data.latent.std(0))[::-1].tolist(),
            sorted_var=np.sort(true_var)[::-1].tolist(),
            sorted_mi=np.sort(true_mi)[::-1].tolist(),
        ),
        std_preservation=StdPreservation(
            w_dims=rows.tolist(),
            latent_dims=cols.tolist(),
            ratio=ratio.tolist(),
            max_abs_log10_ratio=float(np.abs(log_ratio).max()),
            log10_ratio_range=float(log_ratio.max() - log_ratio.min()),
            log10_true_std_range=float(np.log10(test.latent.std(0).max() / test.latent.std(0).min())),
        ),
        accuracy_vs_k=SyntheticAccuracy(**accuracy, bayes_bound=bound),
        auroc_vs_k=OrderCurves(**auroc),
        roc=RocCurves(k=n_inf, fpr=ROC_GRID.tolist(), **roc_curves),
        data=SyntheticDataInfo(
            max_abs_x=float(np.abs(data.x).max()),
            n_samples=len(data.x),
            n_test=len(test.x),
            n_outliers=len(test.x_ood),
            checksum=float(data.x.sum()),
        ),
    )


def _run_trial_in_worker(
    config: SyntheticConfig, run_dir: Path, variant: str, trial: int, primary: bool
) -> SyntheticTrial:
    torch.set_num_threads(1)  # small networks: processes in parallel beat threads within one
    return _run_trial(replace(config, progress=False), run_dir, variant, trial, primary)


def _run_trial(config: SyntheticConfig, run_dir: Path, variant: str, trial: int, primary: bool) -> SyntheticTrial:
    settings = config.variant_settings(variant)
    seed = config.train.seed + trial
    data = _make_data(config, settings["noise_std"], seed)
    train_config = replace(config.train, seed=seed)
    model_config = replace(config.model, stats=settings["stats"])
    log_dir = run_dir if primary else run_dir / "logs" / f"{variant}-trial{trial}"
    checkpoint_dir = run_dir if primary else run_dir / "checkpoints" / f"{variant}-trial{trial}"
    with MetricsLogger(log_dir, train_config, len(data.x), tensorboard=config.log.tensorboard) as log:
        model, history, train_seconds = train_vector_model(
            data.x,
            data.u,
            list(range(config.n_components)),
            model_config,
            train_config,
            progress=config.progress,
            checkpoint_dir=checkpoint_dir,
            **log.callbacks(),
        )
    return _finish_trial(config, run_dir, variant, trial, primary, data, model, history, train_seconds)


def _run_trials_together(
    config: SyntheticConfig, run_dir: Path, variant: str, trials: Sequence[int], primary: bool
) -> list[SyntheticTrial]:
    """Train the given trials of one setting at once (:func:`ginmi.training.train_many`), then
    evaluate each; ``primary``: the first of them is the run's primary trial."""
    settings = config.variant_settings(variant)
    seeds = [config.train.seed + t for t in trials]
    datas = [_make_data(config, settings["noise_std"], seed) for seed in seeds]
    # the same checkpoints and logs as one by one (_run_trial), so that --resume continues them there
    firsts = [primary and i == 0 for i in range(len(trials))]
    dirs = [run_dir if first else run_dir / "checkpoints" / f"{variant}-trial{t}" for t, first in zip(trials, firsts)]
    log_dirs = [run_dir if first else run_dir / "logs" / f"{variant}-trial{t}" for t, first in zip(trials, firsts)]
    with contextlib.ExitStack() as stack:
        logs = [
            stack.enter_context(
                MetricsLogger(d, replace(config.train, seed=seed), len(data.x), tensorboard=config.log.tensorboard)
            )
            for d, seed, data in zip(log_dirs, seeds, datas)
        ]
        models, histories, seconds = train_vector_models(
            [(d.x, d.u) for d in datas],
            list(range(config.n_components)),
            replace(config.model, stats=settings["stats"]),
            config.train,
            seeds,
            progress=config.progress,
            checkpoint_dirs=dirs,
            callbacks=[log.callbacks() for log in logs],
        )
    return [
        _finish_trial(config, run_dir, variant, trial, primary and i == 0, data, model, history, seconds / len(trials))
        for i, (trial, data, model, history) in enumerate(zip(trials, datas, models, histories))
    ]


def _finish_trial(
    config: SyntheticConfig,
    run_dir: Path,
    variant: str,
    trial: int,
    primary: bool,
    data: SyntheticData,
    model: GINModel,
    history: dict[str, list[float]],
    train_seconds: float,
) -> SyntheticTrial:
    """Save a trained trial's model and evaluate it on fresh test sets."""
    settings = config.variant_settings(variant)
    seed = config.train.seed + trial
    model_path = "model.pt" if primary else f"models/{variant}-trial{trial}.pt"
    model.save(run_dir / model_path)
    stage(f"evaluating {variant} trial {trial} (scores, classification, OOD detection, baselines)", config.progress)
    t0 = time.perf_counter()
    test = make_test_sets(data, config.n_test, seed)
    evaluation = evaluate_trial(model, data, test, config.selection, prior=config.prior, seed=seed)
    return SyntheticTrial(
        variant=variant,
        trial=trial,
        seed=seed,
        model=model_path,
        **settings,
        evaluation=evaluation,
        training=Training(epoch_loss=history["epoch_loss"], final_loss=history["epoch_loss"][-1]),
        timing=TrialTiming(
            train_seconds=train_seconds,
            eval_seconds=time.perf_counter() - t0,
            device=str(training_device(config.train, model)),
        ),
    )


def _numeric(value: Any) -> bool:
    return isinstance(value, (bool, int, float, np.number)) and not isinstance(value, str)


def aggregate(trials: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean and spread over trials of every number in the trial dicts.

    Scalars (booleans count as 0/1, so their mean is a fraction) become ``{"mean", "std", "min",
    "max", "n"}`` with the sample std (``ddof=1``; 0 for one trial); equal-length lists of numbers
    are aggregated elementwise. Indices and per-dim values whose order differs between trials
    (``order``, ``scores``, ``correlation``, ...) are left out.

    Example:
        >>> aggregate([{"a": 1.0, "b": [1, 2]}, {"a": 3.0, "b": [3, 4]}])["b"]["mean"]
        [2.0, 3.0]
    """
    first = trials[0]
    out: dict[str, Any] = {}
    for key, value in first.items():
        if key in _NOT_AGGREGATED:
            continue
        values = [t.get(key) for t in trials]
        if isinstance(value, dict):
            if all(isinstance(v, dict) for v in values):
                sub = aggregate(values)
                if sub:
                    out[key] = sub
        elif _numeric(value) and all(_numeric(v) for v in values):
            out[key] = _stats(np.asarray(values, dtype=float))
        elif (
            isinstance(value, list)
            and value
            and all(_numeric(v) for v in value)
            and all(isinstance(v, list) and len(v) == len(value) for v in values)
        ):
            out[key] = _stats(np.asarray(values, dtype=float), elementwise=True)
    return out


def _stats(a: np.ndarray, elementwise: bool = False) -> dict[str, Any]:
    std = a.std(0, ddof=1) if len(a) > 1 else np.zeros_like(a[0])
    stats = {"mean": a.mean(0), "std": std, "min": a.min(0), "max": a.max(0)}
    conv = (lambda v: v.tolist()) if elementwise else float
    return {**{k: conv(v) for k, v in stats.items()}, "n": len(a)}


def run_synthetic(config: SyntheticConfig) -> dict[str, Any]:
    """Run every variant and trial, write the run folder (results, models, figures, report)."""
    t_start = time.perf_counter()
    variants = config.resolved_variants()
    if not is_main_process():  # under torchrun only rank 0 writes the run folder; the others help train
        config = replace(config, out=tempfile.mkdtemp(prefix="ginmi-rank"), report=False, progress=False)
    config.selection.check_dims(config.data_dim)
    for variant in variants:  # the data options, checked on a small sample before anything is written
        _make_data(
            config,
            config.variant_settings(variant)["noise_std"],
            config.train.seed,
            n_samples=min(config.n_samples, 64),
        )
    run_dir = make_run_dir(config.out, "synthetic", config.train, quiet=not is_main_process(), config=config)
    write_run_config(run_dir, "synthetic", config)
    tasks = [
        (variant, i, v_index == 0 and i == 0) for v_index, variant in enumerate(variants) for i in range(config.trials)
    ]
    jobs = min(len(tasks), config.jobs or os.cpu_count() or 1)
    launched_alone = int(os.environ.get("WORLD_SIZE", "1")) == 1  # train_many is single-process
    if config.together and config.trials > 1 and not config.train.resume and launched_alone:
        jobs = 1
        done = [
            t
            for v_index, variant in enumerate(variants)
            for t in _run_trials_together(config, run_dir, variant, range(config.trials), v_index == 0)
        ]
    elif jobs == 1:
        done = [_run_trial(config, run_dir, *task) for task in tasks]
    else:
        import multiprocessing

        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            done = list(pool.map(_run_trial_in_worker, *zip(*[(config, run_dir, *task) for task in tasks])))
    runs: dict[str, SyntheticVariant] = {}
    for variant in variants:
        trials = [t for t in done if t.variant == variant]
        runs[variant] = SyntheticVariant(
            **config.variant_settings(variant), trials=trials, aggregate=aggregate([t.to_json() for t in trials])
        )
    primary = runs[variants[0]]
    all_trials = [t for r in runs.values() for t in r.trials]
    results = SyntheticResults(
        command="synthetic",
        config=flatten(config),
        primary=Primary(variant=variants[0], trial=0),
        aggregate=primary.aggregate,
        variants=runs,
        timing=RunTiming(
            train_seconds=float(sum(t.timing.train_seconds for t in all_trials)),
            eval_seconds=float(sum(t.timing.eval_seconds for t in all_trials)),
            n_models=len(all_trials),
            parallel_jobs=jobs,
        ),
        environment=environment(primary.trials[0].timing.device),
        claims=synthetic_claims(runs, len(primary.trials[0].evaluation.true_informative)),
    )
    stage("drawing figures", config.progress)
    t0 = time.perf_counter()
    write_figures(run_dir, results.to_json())
    results.timing.figure_seconds = time.perf_counter() - t0
    results.timing.total_seconds = time.perf_counter() - t_start
    written = results.to_json()
    atomic_write_json(run_dir / "results.json", written)
    if config.report:
        write_report(run_dir)
    return {**written, "run_dir": str(run_dir)}


def _regenerate(run_dir: Path, config: SyntheticConfig, trial: SyntheticTrial) -> tuple[SyntheticData, np.ndarray]:
    """The training data of a trial (deterministic in its seed) and its latents under the saved model."""
    data = _make_data(config, trial.noise_std, trial.seed)
    if not np.isclose(data.x.sum(), trial.evaluation.data.checksum, rtol=1e-9, atol=1e-6):
        raise ValueError(
            f"the data regenerated for {trial.variant} trial {trial.trial} differ from the "
            "run's (another ginmi or torch version?); rerun `ginmi synthetic` instead"
        )
    model = load_model(run_dir / trial.model)
    return data, compute_latents(model, data.x)


def write_figures(run_dir: str | Path, results: dict[str, Any]) -> list[Path]:
    """Write every figure of a synthetic run from its ``results.json`` content and saved models.

    Curves come from the results; scatter plots regenerate the data from the stored config and
    seeds (generation is deterministic) and load the saved models, so ``ginmi report`` can
    redraw everything without training. Returns the paths written.
    """
    from ginmi.app import plots  # matplotlib is imported only when figures are drawn

    run_dir = Path(run_dir)
    fig_dir = run_dir / "figures"
    typed = SyntheticResults.from_json(results)
    config = config_from_dict(SyntheticConfig, typed.config, strict=False)
    runs = {v: [t.evaluation for t in r.trials] for v, r in typed.variants.items()}
    figures = plots.FigureFolder(fig_dir)
    add = figures.add  # queued, then drawn by figures.render() (in two processes where possible)

    # curves over k and ROC: every variant, spread over trials (Figs. 4, 5)
    first = typed.variants[typed.primary.variant].trials
    orders = [o for o in ORDERS if getattr(first[0].evaluation.accuracy_vs_k, o) is not None]
    acc = {v: {o: np.array([getattr(t.accuracy_vs_k, o) for t in ts]) for o in orders} for v, ts in runs.items()}
    bounds = {v: np.array([t.accuracy_vs_k.bayes_bound for t in ts]) for v, ts in runs.items()}
    add(
        "accuracy_vs_k.png",
        plots.curves_vs_k,
        acc,
        "test accuracy",
        bounds=bounds,
        title="Bayes classification with the top-k dims (Fig. 4)",
    )
    auc = {v: {o: np.array([getattr(t.auroc_vs_k, o) for t in ts]) for o in orders} for v, ts in runs.items()}
    add(
        "auroc_vs_k.png",
        plots.curves_vs_k,
        auc,
        "AUROC",
        title="OOD detection by the density of the top-k dims (Fig. 5)",
    )
    evals = runs[typed.primary.variant]
    k = evals[0].roc.k
    tprs = {f"{plots.ORDER_LABELS[o]} top-{k}": np.array([getattr(t.roc, o) for t in evals]) for o in orders}
    areas = {
        f"{plots.ORDER_LABELS[o]} top-{k}": np.array([getattr(t.auroc_vs_k, o)[k - 1] for t in evals]) for o in orders
    }
    add(
        "roc.png",
        plots.roc_curves_spread,
        np.asarray(evals[0].roc.fpr),
        tprs,
        areas,
        title=f"ROC, {typed.primary.variant} (Fig. 5)",
    )
    # score decay over trials (Figs. 3b/d, 8c/e, 10-11 c/e)
    decay = {
        v: {
            "mi": np.array([t.criteria["mi"].sorted_scores for t in ts]),
            "std": np.array([t.criteria["var"].sorted_scores for t in ts]),
        }
        for v, ts in runs.items()
    }
    true = {
        v: {
            "mi": np.array([t.true_latents.sorted_mi for t in ts]),  # older runs: the overall std
            "std": np.array([t.true_latents.sorted_var or t.true_latents.sorted_std for t in ts]),
        }
        for v, ts in runs.items()
    }
    add("decay.png", plots.sorted_scores_spread, decay, true)
    # identifiability: one heatmap per trained model (Fig. 9)
    for v, r in typed.variants.items():
        mats = [t.evaluation.correlation for t in r.trials]
        titles = [f"{v}, seed {t.seed}: MCC {t.evaluation.mcc.all:.3f}" for t in r.trials]
        add(f"correlation_{v}.png", plots.correlation_heatmaps, mats, titles)
    # loss curves
    for v, r in typed.variants.items():
        if r.trials[0].training.epoch_loss:
            add(f"loss_{v}.png", plots.loss_curve, r.trials[0].training.epoch_loss)
    # scatter plots: need the data and the models
    primary_trial = first[0]
    data, w = _regenerate(run_dir, config, primary_trial)
    n_inf = len(data.informative)
    noise = [d for d in range(data.latent.shape[1]) if d not in data.informative]
    pairs = [
        (0, 1) if n_inf >= 2 else (0, noise[0]),
        (0, noise[0]),
        (noise[0], 1 if n_inf >= 2 else noise[1]),
        (noise[0], noise[1]),
    ]
    add(
        "latent_projections.png",
        plots.projections,
        data.latent,
        data.u,
        pairs,
        "latent (z, eps) (Fig. 1)",
        axis_label="latent dim",
    )
    add(
        "data_projections.png",
        plots.projections,
        data.x,
        data.u,
        pairs,
        "data x = f(z, eps) (Fig. 2)",
        axis_label="x dim",
    )
    test = make_test_sets(data, min(config.n_test, 2000), primary_trial.seed)
    add(
        "ood_latent.png",
        plots.ood_latent_figure,
        test.latent,
        test.u,
        test.latent_ood,
        tuple(data.informative[:2]) if n_inf >= 2 else (0, noise[0]),
    )
    add(
        "all_pairs_latent.png",
        plots.all_projections,
        data.latent,
        data.u,
        "all 2-D projections of the latent (z, eps) (Fig. 12)",
    )
    add("all_pairs_data.png", plots.all_projections, data.x, data.u, "all 2-D projections of the data x (Fig. 13)")
    add("all_pairs_w.png", plots.all_projections, w, data.u, "all 2-D projections of the learned w (Fig. 14)")
    for v, r in typed.variants.items():
        t = r.trials[0]
        if t is not primary_trial:
            data, w = _regenerate(run_dir, config, t)
        mi, var = t.evaluation.criteria["mi"], t.evaluation.criteria["var"]
        mi_band = (np.asarray(mi.ci_low), np.asarray(mi.ci_high)) if mi.ci_low is not None else None
        add(
            "criteria.png" if t is primary_trial else f"criteria_{v}.png",
            plots.criteria_figure,
            w,
            data.u,
            np.asarray(var.scores),
            np.asarray(mi.scores),
            true_var=var_scores(data.latent, data.u, var.kind or "class-rms"),
            true_mi=np.asarray(t.evaluation.true_latents.mi),
            mi_null=mi.null_level,
            mi_band=mi_band,
        )
    return figures.render()
