"""report.html: self-contained, every figure decodes in a real browser, the tables are there;
`ginmi report` rebuilds it without training; the claim verdicts follow their rules."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from ginmi.app.cli import main
from ginmi.app.report import DOES_NOT_HOLD, HOLDS, NOT_EVALUATED, evaluate_claims, reported_results, write_report
from tiny_run import tiny_run

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def run():
    return tiny_run()


def _browser():
    """Headless Chromium through Selenium, or skip with the reason."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    from selenium.webdriver.chrome.service import Service

    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.skip("chromium / chromedriver not found (Debian packages chromium and chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="ginmi-chromium-")
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options), profile


def test_report_renders_in_headless_chromium(run):
    html = (run / "report.html").read_text()
    n_figures = len(list((run / "figures").glob("*.png")))
    driver, profile = _browser()
    try:
        driver.set_page_load_timeout(60)
        driver.get((run / "report.html").resolve().as_uri())
        images = driver.find_elements("tag name", "img")
        assert len(images) == n_figures > 10
        for img in images:
            decoded = driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth;", img)
            assert decoded and decoded > 0, f"figure {img.get_attribute('alt')} did not decode"
        for table_id in (
            "claims",
            "summary",
            "accuracy_vs_k",
            "auroc_vs_k",
            "criteria",
            "config",
            "timing",
            "environment",
        ):
            assert driver.find_elements("css selector", f"table#{table_id}"), f"table {table_id} missing"
        claim_rows = driver.find_elements("css selector", "table#claims tbody tr")
        assert len(claim_rows) == len(reported_results()["synthetic"]["claims"])
        # the verdict cells: each row's verdict is the one its rule gives, shown in its row's colour
        expected = evaluate_claims(json.loads((run / "results.json").read_text()))
        header = [th.text for th in driver.find_elements("css selector", "table#claims thead th")]
        column = header.index("verdict")
        colours = {
            HOLDS: "rgb(227, 245, 225)",
            DOES_NOT_HOLD: "rgb(251, 227, 227)",
            NOT_EVALUATED: "rgb(244, 244, 244)",
        }
        for row, claim in zip(claim_rows, expected):
            cells = row.find_elements("tag name", "td")
            assert cells[column].text == claim["verdict"] in colours, (cells[column].text, claim["claim"])
            assert cells[0].text == claim["claim"]
            assert (
                row.value_of_css_property("background-color")
                .replace("rgba", "rgb")
                .startswith(colours[claim["verdict"]][:-1])
            ), claim["claim"]
        counts = {v: sum(c["verdict"] == v for c in expected) for v in colours}
        text = driver.find_element("tag name", "body").text
        assert (
            f"{counts[HOLDS]} hold, {counts[DOES_NOT_HOLD]} do not hold, {counts[NOT_EVALUATED]} not evaluated" in text
        )
        assert "Bayes bound" in text
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    assert html.count('src="data:image/png;base64,') == n_figures


def test_report_is_self_contained(run):
    html = (run / "report.html").read_text()
    assert not re.search(r'(src|href)\s*=\s*"(?!data:)', html), "the report must not load anything from elsewhere"
    assert "<script" not in html and "@import" not in html


def test_ginmi_report_rebuilds_without_training(run, capsys):
    copy_dir = Path(tempfile.mkdtemp()) / "copy"
    shutil.copytree(run, copy_dir)
    shutil.rmtree(copy_dir / "figures")
    (copy_dir / "report.html").unlink()
    model_bytes = (copy_dir / "model.pt").read_bytes()
    assert main(["report", str(copy_dir)]) == 0
    out = capsys.readouterr().out
    assert "report.html" in out and "figures redrawn" in out
    original = {p.name for p in (run / "figures").glob("*.png")}
    assert {p.name for p in (copy_dir / "figures").glob("*.png")} == original
    assert (copy_dir / "report.html").is_file()
    assert (copy_dir / "model.pt").read_bytes() == model_bytes
    assert main(["report", str(copy_dir), "--no-figures"]) == 0
    assert main(["report", str(copy_dir.parent / "nope")]) == 2
    assert "no results.json" in capsys.readouterr().err


