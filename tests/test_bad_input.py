"""User-facing errors of `ginmi fit` / `ginmi transform` / `ginmi synthetic`: one clean line,
exit status 2, and no partial output."""

from __future__ import annotations

import numpy as np
import pytest

from ginmi.app.cli import main

TINY = ["--epochs", "1", "--no-progress", "--n-blocks", "2", "--batch-size", "64"]


def _npz(path, x, u=None):
    arrays = {"x": x} if u is None else {"x": x, "u": u}
    np.savez(path, **arrays)
    return str(path)


def _run_fails(args, capsys, message, out_dir=None):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ginmi: error:") and message in err, err
    assert len(err.splitlines()) == 1
    if out_dir is not None:
        assert not out_dir.exists(), "no partial output may be written"


def _good(n=120, d=4, seed=0):
    rng = np.random.default_rng(seed)
    u = np.arange(n) % 3
    return rng.standard_normal((n, d)) + u[:, None], u


@pytest.mark.parametrize(
    "case, message",
    [
        ("nan", "NaN/inf"),
        ("inf", "NaN/inf"),
        ("one_class", "only one class (0) in the labels"),
        ("tiny_class", "1 class(es) with fewer than 2 samples, label (count): 7 (1)"),
        ("lengths", "different lengths"),
        ("images", "holds images x of shape (120, 1, 2, 2); ginmi fit takes feature tables"),
    ],
)
def test_fit_rejects_bad_arrays(tmp_path, capsys, case, message):
    x, u = _good()
    if case == "nan":
        x[3, 1] = np.nan
    elif case == "inf":
        x[0, 0] = np.inf
    elif case == "one_class":
        u = np.zeros_like(u)
    elif case == "tiny_class":
        u[0] = 7
    elif case == "lengths":
        u = u[:-5]
    elif case == "images":
        x = x.reshape(len(x), 1, 2, 2)
    out = tmp_path / "run"
    _run_fails(["fit", _npz(tmp_path / "d.npz", x, u), "--out", str(out), *TINY], capsys, message, out)


def test_fit_file_errors(tmp_path, capsys):
    out = tmp_path / "run"
    _run_fails(["fit", str(tmp_path / "missing.csv"), "--out", str(out)], capsys, "not found", out)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    _run_fails(["fit", str(empty), "--out", str(out)], capsys, "empty", out)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"\x00\x01 definitely not a zip")
    _run_fails(["fit", str(garbage), "--out", str(out)], capsys, "cannot read", out)
    other = tmp_path / "data.parquet"
    other.write_text("x")
    _run_fails(["fit", str(other), "--out", str(out)], capsys, "unsupported", out)


def test_fit_csv_errors(tmp_path, capsys):
    out = tmp_path / "run"
    text = tmp_path / "text.csv"
    text.write_text("a,b,label\n1,hello,x\n2,3,y\n")
    _run_fails(["fit", str(text), "--out", str(out)], capsys, "not numeric", out)
    nolabel = tmp_path / "nolabel.csv"
    nolabel.write_text("a,b,c\n1,2,3\n4,5,6\n")
    _run_fails(["fit", str(nolabel), "--out", str(out)], capsys, "no label column 'label'", out)


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_csv_with_semicolons_or_tabs_reads_like_commas(tmp_path, delimiter):
    """A semicolon-separated file read as one column named 'a;b;label' ('no label column')."""
    from ginmi.data.files import load_table

    (tmp_path / "comma.csv").write_text("a,b,label\n1.5,2,x\n3,4,y\n")
    (tmp_path / "other.csv").write_text("a,b,label\n1.5,2,x\n3,4,y\n".replace(",", delimiter))
    comma, other = load_table(tmp_path / "comma.csv"), load_table(tmp_path / "other.csv")
    np.testing.assert_array_equal(other.x, comma.x)
    assert other.feature_names == ["a", "b"] and other.u.tolist() == ["x", "y"]


@pytest.mark.parametrize("encoding", ["utf-8-sig", "cp1252"])
def test_csv_from_a_spreadsheet_reads_like_utf8(tmp_path, encoding):
    """Windows-1252 text failed ('utf-8' codec can't decode); a byte-order mark stuck to the first column name."""
    from ginmi.data.files import load_table

    text = "pétale,sépale,espèce\n1.5,2,été\n3,4,hiver\n"
    (tmp_path / "utf8.csv").write_text(text, encoding="utf-8")
    (tmp_path / "other.csv").write_text(text, encoding=encoding)
    plain, other = (
        load_table(tmp_path / "utf8.csv", label_column="espèce"),
        load_table(tmp_path / "other.csv", label_column="espèce"),
    )
    np.testing.assert_array_equal(other.x, plain.x)
    assert other.feature_names == ["pétale", "sépale"] and other.u.tolist() == ["été", "hiver"]


@pytest.mark.parametrize("option", ["--epochs", "--batch-size", "--n-blocks", "--width"])
def test_non_positive_sizes_are_rejected(tmp_path, capsys, option):
    x, u = _good()
    out = tmp_path / "run"
    args = ["fit", _npz(tmp_path / "d.npz", x, u), "--out", str(out), *TINY, option, "0"]
    _run_fails(args, capsys, "must be positive", out)


def test_synthetic_rejects_non_positive_sizes(tmp_path, capsys):
    out = tmp_path / "run"
    _run_fails(["synthetic", "--n-samples", "-5", "--out", str(out)], capsys, "--n-samples must be positive", out)


def test_fit_and_transform_on_csv_with_string_labels(tmp_path, capsys):
    x, u = _good(150)
    names = np.array(["cat", "dog", "eel"])[u]
    lines = ["f1,f2,species,f3,f4"] + [f"{a},{b},{s},{c},{d}" for (a, b, c, d), s in zip(x, names)]
    data = tmp_path / "train.csv"
    data.write_text("\n".join(lines) + "\n")
    run = tmp_path / "run"
    assert main(["fit", str(data), "--label-column", "species", "--out", str(run), *TINY]) == 0
    assert (run / "model.pt").is_file() and (run / "results.json").is_file()
    out = tmp_path / "w.npz"
    assert main(["transform", str(run / "model.pt"), str(data), "--label-column", "species", "--out", str(out)]) == 0
    with np.load(out) as z:
        assert z["w"].shape == (150, 4)
        np.testing.assert_array_equal(z["w_selected"], z["w"][:, z["selected"]])
    capsys.readouterr()  # the run's own lines (run folder, notes)
    # wrong data dimension for the saved model
    _npz(tmp_path / "wide.npz", np.zeros((5, 6)))
    _run_fails(
        ["transform", str(run / "model.pt"), str(tmp_path / "wide.npz"), "--out", str(tmp_path / "o.npz")],
        capsys,
        "expects 4",
        tmp_path / "o.npz",
    )
