"""The run report: ``report.html``, one self-contained page per run folder.

:func:`write_report` reads ``results.json`` and the PNG figures of a run folder and writes
``report.html`` with every figure embedded (base64 data URIs, no external files, scripts or
fonts: it opens offline), the paper's claims beside our numbers with a verdict, the numbers
tables, the configuration, the timings and the environment. Sections are built from what
``results.json`` holds, so one function serves every command:

- ``claims``: a list of ``{"claim", "measured", "verdict", "rule"}``; for ``synthetic`` runs it is
  recomputed from the trials by :func:`evaluate_claims` (the rules live here, in code);
- ``paper``: a tree of the paper's numbers; every number also found at the same path in the
  results is shown beside ours (``images`` runs);
- ``variants`` (synthetic): the summary table of :func:`synthetic_summary`;
- ``accuracy_vs_k`` / ``auroc_vs_k``: tables over ``k`` (``ks`` if given, else ``1..len``);
- ``criteria``: the MI and VAR orders and selections;
- ``config``, ``timing``, ``environment``.

:func:`rebuild` (``ginmi report RUN_DIR``) first redraws the figures with the figure writer the CLI
passes for the run's command (each command module's ``write_figures(run_dir, results)``: it loads the
saved model(s) and regenerates data from the stored config; nothing is retrained), then writes the HTML.
This module reads results only: it imports no command module. The synthetic study's sections (claims,
summary, value added) read the trials as typed records (:mod:`ginmi.app.results`); the other sections
read whatever keys a results dict holds, so that partial or hand-made results render too.

Example:
    >>> import json, tempfile, pathlib
    >>> run = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (run / "results.json").write_text(json.dumps({"command": "fit", "config": {"epochs": 2}}))
    >>> write_report(run).name
    'report.html'
"""

from __future__ import annotations

import base64
import datetime
import functools
import html
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ginmi.app.results import (
    Claim,
    FitResults,
    ImageBaselines,
    Mcc,
    OrderCurves,
    ReportResult,
    SyntheticTrial,
    SyntheticVariant,
    TrialEvaluation,
)
from ginmi.config import option
from ginmi.io import atomic_write_text

__all__ = [
    "HOLDS",
    "DOES_NOT_HOLD",
    "NOT_EVALUATED",
    "reported_results",
    "synthetic_claims",
    "evaluate_claims",
    "synthetic_summary",
    "write_report",
    "rebuild",
    "ReportConfig",
    "run_report",
]

HOLDS, DOES_NOT_HOLD, NOT_EVALUATED = "holds", "does not hold", "not evaluated"

# thresholds of the verdicts (stated in the report next to each claim)
NEAR_BAYES = 0.02  # accuracy within 2 points of the Bayes bound counts as "near"
VAR_GAP_ACCURACY = 0.05  # VAR "not competent": at least 5 points below MI at every k <= n
MI_GAP_AUROC = 0.10  # MI "far above" VAR: AUROC at least 0.10 higher at every k <= n
MCC_PERMUTATION = 0.90  # |correlation| matrix "near a permutation": MCC >= 0.9 in every trial
STD_DISTORTION = 0.25  # stds "approximately preserved": ratio spread <= 1/4 of the true stds' spread
BASELINE_MARGIN = 0.02  # training must beat the best baseline (raw x, untrained, FastICA) by more than this MCC
SAME_ACCURACY = 0.02  # trainable vs batch statistics "alike": accuracy and AUROC within 0.02,
SAME_MCC = 0.05  # MCC within 0.05 and the same MI recovery rate

FIGURE_CAPTIONS = {
    "latent_projections.png": "Fig. 1: 2-D projections of the true latent (z, eps), coloured by label u.",
    "data_projections.png": "Fig. 2: the same projections of the data x = f(z, eps).",
    "criteria.png": "Fig. 3: the 2 dims of w with the largest VAR score and with the largest MI, and the decay of "
    "both scores beside the true latents (first trial of the main setting).",
    "decay.png": "Figs. 3b/d, 8c/e, 10-11c/e: sorted MI and std of w (black) and of the true latents (grey) for "
    "every setting; line = mean over trials, band = min to max.",
    "accuracy_vs_k.png": "Fig. 4: test accuracy of the Bayes classifier (Eq. 6) with the top-k dims of the MI and "
    "VAR orders; dashed: Bayes accuracy of the true mixture on the true latents.",
    "auroc_vs_k.png": "Fig. 5 (right): AUROC of OOD detection by the density of the top-k dims.",
    "roc.png": "ROC curves of OOD detection with the top-n dims of each order.",
    "ood_latent.png": "Fig. 5 (left): test latents (coloured by label) and the Eq. 17 outliers (black crosses) on "
    "the informative dims.",
    "all_pairs_latent.png": "Fig. 12: all 2-D projections of the latent (z, eps).",
    "all_pairs_data.png": "Fig. 13: all 2-D projections of the data x.",
    "all_pairs_w.png": "Fig. 14: all 2-D projections of the learned w.",
}
_FIGURE_PREFIX_CAPTIONS = {
    "correlation_": "Fig. 9: |correlation| between the true latents (rows) and the learned w (columns), one panel "
    "per independently trained model",
    "criteria_": "Figs. 8, 10, 11: top-2 VAR and top-2 MI dims of w and the score decays",
    "loss": "training loss per epoch",
}


