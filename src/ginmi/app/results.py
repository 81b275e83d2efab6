"""Typed results: what each command returns and writes to ``results.json``, defined in code.

Every record is a dataclass whose fields are the keys of the JSON object, in the order written,
each with its meaning (``metadata["doc"]``). :meth:`Record.to_json` gives the exact dict written
to ``results.json`` and :meth:`Record.from_json` reads one back (keys it does not know are
ignored; keys marked optional may be missing, as in runs of older versions or of other options).
:func:`schema_markdown` renders a command's schema as a Markdown table, so the documentation of
``results.json`` is generated from these classes rather than kept beside them.

Field markers: ``optional`` keys are left out of the JSON when ``None``; ``each`` names the keys
of a ``{name: value}`` mapping in the schema (``criteria.<criterion>.scores``); ``inline`` writes
a record's keys into its parent object (the synthetic run's primary trial at the top level).

Example:
    >>> results = TransformResult(out="latents.npz", n_samples=3, selected=[1, 0])
    >>> TransformResult.from_json(results.to_json()) == results
    True
    >>> print(schema_markdown(TransformResult).splitlines()[2])
    | `out` | str | the file written |
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = [
    "Record",
    "entry",
    "schema_rows",
    "schema_markdown",
    "RESULTS",
    "Criterion",
    "ScoredCriterion",
    "SyntheticCriterion",
    "ImageCriterion",
    "Recovery",
    "Mcc",
    "BaselineRecovery",
    "AddedValue",
    "ValueAdded",
    "OrderCurves",
    "SyntheticAccuracy",
    "FitAccuracy",
    "FitAuroc",
    "ImageCurves",
    "RocCurves",
    "ImageRoc",
    "TrueLatents",
    "StdPreservation",
    "SyntheticDataInfo",
    "Training",
    "TrialTiming",
    "TrialEvaluation",
    "SyntheticTrial",
    "SyntheticVariant",
    "Primary",
    "RunTiming",
    "Claim",
    "SyntheticResults",
    "FitDataInfo",
    "FitTiming",
    "FitResults",
    "ImageDataInfo",
    "DefenceRow",
    "ImageBaselines",
    "ImageTraining",
    "ImageTiming",
    "ImagesResults",
    "TransformResult",
    "ReportResult",
]

R = TypeVar("R", bound="Record")


def entry(
    doc: str,
    *,
    optional: bool = False,
    each: tuple[str, ...] = (),
    inline: tuple[str, ...] | None = None,
    init: bool = True,
) -> Any:
    """A field of a record: its meaning ``doc``; ``optional``: may be absent (default None, not written
    when None); ``each``: the names of the keys of nested ``{name: ...}`` mappings, outermost first;
    ``inline``: write the record's keys into the parent's, except those named (``init=False``: a view
    the record computes itself)."""
    metadata = {"doc": doc, "optional": optional, "each": each, "inline": inline}
    if optional:
        return field(default=None, metadata=metadata)
    return field(metadata=metadata, init=init, repr=init, compare=init)


@dataclass(kw_only=True)
class Record:
    """Base of the typed results: a JSON object with one key per field, in field order."""

    def to_json(self) -> dict[str, Any]:
        """The JSON object written to ``results.json`` (plain dicts, lists and numbers)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata["inline"] is not None:
                out.update({k: v for k, v in value.to_json().items() if k not in f.metadata["inline"]})
            elif not (value is None and f.metadata["optional"]):
                out[f.name] = _to_json(value)
        return out

    @classmethod
    def from_json(cls: type[R], data: Mapping[str, Any]) -> R:
        """Read a record from its JSON object (e.g. of ``json.load``); raises ``ValueError`` naming a
        required key that is missing."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
        hints = _hints(cls)
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if not f.init:
                continue
            if f.metadata["inline"] is not None:
                kwargs[f.name] = _from_json(hints[f.name], data)
            elif f.name in data:
                kwargs[f.name] = _from_json(hints[f.name], data[f.name])
            elif not f.metadata["optional"]:
                raise ValueError(
                    f"{cls.__name__}: the results lack the key {f.name!r}; is this the "
                    "results.json of a ginmi run of this command?"
                )
        return cls(**kwargs)


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """The field types of a record class (resolved once: results hold many records of each class)."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _to_json(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    return value


