"""Users' own data: ``.npz`` (arrays ``x`` and, for training, ``u``) or ``.csv`` (a header row, a
label column named by ``label_column``, every other column numeric). Labels may be strings.

Example:
    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "toy.csv")
    >>> _ = open(path, "w").write("a,b,label\\n1,2,cat\\n3,4,dog\\n")
    >>> table = load_table(path, label_column="label")
    >>> table.x.tolist(), table.u.tolist(), table.feature_names
    ([[1.0, 2.0], [3.0, 4.0]], ['cat', 'dog'], ['a', 'b'])
"""

from __future__ import annotations

import csv
import io
import os
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Table", "load_table", "match_columns"]


@dataclass
class Table:
    """Features ``x`` (float64), labels ``u`` (None when the file has none) and column names."""

    x: np.ndarray
    u: np.ndarray | None
    feature_names: list[str]
    named: bool = False  # the names come from the file (a CSV header), not generated (x0, x1, ...)
    latent: np.ndarray | None = None  # true latents, when an .npz holds them (benchmarks: array 'latent')


def load_table(path: str | os.PathLike, *, label_column: str = "label", require_labels: bool = True) -> Table:
    """Read features and labels from a ``.npz`` or ``.csv`` file with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"data file {path} is empty")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        table = _load_npz(path)
    elif suffix == ".csv":
        table = _load_csv(path, label_column, require_labels)
    else:
        raise ValueError(f"unsupported data file {path}: use .npz (arrays x, u) or .csv (with a label column)")
    if require_labels and table.u is None:
        raise ValueError(f"{path} has no labels: an .npz needs an array 'u', a .csv the column {label_column!r}")
    return table


def _load_npz(path: Path) -> Table:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise ValueError(f"cannot read {path} as .npz ({err}); save it with numpy.savez(path, x=..., u=...)") from err
    if "x" not in arrays:
        raise ValueError(f"{path} has no array 'x' (found {sorted(arrays)}); save features as x=..., labels as u=...")
    x = arrays["x"]
    names = [f"x{i}" for i in range(x.shape[1])] if x.ndim == 2 else []
    latent = arrays.get("latent")
    if latent is not None:
        latent = np.asarray(latent)
        if (
            latent.ndim != 2
            or len(latent) != len(x)
            or latent.dtype.kind not in "biuf"
            or not np.isfinite(latent).all()
        ):
            raise ValueError(
                f"{path}: the optional array 'latent' (true latents) must be finite numbers of shape "
                f"(n_samples, n_latents) with n_samples = {len(x)} as in x, got shape {latent.shape}"
            )
        latent = latent.astype(np.float64)
    return Table(x=x, u=arrays.get("u"), feature_names=names, latent=latent)


def _read_text(path: Path) -> str:
    """The file's text: UTF-8 (a byte-order mark, as spreadsheets write it, is dropped), else Windows-1252
    (the 8-bit encoding of spreadsheet exports on Windows, which covers Latin-1's letters)."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ValueError(f"cannot read {path} ({err})") from err
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ValueError(f"cannot read {path} as CSV text: it is neither UTF-8 nor Windows-1252; save it as UTF-8")


def _load_csv(path: Path, label_column: str, require_labels: bool) -> Table:
    text = _read_text(path)
    header_line = text.split("\n", 1)[0]
    # comma-separated; a header without commas but with semicolons or tabs names the delimiter
    delimiter = "," if "," in header_line else next((d for d in ";\t" if d in header_line), ",")
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    rows = [r for r in rows if r]
    if len(rows) < 2:
        raise ValueError(f"{path} needs a header row and at least one data row")
    header, body = [h.strip() for h in rows[0]], rows[1:]
    duplicates = [h for h, n in Counter(header).items() if n > 1]
    if duplicates:
        raise ValueError(
            f"{path}: the header names column(s) {sorted(set(duplicates))} more than once; "
            "give every column its own name"
        )
    unnamed = [i + 1 for i, h in enumerate(header) if not h or h.startswith("Unnamed:")]
    if unnamed:
        raise ValueError(
            f"{path}: column(s) {unnamed} have no name (an index column written with the table?); "
            "drop them or name them"
        )
    if label_column in header:
        label_idx = header.index(label_column)
    elif require_labels:
        raise ValueError(f"{path} has no label column {label_column!r} (columns: {header}); set `label_column`")
    else:
        label_idx = None
    feature_idx = [i for i in range(len(header)) if i != label_idx]
    if not feature_idx:
        raise ValueError(f"{path} has no feature columns besides the label")
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise ValueError(f"{path} line {line} has {len(row)} fields, the header has {len(header)}")
    x = np.empty((len(body), len(feature_idx)))
    for j, i in enumerate(feature_idx):
        column = [row[i].strip() for row in body]
        try:
            x[:, j] = np.array(column, dtype=float)
        except ValueError:
            bad = next(v for v in column if not _is_float(v))
            raise ValueError(
                f"{path}: feature column {header[i]!r} is not numeric (value {bad!r}); "
                f"drop it or name it as `label_column` if it holds the labels"
            ) from None
    u = None if label_idx is None else np.array([_label(row[label_idx].strip()) for row in body])
    return Table(x=x, u=u, feature_names=[header[i] for i in feature_idx], named=True)


def match_columns(
    table: Table, names: list[str] | None, path: str | os.PathLike, expected: str = "the model"
) -> np.ndarray:
    """The features of ``table`` in the column order ``names`` (the training data's), matched by name.

    When both sides have real names (a CSV header, and ``names`` not None), columns are reordered
    by name, and missing or unknown columns are refused with their names; otherwise (``.npz``
    data) the width is checked.
    """
    x = table.x
    if names is None or not table.named:  # no names to match: the callers check the width
        return x
    missing = [n for n in names if n not in table.feature_names]
    extra = [n for n in table.feature_names if n not in names]
    if missing or extra:
        parts = ([f"lacks column(s) {missing}"] if missing else []) + (
            [f"has column(s) {extra} that {expected} was not trained on"] if extra else []
        )
        raise ValueError(f"{path} " + " and ".join(parts) + f"; {expected} expects the columns {names}")
    index = [table.feature_names.index(n) for n in names]
    return x[:, index]


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _label(text: str) -> str | int:
    """Integer-looking labels become ints (so 1 and '1' agree); anything else stays a string."""
    try:
        return int(text)
    except ValueError:
        return text