def _command_captions(results: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """Captions (by file name, by prefix) of the figures of ``fit`` and ``images`` runs, which show the
    user's data or images, not the synthetic study's true latents; {} for ``synthetic``."""
    command = results.get("command")
    if command == "fit":
        where = results.get("accuracy_vs_k", {}).get("evaluated_on", "training data")
        on = (
            "the training data: training accuracy, no --test-data given"
            if where == "training data"
            else f"the held-out file {where} (test accuracy)"
        )
        auroc = results.get("auroc_vs_k", {})
        ood = f"{auroc.get('normal', where)} (normal) against {auroc.get('outliers', '--ood-data')} (outliers)"
        k = results.get("roc", {}).get("k", "n")
        return {
            "accuracy_vs_k.png": f"accuracy of the Bayes classifier (Eq. 6) with the top-k dims of w in the MI and "
            f"VAR orders, on {on}.",
            "auroc_vs_k.png": f"AUROC of OOD detection by the density of the top-k dims of w: {ood}.",
            "roc.png": f"ROC curves of OOD detection with the top-{k} dims of each order (k: the number MI "
            f"selects): {ood}.",
            "criteria.png": "the 2 dims of w with the largest VAR score and with the largest MI (training data, "
            "coloured by label), and the sorted scores of every dim (no true latents in a fit run).",
            "feature_correlation.png": "|correlation| between the learned w (columns) and the input features x "
            "(rows) on the training data: which features each latent mixes.",
        }, {"loss": "training loss per epoch"}
    if command == "images":
        data = results.get("data", {})
        name, ood = data.get("dataset", "the training images"), data.get("ood", "the OOD images")
        return {
            "decay.png": f"as the paper's Fig. 6 (right), on {name}: MI and std of every latent, sorted "
            "(log rank); dashed: the best k of each order.",
            "accuracy_vs_k.png": f"as the paper's Fig. 6 (left), on {name}: test accuracy of the Bayes classifier "
            "with the top-k latents of the MI and VAR orders, on the k grid.",
            "roc.png": f"as the paper's Fig. 7: ROC of OOD detection, {name} test images (normal) against {ood} "
            "(outliers), by the density of each order's best-k latents.",
            "samples.png": f"samples of each class of {name}: the top-k MI latents drawn from the class Gaussian, "
            "the others at the class mean, decoded by the inverse flow.",
        }, {
            "variation_": "one class's variation along each of its top MI latents, from mu - 3 sigma to "
            "mu + 3 sigma (rows: latents, columns: steps)",
            "loss": "training loss per epoch",
        }
    return {}, {}


_FIGURE_ORDER = [
    "latent_projections",
    "data_projections",
    "criteria",
    "decay",
    "accuracy_vs_k",
    "auroc_vs_k",
    "roc",
    "ood_latent",
    "correlation_",
    "criteria_",
    "all_pairs_",
    "loss",
]


def reported_results() -> dict[str, Any]:
    """The paper's numbers and claims (package data ``reported_results.json``)."""
    return json.loads(resources.files("ginmi").joinpath("reported_results.json").read_text())


# ----------------------------------------------------------------------------------------------
# claims of the synthetic study


def _fmt(values: Sequence[float] | np.ndarray | float, digits: int = 3) -> str:
    """``mean ± std`` over trials (sample std), or the single value."""
    a = np.atleast_1d(np.asarray(values, dtype=float))
    if len(a) == 0:
        return "n/a"
    if len(a) == 1:
        return f"{a[0]:.{digits}f}"
    return f"{a.mean():.{digits}f} ± {a.std(ddof=1):.{digits}f}"


Settings = Mapping[str, SyntheticVariant]
"""The settings of a synthetic run by name (``results.json``'s ``variants``)."""


def _settings(results: Mapping[str, Any]) -> dict[str, SyntheticVariant]:
    """The typed settings of a synthetic run's results (none for other commands)."""
    return {name: SyntheticVariant.from_json(run) for name, run in results.get("variants", {}).items()}


def _find_setting(settings: Settings, noise: str, stats: str) -> tuple[str, list[TrialEvaluation]] | None:
    """The first setting with high (>= 0.5) or low (<= 0.05) noise std and the given statistics, and
    the evaluations of its trials."""
    for name, run in settings.items():
        std = run.noise_std
        if run.stats == stats and ((noise == "high" and std >= 0.5) or (noise == "low" and std <= 0.05)):
            return name, [t.evaluation for t in run.trials]
    return None


def _count(trials: Sequence[Any], predicate: Callable[[Any], Any]) -> tuple[int, int]:
    return sum(bool(predicate(t)) for t in trials), len(trials)


def _recovered(trial: TrialEvaluation, order: str) -> bool:
    """Whether the top-n dims of ``order`` are the true informative set (False for orders older runs lack)."""
    return order in trial.recovery and trial.recovery[order].top_n_correct


def _top_n_correct(trials: Sequence[TrialEvaluation], order: str) -> tuple[int, int]:
    """In how many trials the top-n dims of ``order`` are the true informative set."""
    return _count(trials, lambda t: _recovered(t, order))


def _at_k(curves: Sequence[OrderCurves], order: str, k: int) -> np.ndarray:
    """Entry ``k - 1`` of the ``order`` curve of each trial."""
    return np.array([getattr(c, order)[k - 1] for c in curves], dtype=float)


def _accuracy(trials: Sequence[TrialEvaluation], order: str, k: int) -> np.ndarray:
    return _at_k([t.accuracy_vs_k for t in trials], order, k)


def _auroc(trials: Sequence[TrialEvaluation], order: str, k: int) -> np.ndarray:
    return _at_k([t.auroc_vs_k for t in trials], order, k)


def _n_inf(results: Mapping[str, Any]) -> int:
    return len(results.get("true_informative", [0, 1]))


def _claim(text: str, measured: str, verdict: str, rule: str, setting: str = "") -> Claim:
    return Claim(claim=text, measured=measured, verdict=verdict, rule=rule, setting=setting)


def _missing(text: str, what: str) -> Claim:
    return _claim(
        text,
        f"not run: needs the {what} setting",
        NOT_EVALUATED,
        f"run `ginmi synthetic --trials N` (N > 1) or pass --variants with {what}",
    )


def _verdict(ok: bool) -> str:
    return HOLDS if ok else DOES_NOT_HOLD


def _claim_recovery(text: str, settings: Settings, n: int) -> Claim:
    found = _find_setting(settings, "high", "trainable")
    if found is None:
        return _missing(text, "high-noise trainable (main)")
    name, trials = found
    mi, total = _top_n_correct(trials, "mi")
    var, _ = _top_n_correct(trials, "var")
    var_std, _ = _top_n_correct(trials, "var_std")
    gain = _gain(trials, "informative")
    measured = (
        f"top-{n} by MI are the true informative latents in {mi}/{total} trials; "
        f"top-{n} by VAR (class-RMS std, GIN's code) in {var}/{total}, by VAR as plain std in "
        f"{var_std}/{total}"
    )
    if gain is not None:
        measured += f"; MCC on the informative latents minus the best baseline's: {_fmt(gain)}"
    ok = mi == total and var < total / 2 and (gain is None or bool(np.mean(gain) > BASELINE_MARGIN))
    return _claim(
        text,
        measured,
        _verdict(ok),
        f"holds if MI's top-{n} is the true set in every trial, VAR's (class-RMS) in fewer than half, "
        f"and the trained flow recovers the informative latents better than every baseline (raw x, "
        f"the untrained model, FastICA: mean MCC gain > {BASELINE_MARGIN}) "
        "(true set: the w dims matched to z by the Hungarian matching of |correlation|)",
        name,
    )


def _gain(trials: Sequence[TrialEvaluation | FitResults], key: str) -> list[float] | None:
    """Per trial: trained MCC (``all`` or ``informative``) minus the best baseline's; None for older runs."""
    if not all(t.value_added is not None for t in trials):
        return None
    return [getattr(t.value_added, f"mcc_{key}").added for t in trials]  # type: ignore[union-attr]


def _scored_representations(trial: TrialEvaluation | FitResults) -> list[tuple[str, Mcc, dict[str, bool]]]:
    """``(name, mcc, top_n_correct by order)`` of the trained flow and of each baseline of one trial."""
    assert trial.mcc is not None and trial.recovery is not None and trial.baselines is not None
    trained = {o: trial.recovery[o].top_n_correct for o in ("mi", "var", "var_std")}
    return [("trained GIN", trial.mcc, trained)] + [
        (name, b.mcc, b.top_n_correct) for name, b in trial.baselines.items()
    ]


def value_added_rows(results: dict[str, Any]) -> list[list[str]]:
    """The report's first table: the trained flow beside each baseline, per setting (mean ± std over trials)."""
    rows = []
    runs: list[tuple[str, Sequence[TrialEvaluation | FitResults]]] = [
        (name, [t.evaluation for t in run.trials]) for name, run in _settings(results).items()
    ]
    if not runs and "value_added" in results:  # fit on a file with true latents
        runs = [("this run", [FitResults.from_json(results)])]
    for name, trials in runs:
        if not all(t.value_added is not None for t in trials):
            continue
        per_trial = [{who: (mcc, tops) for who, mcc, tops in _scored_representations(t)} for t in trials]
        for who in per_trial[0]:
            scored = [p[who] for p in per_trial]
            tops = [f"{sum(top[o] for _, top in scored)}/{len(scored)}" for o in ("mi", "var", "var_std")]
            rows.append([name, who, _fmt([m.informative for m, _ in scored]), _fmt([m.all for m, _ in scored]), *tops])
        rows.append(
            [
                name,
                "value added (trained - best baseline)",
                _fmt(_gain(trials, "informative") or []),
                _fmt(_gain(trials, "all") or []),
                "",
                "",
                "",
            ]
        )
    return rows


def _claim_sharp_drop(text: str, settings: Settings, n: int) -> Claim:
    from ginmi.selection import sharp_drop

    found = _find_setting(settings, "high", "trainable")
    if found is None:
        return _missing(text, "high-noise trainable (main)")
    name, trials = found
    decays = [t.criteria["mi"].sorted_scores for t in trials]
    at_n, total = _count(decays, lambda d: sharp_drop(np.asarray(d)) == n)
    ratios = [d[n - 1] / max(d[n], 1e-3) for d in decays]
    measured = (
        f"largest drop of the sorted MI at rank {n} -> {n + 1} in {at_n}/{total} trials; "
        f"MI(rank {n}) / max(MI(rank {n + 1}), 0.001) = {_fmt(ratios, 1)}"
    )
    return _claim(
        text,
        measured,
        _verdict(at_n == total),
        f"holds if the largest log-drop of the sorted MI (ginmi's sharp-drop rule) is between "
        f"rank {n} and {n + 1} in every trial",
        name,
    )


def _claim_classification(text: str, settings: Settings, n: int) -> Claim:
    found = _find_setting(settings, "high", "trainable")
    if found is None:
        return _missing(text, "high-noise trainable (main)")
    name, trials = found
    mi_n = _accuracy(trials, "mi", n)
    bound = np.array([t.accuracy_vs_k.bayes_bound for t in trials])
    gaps = [_accuracy(trials, "mi", k).mean() - _accuracy(trials, "var", k).mean() for k in range(1, n + 1)]
    parts = [f"accuracy with the top-{n} MI dims {_fmt(mi_n)}, Bayes bound {_fmt(bound)}"]
    parts += [
        f"k={k}: MI {_fmt(_accuracy(trials, 'mi', k))} vs VAR {_fmt(_accuracy(trials, 'var', k))}"
        for k in range(1, n + 1)
    ]
    ok = mi_n.mean() >= bound.mean() - NEAR_BAYES and min(gaps) >= VAR_GAP_ACCURACY
    return _claim(
        text,
        "; ".join(parts),
        _verdict(ok),
        f"holds if the mean accuracy with the top-{n} MI dims is within {NEAR_BAYES} of the mean "
        f"Bayes bound and VAR's mean accuracy is at least {VAR_GAP_ACCURACY} below MI's at every "
        f"k <= {n} (held-out test set)",
        name,
    )


def _claim_auroc(text: str, settings: Settings, n: int) -> Claim:
    found = _find_setting(settings, "high", "trainable")
    if found is None:
        return _missing(text, "high-noise trainable (main)")
    name, trials = found
    gaps = [_auroc(trials, "mi", k).mean() - _auroc(trials, "var", k).mean() for k in range(1, n + 1)]
    parts = [
        f"k={k}: AUROC MI {_fmt(_auroc(trials, 'mi', k))} vs VAR {_fmt(_auroc(trials, 'var', k))}"
        for k in range(1, n + 1)
    ]
    return _claim(
        text,
        "; ".join(parts),
        _verdict(min(gaps) >= MI_GAP_AUROC),
        f"holds if MI's mean AUROC exceeds VAR's by at least {MI_GAP_AUROC} at every k <= {n} "
        "(test set: as many Eq. 17 outliers as normal samples)",
        name,
    )


def _distortion(trials: Sequence[TrialEvaluation]) -> np.ndarray:
    """Per trial: spread of the log10 std ratios of matched dims over the spread of the true stds' log10."""
    return np.array([t.std_preservation.log10_ratio_range / t.std_preservation.log10_true_std_range for t in trials])


def _claim_low_noise(text: str, settings: Settings, n: int) -> Claim:
    found = _find_setting(settings, "low", "trainable")
    if found is None:
        return _missing(text, "low-noise")
    name, trials = found
    var, total = _top_n_correct(trials, "var")
    mi, _ = _top_n_correct(trials, "mi")
    distortion = _distortion(trials)
    ratios = np.array([t.std_preservation.ratio for t in trials])
    measured = (
        f"top-{n} by VAR are the true informative latents in {var}/{total} trials (MI: {mi}/{total}); "
        f"std(w_j)/std(matched true latent) from {ratios.min():.2f} to {ratios.max():.2f}; spread of "
        f"their log10 / spread of the true stds' log10 = {_fmt(distortion, 2)}"
    )
    ok = var > total / 2 and float(np.median(distortion)) <= STD_DISTORTION
    high = _find_setting(settings, "high", "trainable")
    if high is not None:
        measured += f" (high noise: {_fmt(_distortion(high[1]), 2)})"
    return _claim(
        text,
        measured,
        _verdict(ok),
        f"holds if VAR's top-{n} is the true set in more than half the low-noise trials and, in the "
        f"median trial, the std ratios of matched dims spread over at most {STD_DISTORTION} of the "
        "decades the true stds spread over (stds of w are in units of the standardised data, so "
        "only the spread of the ratios counts)",
        name,
    )


def _claim_permutation(text: str, settings: Settings, n: int) -> Claim:
    found = _find_setting(settings, "high", "trainable")
    if found is None:
        return _missing(text, "high-noise trainable (main)")
    name, trials = found
    values = np.array([t.mcc.all for t in trials])
    inf = np.array([t.mcc.informative for t in trials])
    gain = _gain(trials, "all")
    measured = (
        f"MCC over all {len(trials[0].correlation)} dims {_fmt(values)} (min {values.min():.3f}); "
        f"informative dims {_fmt(inf)}"
    )
    if gain is not None:
        measured += f"; MCC over all dims minus the best baseline's: {_fmt(gain)}"
    ok = bool(values.min() >= MCC_PERMUTATION) and (gain is None or bool(np.mean(gain) > BASELINE_MARGIN))
    return _claim(
        text,
        measured,
        _verdict(ok),
        f"holds if the MCC (mean |correlation| of the best one-to-one matching of w to (z, eps), "
        f"1 = a scaled permutation) is at least {MCC_PERMUTATION} in every trial and above every "
        f"baseline's (mean gain > {BASELINE_MARGIN})",
        name,
    )


def _claim_batch(text: str, settings: Settings, n: int) -> Claim:
    parts, oks = [], []
    for noise in ("high", "low"):
        a, b = _find_setting(settings, noise, "trainable"), _find_setting(settings, noise, "batch")
        if a is None or b is None:
            continue
        rows: dict[str, dict[str, Any]] = {}
        for label, (_, trials) in (("trainable", a), ("batch", b)):
            rec, total = _top_n_correct(trials, "mi")
            rows[label] = {
                "rec": rec / total,
                "rec_text": f"{rec}/{total}",
                "acc": _accuracy(trials, "mi", n),
                "auc": _auroc(trials, "mi", n),
                "mcc": np.array([t.mcc.all for t in trials]),
            }
        t, s = rows["trainable"], rows["batch"]
        oks.append(
            t["rec"] == s["rec"]
            and abs(t["acc"].mean() - s["acc"].mean()) <= SAME_ACCURACY
            and abs(t["auc"].mean() - s["auc"].mean()) <= SAME_ACCURACY
            and abs(t["mcc"].mean() - s["mcc"].mean()) <= SAME_MCC
        )
        parts.append(
            f"{noise} noise, trainable vs batch: MI top-{n} correct {t['rec_text']} vs {s['rec_text']}, "
            f"accuracy {_fmt(t['acc'])} vs {_fmt(s['acc'])}, AUROC {_fmt(t['auc'])} vs {_fmt(s['auc'])}, "
            f"MCC {_fmt(t['mcc'])} vs {_fmt(s['mcc'])}"
        )
    if not parts:
        return _missing(text, "batch-stats")
    return _claim(
        text,
        "; ".join(parts),
        _verdict(all(oks)),
        f"holds if, at every noise level run with both, the MI recovery rate is equal, the mean accuracy "
        f"and AUROC with the top-{n} MI dims differ by at most {SAME_ACCURACY} and the mean MCC by at "
        f"most {SAME_MCC}",
        "batch-stats vs trainable",
    )


_SYNTHETIC_RULES = [
    _claim_recovery,
    _claim_sharp_drop,
    _claim_classification,
    _claim_auroc,
    _claim_low_noise,
    _claim_permutation,
    _claim_batch,
]


def synthetic_claims(settings: Settings, n_informative: int) -> list[Claim]:
    """Each claim of the paper's synthetic study with our measured numbers and a verdict.

    The claims are those of ``reported_results.json["synthetic"]["claims"]``, in order; each has a
    rule (returned with it) computed from the trials of ``settings`` (with ``n_informative`` true
    informative latents).
    """
    claims = reported_results()["synthetic"]["claims"]
    if len(claims) != len(_SYNTHETIC_RULES):
        raise ValueError(
            f"reported_results.json lists {len(claims)} synthetic claims, ginmi has rules for "
            f"{len(_SYNTHETIC_RULES)}; update ginmi.app.report"
        )
    if not settings:
        return [_claim(c, "no trials in results.json", NOT_EVALUATED, "") for c in claims]
    return [rule(text, settings, n_informative) for text, rule in zip(claims, _SYNTHETIC_RULES)]


def evaluate_claims(results: dict[str, Any]) -> list[dict[str, str]]:
    """:func:`synthetic_claims` of the ``results.json`` content of a synthetic run, as JSON objects."""
    return [c.to_json() for c in synthetic_claims(_settings(results), _n_inf(results))]


Measure = Callable[[Sequence[SyntheticTrial]], str]
"""A row of the synthetic summary: the trials of one setting -> the table cell."""


def _mean_std(value: Callable[[SyntheticTrial], float], digits: int = 3) -> Measure:
    """Mean ± std over the trials of one number per trial."""
    return lambda trials: _fmt([value(t) for t in trials], digits)


def _rate(hit: Callable[[TrialEvaluation], bool]) -> Measure:
    """``hits/trials``: in how many trials a test holds."""
    return lambda trials: "{}/{}".format(*_count([t.evaluation for t in trials], hit))


def _entry(curves: Callable[[TrialEvaluation], OrderCurves], order: str, k: int) -> Callable[[SyntheticTrial], float]:
    """Entry ``k`` (1-based; -1: the last) of a trial's curve of ``order``."""
    return lambda t: getattr(curves(t.evaluation), order)[k - 1 if k > 0 else k]


def synthetic_summary(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The numbers table of a synthetic run: rows = measures, columns = settings (mean ± std over trials)."""
    runs = _settings(results)
    n = _n_inf(results)
    header = ["measure"] + [
        f"{v} (noise std {r.noise_std:g}, {r.stats}, {len(r.trials)} trials)" for v, r in runs.items()
    ]
    accuracy: Callable[[TrialEvaluation], OrderCurves] = lambda e: e.accuracy_vs_k  # noqa: E731
    auroc: Callable[[TrialEvaluation], OrderCurves] = lambda e: e.auroc_vs_k  # noqa: E731
    measures: list[tuple[str, Measure]] = [
        (f"{label} top-{n} = true informative (trials)", _rate(functools.partial(_recovered, order=order)))
        for label, order in (("MI", "mi"), ("VAR", "var"), ("VAR(std)", "var_std"))
    ]
    measures += [
        ("MI selected set = true (trials)", _rate(lambda e: e.recovery["mi"].selected_correct)),
        ("MCC, all dims", _mean_std(lambda t: t.evaluation.mcc.all)),
        ("MCC, informative dims", _mean_std(lambda t: t.evaluation.mcc.informative)),
    ]
    measures += [
        (f"accuracy {o.upper()}, k={k}", _mean_std(_entry(accuracy, o, k)))
        for k in sorted({1, n})
        for o in ("mi", "var")
    ]
    measures += [
        ("Bayes bound (true mixture, true latents)", _mean_std(lambda t: t.evaluation.accuracy_vs_k.bayes_bound)),
        ("accuracy, all dims", _mean_std(_entry(accuracy, "mi", -1))),
    ]
    measures += [
        (f"AUROC {o.upper()}, k={k}", _mean_std(_entry(auroc, o, k))) for k in sorted({1, n}) for o in ("mi", "var")
    ]
    measures += [
        ("AUROC, all dims", _mean_std(_entry(auroc, "mi", -1))),
        ("std ratio w / true: log10 spread", _mean_std(lambda t: t.evaluation.std_preservation.log10_ratio_range, 2)),
        ("true stds: log10 spread", _mean_std(lambda t: t.evaluation.std_preservation.log10_true_std_range, 2)),
        ("final training loss", _mean_std(lambda t: t.training.final_loss)),
        ("training seconds per model", _mean_std(lambda t: t.timing.train_seconds, 1)),
    ]
    rows = [[label] + [measure(r.trials) for r in runs.values()] for label, measure in measures]
    return header, rows


# ----------------------------------------------------------------------------------------------
# HTML

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;
color:#222;padding:0 1em;line-height:1.4}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:0.6em 0;font-size:0.88em}
th,td{border:1px solid #ccc;padding:0.25em 0.5em;text-align:left;vertical-align:top}
th{background:#f2f2f2}td.num{text-align:right;font-variant-numeric:tabular-nums}
.holds{background:#e3f5e1}.does-not-hold{background:#fbe3e3}.not-evaluated{background:#f4f4f4;color:#666}
figure{margin:1.2em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:0.88em;color:#444}
code{background:#f4f4f4;padding:0 0.2em}.small{font-size:0.85em;color:#555}
"""


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:.4g}" if math.isfinite(value) else str(value)
        return f'<td class="num">{_esc(text)}</td>'
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return f'<td class="num">{value}</td>'
    if isinstance(value, (list, tuple)):
        value = json.dumps(value) if len(json.dumps(value)) < 400 else json.dumps(value)[:400] + " ..."
    return f"<td>{_esc(value)}</td>"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], css_id: str = "") -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in rows)
    ident = f' id="{css_id}"' if css_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _claims_html(claims: list[Claim]) -> str:
    rows = []
    for c in claims:
        cls = c.verdict.replace(" ", "-")
        rows.append(
            f'<tr class="{cls}"><td>{_esc(c.claim)}</td><td>{_esc(c.setting or "")}</td>'
            f"<td>{_esc(c.measured)}</td><td><b>{_esc(c.verdict)}</b></td>"
            f'<td class="small">{_esc(c.rule)}</td></tr>'
        )
    head = "".join(f"<th>{h}</th>" for h in ("claim of the paper", "setting", "our numbers", "verdict", "rule"))
    return f'<table id="claims"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _leaves(tree: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    if isinstance(tree, dict):
        out = []
        for key, value in tree.items():
            out += _leaves(value, prefix + (str(key),))
        return out
    return [(prefix, tree)]