def _unwrap_optional(tp: Any) -> Any:
    """``X`` of ``X | None``; other types as they are."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _is_record(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, Record)


def _from_json(tp: Any, value: Any) -> Any:
    if value is None:
        return None
    tp = _unwrap_optional(tp)
    if _is_record(tp):
        return tp.from_json(value)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is dict and args and _needs_conversion(args[1]):
        return {k: _from_json(args[1], v) for k, v in value.items()}
    if origin is list and args and _needs_conversion(args[0]):
        return [_from_json(args[0], v) for v in value]
    return value


def _needs_conversion(tp: Any) -> bool:
    """Whether values of type ``tp`` hold records (else JSON values are taken as they are)."""
    tp = _unwrap_optional(tp)
    return _is_record(tp) or any(_needs_conversion(a) for a in typing.get_args(tp))


# ----------------------------------------------------------------------------------------------
# the schema, from the fields


def _type_name(tp: Any) -> str:
    """A reader's name of a field type: ``list[float]``, ``{str: object}``, ``str or null``."""
    if _is_record(tp):
        return "object"
    if tp is Any:
        return "any"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _type_name(a) for a in args)
    if origin is dict:
        return f"{{str: {_type_name(args[1])}}}"
    if origin is list:
        return f"list[{_type_name(args[0])}]"
    return getattr(tp, "__name__", str(tp))


def schema_rows(cls: type[Record], prefix: str = "") -> list[tuple[str, str, str]]:
    """``(key path, type, meaning)`` of every key a record of ``cls`` can hold, depth first; keys of
    ``{name: ...}`` mappings appear as ``<name>``, list items as ``[]``
    (``variants.<variant>.trials[].seed``)."""
    rows: list[tuple[str, str, str]] = []
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        tp = _unwrap_optional(hints[f.name])
        if f.metadata["inline"] is not None:
            rows += [
                row
                for row in schema_rows(tp, prefix)
                if row[0][len(prefix) :].split(".")[0].split("[")[0] not in f.metadata["inline"]
            ]
            continue
        path = prefix + f.name
        doc = f.metadata["doc"] + (" (optional)" if f.metadata["optional"] else "")
        rows.append((path, _type_name(tp if f.metadata["optional"] else hints[f.name]), doc))
        names = list(f.metadata["each"])
        while True:  # through {name: ...} and list layers to a record, if any
            origin, args = typing.get_origin(tp), typing.get_args(tp)
            if origin is dict and names:
                path, tp = f"{path}.<{names.pop(0)}>", _unwrap_optional(args[1])
            elif origin is list:
                path, tp = f"{path}[]", _unwrap_optional(args[0])
            else:
                break
        if _is_record(tp):
            rows += schema_rows(tp, path + ".")
    return rows


def _cell(text: str) -> str:
    """Text safe in a Markdown table cell (``|`` would end it)."""
    return text.replace("|", "\\|")


def schema_markdown(cls: type[Record]) -> str:
    """The schema of a command's results (e.g. ``schema_markdown(SyntheticResults)``) as a Markdown
    table: key path, type, meaning."""
    lines = ["| key | type | meaning |", "|---|---|---|"]
    lines += [f"| `{path}` | {_cell(kind)} | {_cell(doc)} |" for path, kind, doc in schema_rows(cls)]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# parts shared by the commands

_ORDERS = "per order (mi, var, var_std)"


@dataclass(kw_only=True)
class Criterion(Record):
    """One selection criterion (:meth:`ginmi.selection.Selection.to_dict`)."""

    scores: list[float] = entry("the criterion's score of each dim of w")
    order: list[int] = entry("dims of w, best first")
    selected: list[int] = entry("the selected (informative) dims, in order")
    threshold: str = entry("the rule that chose the set (fdr, sharp-drop, max-curvature, top-k)")
    reason: str = entry("why that set: the rule and its numbers")