def test_generic_report_for_other_commands(tmp_path):
    results = {
        "command": "images",
        "config": {"epochs": 1, "dataset": "digits"},
        "criteria": {
            "mi": {"order": [3, 1, 2], "selected": [3], "reason": "top-k"},
            "var": {"order": [1, 2, 3], "selected": [1], "reason": "top-k"},
        },
        "accuracy_vs_k": {"ks": [1, 5, 30], "mi": [0.5, 0.9, 0.94], "var": [0.2, 0.4, 0.6]},
        "best_accuracy": {"mi": 0.93},
        "paper": {"best_accuracy": {"mi": 0.9415, "var": 0.875}},
        "claims": [{"claim": "MI beats VAR", "measured": "0.93 vs 0.60", "verdict": HOLDS, "rule": "MI > VAR"}],
        "timing": {"total_seconds": 1.5},
        "environment": {"python": "3.11"},
    }
    (tmp_path / "figures").mkdir()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(1, 1))
    fig.savefig(tmp_path / "figures" / "decay.png")
    plt.close(fig)
    (tmp_path / "results.json").write_text(json.dumps(results))
    html = write_report(tmp_path).read_text()
    assert 'id="paper"' in html and "0.9415" in html and "0.93" in html
    assert 'id="accuracy_vs_k"' in html and '<td class="num">30</td>' in html
    assert "MI beats VAR" in html and html.count("data:image/png;base64,") == 1


def _trial(seed: int, mi_ok: bool = True, var_ok: bool = False, noise: float = 1.0) -> dict:
    """A trial entry of the tiny run (a results.json of this version) with hand-made values where the claim
    rules read, and no baselines (as in older runs: the rules then leave the value added out)."""
    d = 10
    mi_acc = [0.6, 0.78] + [0.78] * (d - 2)
    var_acc = [0.25, 0.27] + [0.3] * (d - 3) + [0.78]
    low = noise < 0.1
    ratio = [0.5, 0.5] + [0.6] * (d - 2)
    trial = copy.deepcopy(json.loads((tiny_run() / "results.json").read_text())["variants"]["main"]["trials"][0])
    del trial["baselines"], trial["value_added"]
    trial["seed"] = seed
    for order, ok in (("mi", mi_ok), ("var", var_ok)):
        trial["recovery"][order].update(top_n_correct=ok, selected_correct=ok)
    trial["criteria"]["mi"]["sorted_scores"] = [1.0, 0.5] + [0.01] * (d - 2)
    trial["accuracy_vs_k"].update(mi=mi_acc, var=var_acc, bayes_bound=0.79)
    trial["auroc_vs_k"].update(mi=[0.95] + [1.0] * (d - 1), var=[0.5, 0.6] + [0.9] * (d - 2))
    trial["mcc"] = {"all": 0.97, "informative": 0.99}
    trial["correlation"] = np.eye(d).tolist()
    trial["std_preservation"].update(
        ratio=ratio,
        log10_ratio_range=float(np.log10(0.6 / 0.5)),
        log10_true_std_range=float(np.log10(3.5 / noise)) if low else 0.54,
    )
    trial["training"]["final_loss"] = 1.0
    trial["timing"]["train_seconds"] = 1.0
    return trial


def _results(variants: dict) -> dict:
    return {
        "command": "synthetic",
        "true_informative": [0, 1],
        "variants": {
            name: {"noise_std": noise, "stats": stats, "trials": trials, "aggregate": {}}
            for name, (noise, stats, trials) in variants.items()
        },
    }