def _lookup(tree: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


_QUANTITY_WORDS = {
    "mi": "MI",
    "var": "VAR",
    "var_std": "VAR(std)",
    "best_k": "best k (number of top latents)",
    "best_accuracy": "test accuracy at the best k",
    "auroc": "OOD AUROC with the best-k latents",
    "pass_rate": "pass rate (not rejected)",
    "error_rate_without_defence": "error rate without defence",
    "passed_error_rate": "error rate of the passed",
    "error_rate_with_defence": "error rate with defence",
}


def _quantity_label(path: Sequence[str]) -> str:
    """A reader's name for a results path: ``fgsm.mi.0.001.pass_rate`` -> ``FGSM eta = 0.001, MI dims: pass
    rate (not rejected)``, ``best_k.mi`` -> ``best k (number of top latents), MI``."""
    words = [_QUANTITY_WORDS.get(p, p.replace("_", " ")) for p in path]
    if len(path) == 4 and path[0] == "fgsm":
        return f"FGSM eta = {path[2]}, {words[1]} dims: {words[3]}"
    return ", ".join(words)


def _paper_rows(results: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for path, value in _leaves(results.get("paper", {})):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            ours = _lookup(results, path)
            rows.append([_quantity_label(path), value, ours if isinstance(ours, (int, float)) else "n/a"])
    return rows


def _same_data(a: Any, b: Any) -> bool:
    norm = lambda v: "".join(ch for ch in str(v).lower() if ch.isalnum())  # noqa: E731
    return norm(a) == norm(b)


def _paper_caveat(results: dict[str, Any]) -> tuple[str, str, str]:
    """The paragraph above the paper's numbers and the two column names: it says which data each
    side comes from, and warns when this run's data are not the paper's."""
    paper, data = results.get("paper", {}), results.get("data", {})
    theirs, ours = paper.get("dataset"), data.get("dataset")
    if not theirs or not ours:
        return "", "paper", "this run"
    text = (
        f"The paper's numbers are for {theirs} (outliers: {paper.get('ood', 'n/a')}); this run's for {ours} "
        f"(outliers: {data.get('ood', 'n/a')})."
    )
    if not _same_data(theirs, ours):
        text = (
            f"<b>Different data.</b> {_esc(text)} The paper reports nothing for {_esc(ours)}: its column is a "
            "point of reference for the order of magnitude, not a number this run should reach, and a gap "
            "is no verdict on the method."
        )
    else:
        text = _esc(text)
    return f'<p class="caveat">{text}</p>', f"paper ({theirs})", f"this run ({ours})"


def _curve_tables(results: dict[str, Any]) -> str:
    parts = []
    for key, label in (("accuracy_vs_k", "test accuracy"), ("auroc_vs_k", "AUROC")):
        curves = results.get(key)
        if not isinstance(curves, dict):
            continue
        where = curves.get("evaluated_on")
        if key == "accuracy_vs_k" and where is not None:  # fit: the test file, else the training data
            label = "training accuracy" if where == "training data" else "test accuracy"
        orders = [o for o in ("mi", "var") if isinstance(curves.get(o), list)]
        if not orders:
            continue
        agg = results.get("aggregate", {}).get(key, {})
        length = len(curves[orders[0]])
        ks = curves.get("ks") or list(range(1, length + 1))
        header = ["k"] + [f"{label}, {o.upper()} order" for o in orders]
        rows = []
        for i, k in enumerate(ks):
            row: list[Any] = [k]
            for o in orders:
                a = agg.get(o)
                if a and a.get("n", 1) > 1:
                    row.append(f"{a['mean'][i]:.4f} ± {a['std'][i]:.4f}")
                else:
                    row.append(float(curves[o][i]))
            rows.append(row)
        extra = ""
        if "bayes_bound" in curves:
            b = agg.get("bayes_bound")
            bound = f"{b['mean']:.4f} ± {b['std']:.4f}" if b and b.get("n", 1) > 1 else f"{curves['bayes_bound']:.4f}"
            extra = f"<p>Bayes bound (true mixture on the true latents): {_esc(bound)}</p>"
        note = " (mean ± std over trials of the primary setting)" if agg.get(orders[0], {}).get("n", 1) > 1 else ""
        if where == "training data":
            extra += (
                "<p>Accuracy on the training data (no <code>--test-data</code> given): it rewards "
                "overfitting and is no estimate of the accuracy on new data.</p>"
            )
        elif where is not None:
            extra += f"<p>Evaluated on {_esc(where)}.</p>"
        if key == "auroc_vs_k" and "outliers" in curves:
            extra += (
                f"<p>Normal: {_esc(curves.get('normal', ''))}; outliers: {_esc(curves['outliers'])} "
                f"({_esc(curves.get('n_outliers', ''))} samples).</p>"
            )
        parts.append(f"<h3>{_esc(label)} vs k{_esc(note)}</h3>" + _table(header, rows, css_id=key) + extra)
    return "".join(parts)


def _criteria_table(results: dict[str, Any]) -> str:
    criteria = results.get("criteria")
    if not isinstance(criteria, dict):
        return ""
    rows = []
    for name, c in criteria.items():
        order = c.get("order", [])
        rows.append([name.upper(), order[:20], c.get("selected", [])[:50], c.get("reason", "")])
    return _table(["criterion", "order (first 20 dims of w)", "selected", "threshold"], rows, css_id="criteria")


def _figure_key(path: Path) -> tuple[int, str]:
    for i, prefix in enumerate(_FIGURE_ORDER):
        if path.name.startswith(prefix):
            return i, path.name
    return len(_FIGURE_ORDER), path.name


def _caption(path: Path, results: dict[str, Any] | None = None) -> str:
    """The caption of a figure: the command's own (fit, images), else the synthetic study's."""
    names, prefixes = FIGURE_CAPTIONS, _FIGURE_PREFIX_CAPTIONS
    if results and results.get("command") in ("fit", "images"):
        names, prefixes = _command_captions(results)
    if path.name in names:
        return names[path.name]
    for prefix, text in prefixes.items():
        if path.name.startswith(prefix):
            rest = path.stem[len(prefix) :].strip("_")
            return f"{text}{f' ({rest})' if rest else ''}."
    return path.stem.replace("_", " ")


def _figures_html(run_dir: Path, results: dict[str, Any] | None = None) -> str:
    paths = sorted((run_dir / "figures").glob("*.png"), key=_figure_key) if (run_dir / "figures").is_dir() else []
    parts = []
    for path in paths:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        parts.append(
            f'<figure><img alt="{_esc(path.name)}" src="data:image/png;base64,{data}">'
            f"<figcaption><b>{_esc(path.name)}</b>: {_esc(_caption(path, results))}</figcaption></figure>"
        )
    return "".join(parts) or "<p>No figures in this run folder.</p>"


def _flat_numbers(tree: Any) -> list[list[Any]]:
    return [[_quantity_label(p), v] for p, v in _leaves(tree) if not isinstance(v, (list, dict))]


def write_report(run_dir: str | Path, results: dict[str, Any] | None = None) -> Path:
    """Write ``run_dir/report.html`` from ``run_dir/results.json`` (or ``results``) and ``run_dir/figures``.

    The page is self-contained: figures are embedded as base64 PNG data URIs and nothing is
    loaded from elsewhere. Returns the path written.
    """
    run_dir = Path(run_dir)
    if results is None:
        path = run_dir / "results.json"
        if not path.is_file():
            raise FileNotFoundError(f"no results.json in {run_dir}; is it a ginmi run folder?")
        results = json.loads(path.read_text())
    command = results.get("command", "run")
    sections: list[str] = []
    settings = _settings(results) if command == "synthetic" else {}
    claims = (
        synthetic_claims(settings, _n_inf(results))
        if command == "synthetic"
        else [Claim.from_json(c) for c in results.get("claims") or []]
    )
    if claims:
        counts = {v: sum(c.verdict == v for c in claims) for v in (HOLDS, DOES_NOT_HOLD, NOT_EVALUATED)}
        sections.append(
            "<h2>The paper's claims beside our numbers</h2>"
            f"<p>{counts[HOLDS]} hold, {counts[DOES_NOT_HOLD]} do not hold, {counts[NOT_EVALUATED]} "
            "not evaluated in this run. Each verdict follows the rule in the last column, applied to "
            "this run's numbers (held-out test sets; mean ± std over trials).</p>" + _claims_html(claims)
        )
    paper_rows = _paper_rows(results)
    if paper_rows:
        caveat, theirs, ours = _paper_caveat(results)
        sections.append(
            "<h2>The paper's numbers beside ours</h2>"
            + caveat
            + _table(["quantity", theirs, ours], paper_rows, css_id="paper")
        )
    added = value_added_rows(results)
    if added:
        n = _n_inf(results)
        sections.insert(
            0,
            "<h2>What training adds</h2><p>The trained flow beside what one gets without it: the raw "
            "data x, the same model at initialisation, and FastICA on x. MCC on the held-out test set (synthetic) "
            "or on the training data (fit); "
            f"top-{n}: trials in which the top-{n} coordinates by MI, by VAR (class-RMS std) and by the "
            "plain std are exactly those matched to the informative latents. A result a baseline also "
            "reaches is not a result of training.</p>"
            + _table(
                [
                    "setting",
                    "representation",
                    "MCC informative",
                    "MCC all",
                    f"MI top-{n}",
                    f"VAR top-{n}",
                    f"VAR(std) top-{n}",
                ],
                added,
                css_id="value-added",
            ),
        )
    if isinstance(results.get("baselines"), dict) and "accuracy" in results["baselines"]:
        base = ImageBaselines.from_json(results["baselines"])
        table = [
            [name, base.models.get(name, ""), acc, base.auroc.get(name, "")] for name, acc in base.accuracy.items()
        ]
        sections.append(
            "<h2>Baselines on the same split</h2><p>What a user would try instead, fitted on the "
            "same training images and scored on the same test (and OOD) images.</p>"
            + _table(["baseline", "model", "test accuracy", "OOD AUROC"], table, css_id="baselines")
        )
    if settings:
        header, rows = synthetic_summary(results)
        sections.append(
            "<h2>Summary of every setting</h2><p>Mean ± sample std over trials (seeds "
            f"{_esc(sorted({t.seed for r in settings.values() for t in r.trials}))})."
            "</p>" + _table(header, rows, css_id="summary")
        )
    curves = _curve_tables(results)
    criteria = _criteria_table(results)
    if curves or criteria:
        sections.append("<h2>Selection and downstream tasks</h2>" + criteria + curves)
    sections.append("<h2>Figures</h2>" + _figures_html(run_dir, results))
    if isinstance(results.get("config"), dict):
        sections.append(
            "<h2>Configuration</h2>"
            + _table(["option", "value"], [[k, v] for k, v in results["config"].items()], "config")
        )
    if isinstance(results.get("timing"), dict):
        sections.append("<h2>Timings</h2>" + _table(["stage", "value"], _flat_numbers(results["timing"]), "timing"))
    if isinstance(results.get("environment"), dict):
        sections.append(
            "<h2>Environment</h2>" + _table(["item", "value"], _flat_numbers(results["environment"]), "environment")
        )
    files = sorted(
        str(p.relative_to(run_dir))
        for p in run_dir.rglob("*")
        if p.is_file() and p.name != "report.html" and "figures" not in p.parts
    )
    sections.append("<h2>Files of this run</h2><p class='small'>" + ", ".join(_esc(f) for f in files) + "</p>")
    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    title = f"ginmi {command}: {run_dir.name}"
    page = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style></head><body>'
        f"<h1>{_esc(title)}</h1><p class='small'>Report written {now} from <code>results.json</code>. "
        f"Rebuild with <code>ginmi report {_esc(run_dir)}</code>.</p>" + "".join(sections) + "</body></html>"
    )
    out = run_dir / "report.html"
    atomic_write_text(out, page)
    return out


FigureWriter = Callable[[Path, dict[str, Any]], Sequence[Path]]


def rebuild(
    run_dir: str | Path, *, figures: bool = True, writers: Mapping[str, FigureWriter] | None = None
) -> tuple[Path, int]:
    """Redraw the figures of a run folder with ``writers[command](run_dir, results)`` (the command's
    figure writer, which loads the saved model(s): no training) when there is one, and write
    ``report.html``. Returns the report path and the number of figures redrawn."""
    run_dir = Path(run_dir)
    path = run_dir / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"no results.json in {run_dir}; give the folder of a ginmi run")
    results = json.loads(path.read_text())
    redrawn = 0
    writer = (writers or {}).get(results.get("command", ""))
    if figures and writer is not None:
        redrawn = len(writer(run_dir, results) or [])
    return write_report(run_dir, results), redrawn


@dataclass
class ReportConfig:
    """Options of ``ginmi report RUN_DIR``."""

    run_dir: str = option("", "a run folder (with results.json)", cli=False)
    figures: bool = option(True, "redraw the figures from results.json and the saved model(s) first")


def run_report(config: ReportConfig, writers: Mapping[str, FigureWriter] | None = None) -> dict[str, Any]:
    """``ginmi report``: redraw the figures (``writers``: each command's figure writer) and write
    ``report.html`` (no training)."""
    path, redrawn = rebuild(config.run_dir, figures=config.figures, writers=writers)
    return ReportResult(report=str(path), figures_redrawn=redrawn).to_json()