@dataclass(kw_only=True)
class ScoredCriterion(Criterion):
    """A criterion of ``fit`` and ``synthetic``: with the MI's test and VAR's definition."""

    pvalues: list[float] | None = entry("MI: permutation-test p-value of each dim", optional=True)
    q: float | None = entry("MI, fdr: the false-discovery rate", optional=True)
    min_score: float | None = entry("MI, fdr: the least MI a selected dim needs (nats)", optional=True)
    estimator: str | None = entry("MI: the estimator (knn, sklearn, gaussian)", optional=True)
    null_level: float | None = entry("MI: 95% quantile of the MI under shuffled labels", optional=True)
    max_permutations: int | None = entry("MI: the permutation budget of the adaptive test", optional=True)
    ci_low: list[float] | None = entry("MI: lower bootstrap bound of each dim's score (--bootstrap)", optional=True)
    ci_high: list[float] | None = entry("MI: upper bootstrap bound of each dim's score (--bootstrap)", optional=True)
    kind: str | None = entry("VAR: class-rms (GIN's class-RMS std) or std (the plain std)", optional=True)


@dataclass(kw_only=True)
class SyntheticCriterion(ScoredCriterion):
    """A criterion of one synthetic trial, with its sorted scores (the decay figures)."""

    sorted_scores: list[float] = entry("the scores sorted, largest first")


@dataclass(kw_only=True)
class ImageCriterion(Criterion):
    """A criterion of an ``images`` run: the top best-``k`` dims of its order."""

    n_samples: int | None = entry("MI: training latents the scores were computed on", optional=True)
    estimator: str | None = entry("MI: the estimator (knn, sklearn, gaussian)", optional=True)
    kind: str | None = entry("VAR: class-rms or std", optional=True)


@dataclass(kw_only=True)
class Recovery(Record):
    """Whether a criterion found the w dims matched to the informative latents."""

    top_n: list[int] = entry("its first n dims (n = number of informative latents)")
    top_n_correct: bool = entry("whether they are the matched dims")
    selected_correct: bool = entry("whether its selected set is")


@dataclass(kw_only=True)
class Mcc(Record):
    """Mean correlation coefficient of the best one-to-one matching of a representation to the true latents."""

    all: float = entry("over all true latents")
    informative: float = entry("over the informative ones")


@dataclass(kw_only=True)
class BaselineRecovery(Record):
    """The recovery measures of a representation without training (:func:`ginmi.tasks.identifiability.recovery`)."""

    mcc: Mcc = entry("MCC of its coordinates")
    top_n_correct: dict[str, bool] = entry(f"{_ORDERS}: whether its top n coordinates are the matched ones")


@dataclass(kw_only=True)
class AddedValue(Record):
    """The trained flow's MCC minus the best baseline's."""

    trained: float = entry("MCC of the trained flow")
    best_baseline: str = entry("name of the baseline with the highest MCC")
    baseline: float = entry("its MCC")
    added: float = entry("trained minus baseline (positive: training helped)")


@dataclass(kw_only=True)
class ValueAdded(Record):
    """What training adds beyond the baselines (:func:`ginmi.tasks.recovery_baselines.value_added`)."""

    mcc_all: AddedValue = entry("on the MCC over all latents")
    mcc_informative: AddedValue = entry("on the MCC over the informative latents")


@dataclass(kw_only=True)
class OrderCurves(Record):
    """A measure against k: entry ``k - 1`` uses the top-k dims of each order."""

    mi: list[float] = entry("with the MI order")
    var: list[float] = entry("with the VAR order")
    var_std: list[float] | None = entry("with the order of the plain std", optional=True)


@dataclass(kw_only=True)
class SyntheticAccuracy(OrderCurves):
    """Test accuracy against k, and the best any classifier can do."""

    bayes_bound: float = entry("Bayes accuracy of the true mixture on the true latents")