def test_claim_rules_on_hand_made_results():
    good = _results(
        {
            "main": (1.0, "trainable", [_trial(0), _trial(1)]),
            "low-noise": (1e-2, "trainable", [_trial(0, var_ok=True, noise=1e-2), _trial(1, var_ok=True, noise=1e-2)]),
            "batch-stats": (1.0, "batch", [_trial(0), _trial(1)]),
        }
    )
    claims = evaluate_claims(good)
    assert [c["verdict"] for c in claims] == [HOLDS] * 7
    assert all(c["rule"] and c["measured"] for c in claims)
    # VAR right in high noise: claim 1 fails; MI wrong once: claims 1 and 7 fail
    bad = copy.deepcopy(good)
    bad["variants"]["main"]["trials"][1] = _trial(1, mi_ok=False, var_ok=True)
    verdicts = [c["verdict"] for c in evaluate_claims(bad)]
    assert verdicts[0] == DOES_NOT_HOLD and verdicts[6] == DOES_NOT_HOLD
    # accuracy far below the Bayes bound
    far = copy.deepcopy(good)
    for t in far["variants"]["main"]["trials"]:
        t["accuracy_vs_k"]["mi"][1] = 0.6
    assert evaluate_claims(far)[2]["verdict"] == DOES_NOT_HOLD
    # AUROC of VAR close to MI's at k = 1
    close = copy.deepcopy(good)
    for t in close["variants"]["main"]["trials"]:
        t["auroc_vs_k"]["var"][0] = 0.9
    assert evaluate_claims(close)[3]["verdict"] == DOES_NOT_HOLD
    # low noise without VAR recovery, and a low MCC
    other = copy.deepcopy(good)
    other["variants"]["low-noise"]["trials"] = [_trial(0, noise=1e-2), _trial(1, noise=1e-2)]
    other["variants"]["main"]["trials"][0]["mcc"]["all"] = 0.7
    verdicts = [c["verdict"] for c in evaluate_claims(other)]
    assert verdicts[4] == DOES_NOT_HOLD and verdicts[5] == DOES_NOT_HOLD
    # settings not run
    only_main = _results({"main": (1.0, "trainable", [_trial(0)])})
    verdicts = [c["verdict"] for c in evaluate_claims(only_main)]
    assert verdicts[4] == NOT_EVALUATED and verdicts[6] == NOT_EVALUATED and verdicts[0] == HOLDS


def test_fit_runs_get_the_downstream_tasks_and_a_report(tmp_path, capsys):
    from ginmi.data.synthetic import make_synthetic, sample_ood

    data = make_synthetic(700, seed=3)
    np.savez(tmp_path / "train.npz", x=data.x[:500], u=data.u[:500])
    np.savez(tmp_path / "test.npz", x=data.x[500:], u=data.u[500:])
    np.savez(tmp_path / "ood.npz", x=sample_ood(data, 200, seed=1)[0])
    run = tmp_path / "run"
    args = [
        "fit",
        str(tmp_path / "train.npz"),
        "--test-data",
        str(tmp_path / "test.npz"),
        "--ood-data",
        str(tmp_path / "ood.npz"),
        "--epochs",
        "2",
        "--batch-size",
        "100",
        "--no-progress",
        "--out",
        str(run),
    ]
    assert main(args) == 0
    results = json.loads((run / "results.json").read_text())
    assert len(results["accuracy_vs_k"]["mi"]) == len(results["auroc_vs_k"]["var"]) == 10
    assert results["accuracy_vs_k"]["evaluated_on"].endswith("test.npz")
    assert np.asarray(results["feature_correlation"]).shape == (10, 10)
    html = (run / "report.html").read_text()
    assert 'id="accuracy_vs_k"' in html and 'id="auroc_vs_k"' in html and "feature_correlation.png" in html
    # a test file with an unseen label fails before anything is written
    np.savez(tmp_path / "bad.npz", x=data.x[:5], u=np.full(5, 9))
    assert main([*args[:3], str(tmp_path / "bad.npz"), "--out", str(tmp_path / "bad")]) == 2
    assert "labels not seen in training" in capsys.readouterr().err and not (tmp_path / "bad").exists()


_SYNTHETIC_ONLY = ("beside the true latents", "dashed: Bayes accuracy", "true latent (z, eps)", "Eq. 17 outliers")


