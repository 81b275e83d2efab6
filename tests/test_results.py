"""Typed results (:mod:`ginmi.app.results`): each command's results.json reads into its dataclasses and
writes back byte for byte; the schema they define documents every key of real runs, and only those."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ginmi.app.cli import main
from ginmi.app.results import (
    RESULTS,
    FitResults,
    Record,
    ReportResult,
    SyntheticResults,
    TransformResult,
    schema_markdown,
    schema_rows,
)
from ginmi.data.synthetic import make_synthetic, sample_ood
from ginmi.io import atomic_write_json
from tiny_run import tiny_image_net, tiny_run

FIT = ["--epochs", "2", "--batch-size", "100", "--no-progress", "--no-report"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """Run folders of every command that writes results.json, covering its optional keys: fit with and
    without true latents, test and outlier files and --bootstrap; images on tiny own .npz images."""
    root = tmp_path_factory.mktemp("results")
    data = make_synthetic(700, seed=3)
    np.savez(root / "full.npz", x=data.x[:500], u=data.u[:500], latent=data.latent[:500])
    np.savez(root / "plain.npz", x=data.x[:500], u=data.u[:500])
    np.savez(root / "test.npz", x=data.x[500:], u=data.u[500:])
    np.savez(root / "ood.npz", x=sample_ood(data, 200, seed=1)[0])
    assert (
        main(
            [
                "fit",
                str(root / "full.npz"),
                "--test-data",
                str(root / "test.npz"),
                "--ood-data",
                str(root / "ood.npz"),
                "--bootstrap",
                "3",
                *FIT,
                "--out",
                str(root / "fit-full"),
            ]
        )
        == 0
    )
    assert main(["fit", str(root / "plain.npz"), *FIT, "--out", str(root / "fit-plain")]) == 0
    rng = np.random.default_rng(0)
    u = np.arange(90) % 3
    x = rng.uniform(0, 0.3, size=(90, 1, 8, 8)).astype(np.float32)
    for c in range(3):
        x[u == c, :, c * 2 : c * 2 + 2] += 0.6
    np.savez(root / "images.npz", x=x, u=u)
    np.savez(root / "outliers.npz", x=rng.uniform(0, 1, size=(20, 1, 8, 8)).astype(np.float32))
    assert (
        main(
            [
                "images",
                "--data",
                str(root / "images.npz"),
                "--ood-data",
                str(root / "outliers.npz"),
                "--epochs",
                "1",
                "--batch-size",
                "30",
                *tiny_image_net((4, 4), 8),
                "--k-grid",
                "1",
                "64",
                "--etas",
                "0",
                "0.01",
                "--n-figure-classes",
                "1",
                "--no-progress",
                "--out",
                str(root / "images"),
            ]
        )
        == 0
    )
    return {"synthetic": [tiny_run()], "fit": [root / "fit-full", root / "fit-plain"], "images": [root / "images"]}


def _read(run: Path) -> dict[str, Any]:
    return json.loads((run / "results.json").read_text())


@pytest.mark.parametrize("command", ["synthetic", "fit", "images"])
def test_results_json_round_trips_byte_for_byte(runs, command, tmp_path):
    for run in runs[command]:
        results = RESULTS[command].from_json(_read(run))
        atomic_write_json(tmp_path / "results.json", results.to_json())
        assert (tmp_path / "results.json").read_text() == (run / "results.json").read_text()


def test_transform_and_report_results_round_trip(runs, tmp_path, capsys):
    fit = runs["fit"][0]
    assert (
        main(["transform", str(fit / "model.pt"), str(fit.parent / "plain.npz"), "--out", str(tmp_path / "w.npz")]) == 0
    )
    assert main(["report", str(fit), "--no-figures"]) == 0
    from ginmi.app.report import ReportConfig, run_report
    from ginmi.app.user import TransformConfig, run_transform

    for run in (fit, runs["synthetic"][0]):  # the selected dims come from the model's run folder
        transformed = run_transform(
            TransformConfig(
                model_path=str(run / "model.pt"), data=str(fit.parent / "plain.npz"), out=str(tmp_path / "w.csv")
            )
        )
        assert TransformResult.from_json(transformed).to_json() == transformed
        assert transformed["selected"] == _read(run)["criteria"]["mi"]["selected"]
    report = run_report(ReportConfig(run_dir=str(fit), figures=False))
    assert ReportResult.from_json(report).to_json() == report


def test_transform_takes_images_for_a_model_of_ginmi_images(runs, tmp_path, capsys):
    """`ginmi transform` refused every image model's data ('features must be (n_samples, n_features)')."""
    import torch

    from ginmi.model import load_model

    run = runs["images"][0]
    out = tmp_path / "w.npz"
    assert main(["transform", str(run / "model.pt"), str(run.parent / "outliers.npz"), "--out", str(out)]) == 0
    with np.load(out) as written:
        w, selected = written["w"], written["selected"]
    images = np.load(run.parent / "outliers.npz")["x"]
    with torch.no_grad():
        expected = load_model(run / "model.pt").transform(torch.as_tensor(images)).double().numpy()
    np.testing.assert_allclose(w, expected, rtol=0, atol=1e-6)
    assert selected.tolist() == _read(run)["criteria"]["mi"]["selected"]
    np.savez(tmp_path / "small.npz", x=images[:, :, :4, :4])
    capsys.readouterr()
    assert main(["transform", str(run / "model.pt"), str(tmp_path / "small.npz"), "--out", str(out)]) == 2
    assert "holds images of shape (1, 4, 4) (C, H, W), but the model" in capsys.readouterr().err