@dataclass(kw_only=True)
class FitAccuracy(OrderCurves):
    """Accuracy against k on ``--test-data`` (else on the training data)."""

    evaluated_on: str = entry("the file evaluated, or 'training data'")


@dataclass(kw_only=True)
class FitAuroc(OrderCurves):
    """OOD AUROC against k, ``--ood-data`` against the evaluation data."""

    normal: str = entry("the normal samples: the test file or 'training data'")
    outliers: str = entry("the outlier file")
    n_outliers: int = entry("number of outliers")


@dataclass(kw_only=True)
class ImageCurves(Record):
    """A measure at each k of ``--k-grid``."""

    ks: list[int] = entry("the k grid (clipped to the dim)")
    mi: list[float] = entry("with the top-k dims of the MI order")
    var: list[float] = entry("with the top-k dims of the VAR order")


@dataclass(kw_only=True)
class RocCurves(Record):
    """ROC curves of OOD detection with the top-k dims of each order."""

    k: int = entry("dims used")
    fpr: list[float] = entry("false-positive rates (grid on 0..1)")
    mi: list[float] = entry("true-positive rates, MI order")
    var: list[float] = entry("true-positive rates, VAR order")
    var_std: list[float] | None = entry("true-positive rates, order of the plain std", optional=True)


@dataclass(kw_only=True)
class ImageRoc(Record):
    """ROC curves of OOD detection with each order's best-k dims."""

    fpr: list[float] = entry("false-positive rates (grid on 0..1)")
    mi: list[float] = entry("true-positive rates, MI order")
    var: list[float] = entry("true-positive rates, VAR order")


@dataclass(kw_only=True)
class Training(Record):
    """The training run."""

    epoch_loss: list[float] = entry("mean loss of each epoch")
    final_loss: float = entry("loss of the last epoch")


# ----------------------------------------------------------------------------------------------
# ginmi synthetic


@dataclass(kw_only=True)
class TrueLatents(Record):
    """Scores of the true latents (z, eps), for comparison with those of w."""

    std: list[float] = entry("std of each latent")
    mi: list[float] = entry("MI of each latent with u")
    var: list[float] = entry("VAR (class-RMS std, or --var-kind) of each latent")
    sorted_std: list[float] = entry("std sorted, largest first")
    sorted_var: list[float] | None = entry("VAR sorted, largest first", optional=True)
    sorted_mi: list[float] = entry("MI sorted, largest first")


@dataclass(kw_only=True)
class StdPreservation(Record):
    """Whether the flow keeps the latents' stds (Fig. 8), on the Hungarian matching of all dims."""

    w_dims: list[int] = entry("dims of w, one per true latent")
    latent_dims: list[int] = entry("the true latents they are matched to")
    ratio: list[float] = entry("std(w dim) / std(true latent) per pair")
    max_abs_log10_ratio: float = entry("largest |log10 ratio|")
    log10_ratio_range: float = entry("spread of the log10 ratios")
    log10_true_std_range: float = entry("spread of the true stds in decades")


@dataclass(kw_only=True)
class SyntheticDataInfo(Record):
    """The data of a trial."""

    max_abs_x: float = entry("largest |x|")
    n_samples: int = entry("training samples")
    n_test: int = entry("held-out test samples")
    n_outliers: int = entry("Eq. 17 outliers")
    checksum: float = entry("sum of x: checks the data regenerated for the figures")


@dataclass(kw_only=True)
class TrialTiming(Record):
    """Seconds of one trial."""

    train_seconds: float = entry("training")
    eval_seconds: float = entry("evaluation")
    device: str = entry("the device it trained on")