def test_fit_report_says_what_it_shows(tmp_path, capsys, monkeypatch):
    """Without --test-data the accuracy is training accuracy, and the report says so; no caption of the
    synthetic study; the feature correlation is labelled by the input features; stage lines on stderr."""
    from ginmi.app import plots
    from ginmi.app.user import write_figures
    from ginmi.data.synthetic import make_synthetic

    data = make_synthetic(400, seed=3)
    np.savez(tmp_path / "train.npz", x=data.x, u=data.u)
    run = tmp_path / "run"
    assert main(["fit", str(tmp_path / "train.npz"), "--epochs", "2", "--batch-size", "100", "--out", str(run)]) == 0
    err = capsys.readouterr().err
    assert err.index("scoring latents") < err.index("evaluating") < err.index("drawing figures")
    results = json.loads((run / "results.json").read_text())
    assert results["accuracy_vs_k"]["evaluated_on"] == "training data"
    html = (run / "report.html").read_text()
    assert "training accuracy vs k" in html and "test accuracy" not in html
    assert "no estimate of the accuracy on new data" in html
    assert not [s for s in _SYNTHETIC_ONLY if s in html]
    assert "input features x (rows)" in html
    # the figure itself: rows named by the input features, axis not called true latents
    queued = {}
    monkeypatch.setattr(
        plots.FigureFolder, "render", lambda self: queued.update({n: (m, a, k) for n, m, a, k in self._queue})
    )
    write_figures(run, results)
    make, args, kwargs = queued["feature_correlation.png"]
    fig = make(*args, **kwargs)
    assert "input feature" in fig.axes[0].get_ylabel()
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == results["data"]["feature_names"]
    make, args, kwargs = queued["accuracy_vs_k.png"]
    assert make(*args, **kwargs).axes[0].get_ylabel() == "training accuracy"
    make, args, kwargs = queued["criteria.png"]
    legend = make(*args, **kwargs).axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [str(c) for c in results["data"]["classes"]]


def test_images_report_names_its_data_beside_the_papers(tmp_path):
    """The paper's EMNIST numbers beside another dataset carry a caveat; quantities have names, not keys."""
    from ginmi.app.images import _paper_numbers

    paper = _paper_numbers()
    results = {
        "command": "images",
        "data": {"dataset": "fashion-mnist", "ood": "digits", "classes": list(range(10))},
        "criteria": {
            "mi": {"order": [3, 1], "selected": [3], "reason": "top-k"},
            "var": {"order": [1, 3], "selected": [1], "reason": "top-k"},
        },
        "accuracy_vs_k": {"ks": [1, 2], "mi": [0.5, 0.8], "var": [0.3, 0.7]},
        "best_k": {"mi": 2, "var": 2},
        "best_accuracy": {"mi": 0.8, "var": 0.7},
        "auroc": {"mi": 0.7, "var": 0.6},
        "fgsm": {"mi": {"0.001": {"pass_rate": 0.9}}},
        "paper": paper,
        "timing": {"train_seconds": 3.5},
    }
    (tmp_path / "figures").mkdir()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for name in ("decay.png", "accuracy_vs_k.png", "roc.png", "samples.png", "variation_00_0.png", "loss.png"):
        fig = plt.figure(figsize=(1, 1))
        fig.savefig(tmp_path / "figures" / name)
        plt.close(fig)
    html = write_report(tmp_path, results).read_text()
    assert "Different data." in html and "EMNIST-digits" in html and "paper (EMNIST-digits)" in html
    assert "this run (fashion-mnist)" in html
    assert "fgsm.mi" not in html and "best_k.mi" not in html and "train_seconds" not in html
    assert "<td>train seconds</td>" in html
    assert "FGSM eta = 0.001, MI dims: pass rate (not rejected)" in html
    assert not [s for s in _SYNTHETIC_ONLY if s in html]
    assert html.count("fashion-mnist test images (normal) against digits (outliers)") == 1
    # the paper's own dataset: no caveat
    same = dict(results, data=dict(results["data"], dataset="emnist-digits"))
    assert "Different data." not in write_report(tmp_path, same).read_text()


def test_first_compile_of_the_fused_step_is_announced(tmp_path, capsys, monkeypatch):
    """Before the fused kernels are loaded in a process, training says it compiles them (a slow first epoch)."""
    from ginmi import fused
    from ginmi.data.synthetic import make_synthetic

    pytest.importorskip("numba")
    data = make_synthetic(200, seed=3)
    np.savez(tmp_path / "train.npz", x=data.x, u=data.u)
    args = ["fit", str(tmp_path / "train.npz"), "--epochs", "1", "--batch-size", "100", "--no-report"]
    monkeypatch.setattr(fused, "compiled", lambda: False)
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert "ginmi: compiling the fused training step" in capsys.readouterr().err
    monkeypatch.undo()
    assert fused.compiled()  # loaded now: no second announcement
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert "compiling" not in capsys.readouterr().err
    assert main([*args, "--no-fused", "--out", str(tmp_path / "c")]) == 0
    assert "compiling" not in capsys.readouterr().err
