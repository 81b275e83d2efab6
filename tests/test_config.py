"""Config dataclasses <-> TOML files: writer, reader, type checks, None, unknown keys."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import pytest

from ginmi.app.synthetic import SyntheticConfig
from ginmi.app.user import FitConfig
from ginmi.config import (
    config_from_dict,
    flatten,
    option,
    option_names,
    read_config_file,
    to_toml,
    write_config_file,
)
from ginmi.training import TrainConfig


@dataclass
class Inner:
    rate: float = option(0.5, "a rate")
    limit: float | None = option(None, "an optional limit")


@dataclass
class Demo:
    name: str = option("a", "a name", choices=("a", "b"))
    count: int = option(3, "a count")
    flag: bool = option(True, "a flag")
    sizes: tuple[float, ...] = option((1.0, 2.5), "sizes")
    out: str | None = option(None, "an optional path")
    inner: Inner = field(default_factory=Inner, metadata={"help": "inner"})


def test_toml_round_trip_of_every_value_kind(tmp_path):
    config = Demo(
        name="b",
        count=7,
        flag=False,
        sizes=(0.1, 1e-20, 3.0),
        out='we"ird\\path\n',
        inner=Inner(rate=float("inf"), limit=None),
    )
    path = tmp_path / "c.toml"
    write_config_file(path, config, header="two\nlines")
    assert path.read_text().startswith("# two\n# lines\n")
    assert config_from_dict(Demo, read_config_file(path, Demo)) == config


def test_real_command_configs_round_trip(tmp_path):
    for cls in (SyntheticConfig, FitConfig):
        config = cls()
        path = tmp_path / f"{cls.__name__}.toml"
        write_config_file(path, config)
        assert config_from_dict(cls, read_config_file(path, cls)) == config


def test_none_is_written_as_string_and_read_back_for_optional_options():
    assert 'out = "none"' in to_toml(flatten(Demo()))
    assert config_from_dict(Demo, {"out": "none", "limit": "None"}).inner.limit is None
    # a non-optional string option keeps the text "none"
    with pytest.raises(ValueError, match="`name` must be one of"):
        config_from_dict(Demo, {"name": "none"})


def test_dashes_tables_and_type_coercion(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('count = 4\n[inner]\nrate = 1\n"grad-clip" = 2\n')
    flat = read_config_file(path)
    assert flat == {"count": 4, "rate": 1, "grad_clip": 2}
    config = config_from_dict(Demo, {"count": 4, "rate": 1})
    assert config.inner.rate == 1.0 and isinstance(config.inner.rate, float)
    assert config_from_dict(Demo, {"sizes": [1, 2]}).sizes == (1.0, 2.0)
    assert config_from_dict(Demo, {"count": 4.0}).count == 4


@pytest.mark.parametrize(
    "values, message",
    [
        ({"count": "3"}, "'count' must be int"),
        ({"count": 2.5}, "'count' must be int"),
        ({"flag": 1}, "'flag' must be bool"),
        ({"rate": "fast"}, "'rate' must be float"),
        ({"sizes": ["x"]}, "'sizes' must be float"),
        ({"name": "c"}, "`name` must be one of"),
        ({"colour": "red"}, "unknown option"),
    ],
)
def test_bad_values_name_the_option(values, message):
    with pytest.raises(ValueError, match=message):
        config_from_dict(Demo, values)


def test_unknown_key_in_file_is_named(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("epochs = 2\nepoch = 3\n")
    with pytest.raises(ValueError, match=r"unknown option 'epoch' in config file .*c\.toml"):
        read_config_file(path, TrainConfig)


def test_duplicate_invalid_and_missing_files(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("n_samples = 2\nn-samples = 3\n")
    with pytest.raises(ValueError, match="given twice"):
        read_config_file(path)
    path.write_text("epochs = \n")
    with pytest.raises(ValueError, match="not valid TOML"):
        read_config_file(path)
    with pytest.raises(FileNotFoundError, match="no such config file"):
        read_config_file(tmp_path / "missing.toml")


def test_comment_out_keeps_the_value_visible_but_unread(tmp_path):
    path = tmp_path / "c.toml"
    write_config_file(path, Demo(out="runs/x"), comment_out=("out",))
    assert '# out = "runs/x"' in path.read_text()
    assert "out" not in read_config_file(path, Demo)


def test_option_names_cover_groups():
    names = option_names(SyntheticConfig)
    assert {"n_samples", "epochs", "threshold", "width", "tensorboard"} <= set(names)
    assert len(names) == len(flatten(SyntheticConfig()))


def test_nan_is_written_as_toml_nan(tmp_path):
    path = tmp_path / "c.toml"
    write_config_file(path, dataclasses.replace(Demo(), inner=Inner(rate=math.nan)))
    assert math.isnan(config_from_dict(Demo, read_config_file(path)).inner.rate)