@dataclass(kw_only=True)
class TrialEvaluation(Record):
    """One trained model scored and evaluated on the synthetic ground truth
    (:func:`ginmi.app.synthetic.evaluate_trial`)."""

    criteria: dict[str, SyntheticCriterion] = entry(
        "the selection criteria: mi, var (class-RMS std or --var-kind), "
        "var_std (plain std), scored on the training data",
        each=("criterion",),
    )
    true_informative: list[int] = entry("indices of the informative true latents")
    informative_w_dims: list[int] = entry("dims of w matched to them (Hungarian matching of |correlation|)")
    recovery: dict[str, Recovery] = entry("per criterion: whether it finds the matched dims", each=("criterion",))
    correlation: list[list[float]] = entry("|Pearson| matrix on the test set, rows = dims of w, columns = true latents")
    mcc: Mcc = entry("MCC of w on the test set")
    baselines: dict[str, BaselineRecovery] | None = entry(
        "the same measures for the raw x, the untrained model and FastICA", optional=True, each=("baseline",)
    )
    value_added: ValueAdded | None = entry("the trained flow's MCC minus the best baseline's", optional=True)
    true_latents: TrueLatents = entry("scores of the true latents")
    std_preservation: StdPreservation = entry("std of matched w dims over the true latents' (Fig. 8)")
    accuracy_vs_k: SyntheticAccuracy = entry("test accuracy of the Bayes classifier (Eq. 6) against k")
    auroc_vs_k: OrderCurves = entry("OOD AUROC against k (test set against as many Eq. 17 outliers)")
    roc: RocCurves = entry("ROC curves with the top-n dims (n = number of informative latents)")
    data: SyntheticDataInfo = entry("sizes and checksum of the data")


@dataclass(kw_only=True)
class SyntheticTrial(Record):
    """One trained model of a synthetic run: its setting, seed, evaluation, training and timing."""

    variant: str = entry("its setting")
    trial: int = entry("its index in the setting")
    seed: int = entry("seed of data, initialisation and batching")
    model: str = entry("its model file, relative to the run folder")
    noise_std: float = entry("std of the noise latents")
    stats: str = entry("class statistics: trainable or batch")
    evaluation: TrialEvaluation = entry("the evaluation", inline=())
    training: Training = entry("the training run")
    timing: TrialTiming = entry("seconds")


@dataclass(kw_only=True)
class SyntheticVariant(Record):
    """One setting of the study: its trials and their aggregate."""

    noise_std: float = entry("std of the noise latents")
    stats: str = entry("class statistics: trainable or batch")
    trials: list[SyntheticTrial] = entry("one entry per trial")
    aggregate: dict[str, Any] = entry(
        "mean, sample std, min, max and n over the trials of every number of the trial "
        "entries (booleans as fractions, curves elementwise; per-dim values whose order "
        "differs between trials are left out)"
    )


@dataclass(kw_only=True)
class Primary(Record):
    """The trial whose entries are at the top level (its model is model.pt)."""

    variant: str = entry("its setting (the first)")
    trial: int = entry("its index (0)")


@dataclass(kw_only=True)
class RunTiming(Record):
    """Seconds of a synthetic run."""

    train_seconds: float = entry("training, all models")
    eval_seconds: float = entry("evaluation, all models")
    n_models: int = entry("models trained")
    parallel_jobs: int = entry("processes that trained them")
    figure_seconds: float | None = entry("drawing the figures", optional=True)
    total_seconds: float | None = entry("the whole run", optional=True)


@dataclass(kw_only=True)
class Claim(Record):
    """A claim of the paper with our number and a verdict (:func:`ginmi.app.report.evaluate_claims`)."""

    claim: str = entry("the claim")
    measured: str = entry("our numbers")
    verdict: str = entry("holds, does not hold or not evaluated")
    rule: str = entry("the rule of the verdict")
    setting: str | None = entry("the setting it was evaluated on", optional=True)