def _key_paths(value: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every key path of a JSON value as a tuple of keys (keys may hold dots: FGSM step sizes); objects in
    a list are reached through its key with ``[]`` appended, as in the schema (``trials[]``)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield prefix + (key,)
            yield from _key_paths(item, prefix + (key,))
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                yield from _key_paths(item, prefix[:-1] + (prefix[-1] + "[]",))


def _documents(row: tuple[str, str, str], path: tuple[str, ...], *, inside: bool = True) -> bool:
    """Whether a schema row documents a key path: the row's own (``<name>`` matches any key) or, with
    ``inside``, a key within a mapping of plain values or of free-form content (a mapping of records: only
    its names, their keys are rows of their own)."""
    keys, kind = row[0].split("."), row[1]
    if "object" in kind:
        extra = kind.count("{")
    else:
        extra = len(path) if kind.startswith("{") or "any" in kind else 0
    extra = extra if inside else 0
    return len(keys) <= len(path) <= len(keys) + extra and all(k == p or k.startswith("<") for k, p in zip(keys, path))


@pytest.mark.parametrize("command", ["synthetic", "fit", "images"])
def test_schema_documents_every_key_and_only_keys_that_occur(runs, command):
    rows = schema_rows(RESULTS[command])
    found = {p for run in runs[command] for p in _key_paths(_read(run))}
    assert [p for p in sorted(found) if not any(_documents(row, p) for row in rows)] == []
    # keys of the shared criterion record that only --bootstrap writes (exercised by the fit run)
    bootstrap_only = ("criteria.<criterion>.ci_low", "criteria.<criterion>.ci_high") if command == "synthetic" else ()
    unused = [
        row[0]
        for row in rows
        if not row[0].endswith(bootstrap_only) and not any(_documents(row, p, inside=False) for p in found)
    ]
    assert unused == []
    assert all(doc for _, _, doc in rows)


def test_schema_markdown_is_a_table_of_documented_keys():
    text = schema_markdown(SyntheticResults)
    lines = text.splitlines()
    assert lines[:2] == ["| key | type | meaning |", "|---|---|---|"]
    assert len(lines) == len(schema_rows(SyntheticResults)) + 2
    assert all(line.count(" | ") == 2 for line in lines[2:])  # pipes in meanings are escaped
    assert "| `variants.<variant>.trials[].seed` | int |" in text
    assert (
        "| `timing.total_seconds` |" in text and "`timing.device`" not in text
    )  # the primary trial's timing stays inside


def test_older_results_without_newer_keys_are_read(runs):
    old = _read(runs["synthetic"][0])
    for trial in [old, *(t for v in old["variants"].values() for t in v["trials"])]:
        for key in ("baselines", "value_added"):
            del trial[key]
        del trial["true_latents"]["sorted_var"]
    del old["claims"]
    results = SyntheticResults.from_json(old)
    assert results.primary_trial.evaluation.value_added is None and results.claims is None
    assert results.to_json() == old


def test_a_missing_key_is_named():
    fit = {"command": "fit", "config": {}}
    with pytest.raises(ValueError, match="FitResults: the results lack the key 'data'"):
        FitResults.from_json(fit)


def test_every_record_field_has_a_meaning():
    def records(cls: type) -> Iterator[type]:
        yield cls
        for sub in cls.__subclasses__():
            yield from records(sub)

    import dataclasses

    for cls in records(Record):
        for f in dataclasses.fields(cls):
            assert f.metadata.get("doc"), f"{cls.__name__}.{f.name}"
