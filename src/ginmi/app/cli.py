"""The ``ginmi`` command line: one subcommand per pipeline, options generated from its config.

Every subcommand also takes ``--config FILE``, a TOML file with the same keys as its options
(:func:`ginmi.config.read_config_file`); options given on the command line override the file.

Errors a user can fix (bad input, missing files, divergence) are printed as one line
``ginmi: error: ...`` with exit status 2; nothing is half-written.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ginmi import __version__, distributed
from ginmi._platform import MissingDependencyError
from ginmi.app.common import check_run_dir
from ginmi.app.images import ImagesConfig, run_images
from ginmi.app.images import write_figures as write_image_figures
from ginmi.app.report import FigureWriter, ReportConfig, run_report, synthetic_summary
from ginmi.app.results import (
    FitResults,
    ImagesResults,
    ReportResult,
    SyntheticResults,
    TransformResult,
    TrialEvaluation,
)
from ginmi.app.synthetic import SyntheticConfig, run_synthetic
from ginmi.app.synthetic import write_figures as write_synthetic_figures
from ginmi.app.user import FitConfig, TransformConfig, run_fit, run_transform
from ginmi.app.user import write_figures as write_fit_figures
from ginmi.config import add_arguments, from_namespace, option_names, read_config_file
from ginmi.fused import FusedStepWarning
from ginmi.training import DivergenceError, SmallDataWarning, TrainingInterrupted

__all__ = ["main", "COMMANDS", "build_parser", "resolve_config"]


@dataclass
class Command:
    """A subcommand: its config class, its runner, positional arguments and summary printer."""

    config: type
    run: Callable[[Any], dict[str, Any]]
    help: str
    # options of ``config`` given as positional arguments (their help text is the option's)
    positionals: tuple[str, ...] = ()
    summary: Callable[[dict[str, Any]], str] | None = None
    figures: FigureWriter | None = None  # redraws the command's figures for ``ginmi report``


def _synthetic_summary(r: dict[str, Any]) -> str:
    results = SyntheticResults.from_json(r)
    trial = results.primary_trial.evaluation
    lines = [
        f"run folder: {r['run_dir']}",
        f"true informative latents {trial.true_informative} are recovered as w dims {trial.informative_w_dims}",
        f"{'criterion':<10}{'top-n dims':<14}{'correct':<9}{'selected':<18}threshold",
    ]
    for name in ("mi", "var", "var_std"):
        c, rec = trial.criteria[name], trial.recovery[name]
        lines.append(
            f"{name.upper():<10}{str(rec.top_n):<14}{str(rec.top_n_correct):<9}{str(c.selected):<18}{c.reason}"
        )
    lines.append(
        f"MCC informative {trial.mcc.informative:.3f}, all {trial.mcc.all:.3f}; "
        f"training {results.timing.train_seconds:.1f} s, total {results.timing.total_seconds:.1f} s"
    )
    lines.append(_baselines_line(trial))
    header, rows = synthetic_summary(r)
    width = max(len(row[0]) for row in rows) + 2
    lines.append("")
    lines.append("".join(h.split(" (")[0].ljust(24) if i else h.ljust(width) for i, h in enumerate(header)))
    lines += ["".join(c.ljust(24) if i else c.ljust(width) for i, c in enumerate(row)) for row in rows]
    for claim in results.claims or []:
        lines.append(f"[{claim.verdict}] {claim.claim}\n    {claim.measured}")
    if (Path(r["run_dir"]) / "report.html").is_file():
        lines.append(f"report: {Path(r['run_dir']) / 'report.html'}")
    return "\n".join(lines)


def _baselines_line(r: TrialEvaluation | FitResults) -> str:
    """The trained flow's MCC on the informative latents beside the baselines' and the value added."""
    assert r.value_added is not None and r.baselines is not None
    added = r.value_added.mcc_informative
    return (
        "baselines, MCC informative: "
        + ", ".join(f"{name} {b.mcc.informative:.3f}" for name, b in r.baselines.items())
        + f"; value added by training {added.added:+.3f} (vs {added.best_baseline})"
    )


def _report_summary(r: dict[str, Any]) -> str:
    result = ReportResult.from_json(r)
    return f"wrote {result.report} ({result.figures_redrawn} figures redrawn)"


def _fit_summary(r: dict[str, Any]) -> str:
    results = FitResults.from_json(r)
    mi, var = results.criteria["mi"], results.criteria["var"]
    text = (
        f"run folder: {r['run_dir']}\nMI selects dims {mi.selected} ({mi.reason})\n"
        f"VAR selects dims {var.selected} ({var.reason})\ntraining {results.timing.train_seconds:.1f} s"
    )
    if results.value_added is not None and results.mcc is not None:
        text += (
            f"\ntrue latents {results.true_informative} -> w dims {results.informative_w_dims}: MCC informative "
            f"{results.mcc.informative:.3f}, all {results.mcc.all:.3f}\n" + _baselines_line(results)
        )
    return text


def _transform_summary(r: dict[str, Any]) -> str:
    result = TransformResult.from_json(r)
    return f"wrote {result.n_samples} latents to {result.out}" + (
        f" (selected dims {result.selected})" if result.selected is not None else ""
    )


def _images_summary(r: dict[str, Any]) -> str:
    results = ImagesResults.from_json(r)
    d = results.data
    lines = [
        f"run folder: {r['run_dir']}",
        f"{d.dataset} ({d.n_train} train, {d.n_test} test) vs OOD {d.ood} ({d.n_ood})",
        f"{'order':<7}{'best k':>7}{'accuracy':>10}{'AUROC':>8}   FGSM eta: error w/o defence, pass rate, "
        "passed error, error with defence",
    ]
    for name in ("mi", "var"):
        fgsm = "; ".join(
            f"{eta}: {row.error_rate_without_defence:.3f} {row.pass_rate:.3f} "
            f"{row.passed_error_rate:.3f} {row.error_rate_with_defence:.3f}"
            for eta, row in results.fgsm[name].items()
        )
        lines.append(
            f"{name.upper():<7}{results.best_k[name]:>7}{results.best_accuracy[name]:>10.4f}"
            f"{results.auroc[name]:>8.3f}   {fgsm}"
        )
    if results.baselines is not None:
        b = results.baselines
        lines.append(
            "baselines on the same split, accuracy: "
            + ", ".join(f"{name} {acc:.4f}" for name, acc in b.accuracy.items())
            + "".join(f"; {name} OOD AUROC {a:.3f}" for name, a in b.auroc.items())
        )
    t = results.timing
    lines.append(
        f"training {t.train_seconds or 0.0:.1f} s ({results.training.epochs} epochs), total {t.total_seconds:.1f} s"
    )
    return "\n".join(lines)


COMMANDS: dict[str, Command] = {
    "synthetic": Command(
        SyntheticConfig,
        run_synthetic,
        "the paper's synthetic study (Section 3), end to end",
        summary=_synthetic_summary,
        figures=write_synthetic_figures,
    ),
    "images": Command(
        ImagesConfig,
        run_images,
        "the paper's image study (Section 4): classification, OOD and FGSM defence by MI vs VAR",
        summary=_images_summary,
        figures=write_image_figures,
    ),
    "fit": Command(
        FitConfig,
        run_fit,
        "train, score and select latents on your own .npz/.csv data",
        positionals=("data",),
        summary=_fit_summary,
        figures=write_fit_figures,
    ),
    "transform": Command(
        TransformConfig,
        run_transform,
        "write w = g(x) for new data with a saved model",
        positionals=("model_path", "data"),
        summary=_transform_summary,
    ),
    "report": Command(
        ReportConfig,
        lambda config: run_report(config, _figure_writers()),
        "rebuild report.html of a run folder (figures redrawn, no training)",
        positionals=("run_dir",),
        summary=_report_summary,
    ),
}


def _figure_writers() -> dict[str, FigureWriter]:
    """Each command's figure writer, for ``ginmi report``."""
    return {name: cmd.figures for name, cmd in COMMANDS.items() if cmd.figures is not None}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``ginmi``: one subparser per entry of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="ginmi",
        description="GIN flows with mutual-information selection of informative latents.",
    )
    parser.add_argument("--version", action="version", version=f"ginmi {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, cmd in COMMANDS.items():
        p = sub.add_parser(name, help=cmd.help, description=cmd.help)
        helps = {f.name: f.metadata["help"] for f in dataclasses.fields(cmd.config)}
        for arg in cmd.positionals:
            p.add_argument(
                arg, nargs="?", default=argparse.SUPPRESS, help=f"{helps[arg]} (or `{arg} = ...` in the --config file)"
            )
        p.add_argument(
            "--config",
            metavar="FILE",
            default=None,
            help="TOML file of options (keys as the options below, e.g. n_samples = 600); "
            "options given on the command line override it; each run folder holds "
            "its resolved config.toml",
        )
        add_arguments(p, cmd.config)
    return parser


def resolve_config(name: str, args: argparse.Namespace) -> Any:
    """The config of command ``name``: the ``--config`` file's values, overridden by the options given."""
    cmd = COMMANDS[name]
    base = read_config_file(args.config, cmd.config) if getattr(args, "config", None) else {}
    config = from_namespace(cmd.config, args, base=base)
    for arg in cmd.positionals:
        if not getattr(config, arg):
            raise ValueError(
                f'{name} needs {arg.upper()}: give it on the command line or as `{arg} = "..."` in the --config file'
            )
    return config


# options a command has (shared groups) but does not use: refused when given on its command line
UNUSED_OPTIONS: dict[str, tuple[str, ...]] = {
    "images": ("threshold", "k", "q", "min_effect", "n_permutations", "max_permutations", "bootstrap"),
}


def _check_unused(name: str, args: argparse.Namespace) -> None:
    given = [o for o in UNUSED_OPTIONS.get(name, ()) if o in vars(args)]
    if given:
        flags = ", ".join("--" + o.replace("_", "-") for o in given)
        raise ValueError(
            f"{name} does not use {flags}: it orders the latents by MI and VAR and picks the best k "
            "of --k-grid by test accuracy; drop these options"
        )


def _check_paths(config: Any) -> None:
    """Input files and folders named by options exist, and the run folder ``--out`` can be used,
    before any work (the commands check their contents)."""
    for name in ("test_data", "ood_data", "model_path"):
        value = getattr(config, name, None)
        if value and not Path(value).is_file():
            raise FileNotFoundError(f"{name.replace('_', ' ')} file not found: {value}")
    for name in ("data_dir", "ood_data_dir"):
        value = getattr(config, name, None)
        if value and not Path(value).expanduser().is_dir() and not getattr(config, "download", False):
            raise FileNotFoundError(f"--{name.replace('_', '-')}: no such folder: {value}")
    if hasattr(config, "train") and hasattr(config, "out"):
        check_run_dir(config.out, config.train, config)


def _note_printer(options: Iterable[str]) -> Callable[..., None]:
    """``warnings.showwarning`` for a command: warnings about the data and the settings as one line each
    (``ginmi: note: ...``), in the command line's words (:func:`cli_vocabulary`); others as usual."""
    show_warning = warnings.showwarning

    def show(message: Any, category: type, *args: Any, **kwargs: Any) -> None:
        if issubclass(category, (SmallDataWarning, FusedStepWarning)):
            print(f"ginmi: note: {cli_vocabulary(str(message), options)}", file=sys.stderr, flush=True)
        else:
            show_warning(message, category, *args, **kwargs)

    return show


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ginmi`` console script.

    Exit status: 0 on success; 2 for errors a user can fix (one line ``ginmi: error: ...``, raised
    before any training or file); 130 after Ctrl-C (the training state is saved where it can be,
    with one line saying how to resume).
    """
    args = build_parser().parse_args(argv)
    cmd = COMMANDS[args.command]
    main_process = True
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _note_printer(option_names(cmd.config))
            _check_unused(args.command, args)
            config = resolve_config(args.command, args)
            _check_paths(config)
            result = cmd.run(config)
    except KeyboardInterrupt as err:
        print(
            f"ginmi: {cli_vocabulary(str(err), option_names(cmd.config))}"
            if isinstance(err, TrainingInterrupted)
            else "ginmi: interrupted",
            file=sys.stderr,
        )
        return 130
    except (ValueError, OSError, DivergenceError, MissingDependencyError) as err:
        print(f"ginmi: error: {cli_vocabulary(_one_line(err), option_names(cmd.config))}", file=sys.stderr)
        return 2
    finally:
        main_process = distributed.is_main_process()
        distributed.cleanup()  # under torchrun: leave the process group
    if cmd.summary is not None and main_process:
        print(cmd.summary(result))
    return 0


_PARAMETER = re.compile(r"`([a-z][a-z0-9_]*)`(?:=('[^']*'|\"[^\"]*\"|[^\s,;)]+))?")


def cli_vocabulary(message: str, options: Iterable[str]) -> str:
    """A library message in the command line's words: each backticked Python parameter that is an
    option of the command, with or without a value (`` `lr` ``, `` `k`=3 ``, `` `threshold`='fdr' ``,
    `` `verify`=False ``, `` `epochs`=None ``), becomes its flag (``--lr``, ``--k 3``, ``--threshold fdr``,
    ``--no-verify``, ``--epochs none``).

    Example:
        >>> cli_vocabulary("lower `lr` (e.g. `lr`=0.0001) or set `verify`=False; `other` stays", ["lr", "verify"])
        'lower --lr (e.g. --lr 0.0001) or set --no-verify; `other` stays'
    """
    names = set(options)

    def flag(match: re.Match[str]) -> str:
        name, value = match.group(1), match.group(2)
        if name not in names:
            return match.group(0)
        dashed = "--" + name.replace("_", "-")
        if value is None:
            return dashed
        if value in ("True", "False"):
            return dashed if value == "True" else f"--no-{name.replace('_', '-')}"
        if value == "None":
            return f"{dashed} none"
        return f"{dashed} {value.strip(chr(39) + chr(34))}"

    return _PARAMETER.sub(flag, message)


def _one_line(err: BaseException) -> str:
    """The message of ``err`` on one line (OS errors with their file name)."""
    if isinstance(err, OSError) and not isinstance(err, FileNotFoundError) and err.filename:
        text = f"{err.strerror or err}: {err.filename}"
    else:
        text = str(err)
    return " ".join(text.split())