@dataclass(kw_only=True)
class SyntheticResults(Record):
    """``results.json`` of ``ginmi synthetic``: every trial of every setting; the primary trial's entries
    are repeated at the top level (without its timing)."""

    command: str = entry("synthetic")
    config: dict[str, Any] = entry("every option of the run (flat {option: value})")
    primary: Primary = entry("the trial shown at the top level")
    primary_trial: SyntheticTrial = entry("the primary trial's entries", inline=("timing",), init=False)
    aggregate: dict[str, Any] = entry("the primary setting's aggregate (see variants)")
    variants: dict[str, SyntheticVariant] = entry("each setting run", each=("variant",))
    timing: RunTiming = entry("seconds")
    environment: dict[str, Any] = entry("versions of ginmi, Python, torch, NumPy; device; platform; threads")
    claims: list[Claim] | None = entry("the paper's claims beside our numbers", optional=True)

    def __post_init__(self) -> None:
        self.primary_trial = self.variants[self.primary.variant].trials[self.primary.trial]

    @property
    def criteria(self) -> dict[str, SyntheticCriterion]:
        """The primary trial's criteria (``criteria`` at the top level, as in the other commands' results)."""
        return self.primary_trial.evaluation.criteria


# ----------------------------------------------------------------------------------------------
# ginmi fit


@dataclass(kw_only=True)
class FitDataInfo(Record):
    """The user's data file."""

    path: str = entry("the file")
    n_samples: int = entry("rows")
    n_features: int = entry("feature columns")
    feature_names: list[str] = entry("their names")
    classes: list[Any] = entry("the labels, in the order of the class indices")


@dataclass(kw_only=True)
class FitTiming(Record):
    """Seconds of a fit run."""

    train_seconds: float = entry("training")
    total_seconds: float | None = entry("the whole run", optional=True)


@dataclass(kw_only=True)
class FitResults(Record):
    """``results.json`` of ``ginmi fit``."""

    command: str = entry("fit")
    config: dict[str, Any] = entry("every option of the run (flat {option: value})")
    data: FitDataInfo = entry("the data file")
    criteria: dict[str, ScoredCriterion] = entry("the selection criteria: mi, var, var_std", each=("criterion",))
    accuracy_vs_k: FitAccuracy = entry("accuracy of the Bayes classifier (Eq. 6) against k")
    auroc_vs_k: FitAuroc | None = entry("OOD AUROC against k (with --ood-data)", optional=True)
    roc: RocCurves | None = entry(
        "ROC curves with the top-k dims, k = the size of the MI set (with --ood-data)", optional=True
    )
    feature_correlation: list[list[float]] = entry("|correlation| of each dim of w (rows) with each input feature")
    true_informative: list[int] | None = entry(
        "informative columns of the true latents (with array latent)", optional=True
    )
    informative_w_dims: list[int] | None = entry("dims of w matched to them", optional=True)
    recovery: dict[str, Recovery] | None = entry(
        "per criterion: whether it finds the matched dims", optional=True, each=("criterion",)
    )
    mcc: Mcc | None = entry("MCC of w on the training data", optional=True)
    baselines: dict[str, BaselineRecovery] | None = entry(
        "the same measures for the raw x, the untrained model and FastICA", optional=True, each=("baseline",)
    )
    value_added: ValueAdded | None = entry("the trained flow's MCC minus the best baseline's", optional=True)
    training: Training = entry("the training run")
    timing: FitTiming = entry("seconds")
    environment: dict[str, Any] = entry("versions of ginmi, Python, torch, NumPy; device; platform; threads")


# ----------------------------------------------------------------------------------------------
# ginmi images


@dataclass(kw_only=True)
class ImageDataInfo(Record):
    """The images of a run."""

    dataset: str = entry("training set: a data set name or the --data file")
    ood: str = entry("the OOD set")
    classes: list[Any] = entry("class names")
    n_train: int = entry("training images")
    n_test: int = entry("test images")
    n_ood: int = entry("OOD images")
    image_shape: list[int] = entry("(C, H, W)")


@dataclass(kw_only=True)
class DefenceRow(Record):
    """FGSM attack and rejection defence at one step size (:func:`ginmi.tasks.adversarial.evaluate_defence`)."""

    error_rate_without_defence: float = entry("error rate on the attacked images")
    pass_rate: float = entry("fraction not rejected")
    passed_error_rate: float = entry("error rate of those passed (NaN if none)")
    error_rate_with_defence: float = entry("wrong and passed, over all")
    n_samples: int = entry("images attacked")
    n_passed: int = entry("images passed")


@dataclass(kw_only=True)
class ImageBaselines(Record):
    """scikit-learn models on the same split (:func:`ginmi.tasks.baselines.image_baselines`)."""

    accuracy: dict[str, float] = entry("test accuracy per baseline")
    auroc: dict[str, float] = entry("OOD AUROC of the density baselines (pca_qda)")
    seconds: dict[str, float] = entry("fitting seconds per baseline")
    models: dict[str, str] = entry("what each baseline is")


@dataclass(kw_only=True)
class ImageTraining(Record):
    """The training run (none with --model-path)."""

    epochs: int = entry("epochs trained")
    epoch_loss: list[float] = entry("mean loss of each epoch")
    final_loss: float | None = entry("loss of the last epoch (null with --model-path)")
    model_path: str | None = entry("the model evaluated instead of training (--model-path)")


@dataclass(kw_only=True)
class ImageTiming(Record):
    """Seconds of each stage of an images run."""

    train_seconds: float | None = entry("training (not with --model-path)", optional=True)
    latent_seconds: float = entry("computing the latents")
    score_seconds: float = entry("MI and VAR scores")
    task_seconds: float = entry("classification and OOD detection")
    attack_seconds: float = entry("FGSM and the defence")
    baseline_seconds: float | None = entry("the baselines (not with --no-baselines)", optional=True)
    figure_seconds: float | None = entry("drawing the figures", optional=True)
    total_seconds: float | None = entry("the whole run", optional=True)


@dataclass(kw_only=True)
class ImagesResults(Record):
    """``results.json`` of ``ginmi images``."""

    command: str = entry("images")
    config: dict[str, Any] = entry("every option of the run (flat {option: value})")
    data: ImageDataInfo = entry("the images")
    criteria: dict[str, ImageCriterion] = entry("mi and var: scores, order and the best-k set", each=("criterion",))
    accuracy_vs_k: ImageCurves = entry("test accuracy against k (Fig. 6)")
    best_k: dict[str, int] = entry("per order (mi, var): the k of highest test accuracy")
    best_accuracy: dict[str, float] = entry("per order: the test accuracy at that k")
    auroc: dict[str, float] = entry("per order: OOD AUROC with the best-k dims")
    auroc_vs_k: ImageCurves = entry("OOD AUROC against k")
    roc: ImageRoc | None = entry("ROC curves with the best-k dims (Fig. 7)", optional=True)
    fgsm: dict[str, dict[str, DefenceRow]] = entry(
        "per order and FGSM step size eta: attack and defence (Table 1)", each=("order", "eta")
    )
    training: ImageTraining = entry("the training run")
    paper: dict[str, Any] = entry("the paper's EMNIST numbers at the same key paths as ours")
    baselines: ImageBaselines | None = entry("scikit-learn baselines (not with --no-baselines)", optional=True)
    timing: ImageTiming = entry("seconds")
    environment: dict[str, Any] = entry("versions of ginmi, Python, torch, NumPy; device; platform; threads")


# ----------------------------------------------------------------------------------------------
# ginmi transform and ginmi report (returned, not written)


@dataclass(kw_only=True)
class TransformResult(Record):
    """What ``ginmi transform`` returns."""

    out: str = entry("the file written")
    n_samples: int = entry("latents written")
    selected: list[int] | None = entry("the dims of w_selected (null without the model's results.json)")


@dataclass(kw_only=True)
class ReportResult(Record):
    """What ``ginmi report`` returns."""

    report: str = entry("the report.html written")
    figures_redrawn: int = entry("figures redrawn")


RESULTS: dict[str, type[SyntheticResults | FitResults | ImagesResults]] = {
    "synthetic": SyntheticResults,
    "fit": FitResults,
    "images": ImagesResults,
}
"""The results class of each command that writes ``results.json``."""
