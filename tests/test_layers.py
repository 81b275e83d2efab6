"""The library never imports the application (``ginmi.app``), and the 0.1 import paths still work
for one release with a DeprecationWarning naming the new place."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

import ginmi

PACKAGE = Path(ginmi.__file__).parent
# the deprecated forwarding modules of 0.1 and the modules their names now live in
OLD_PATHS = {
    "ginmi.cli": ("main", "ginmi.app.cli"),
    "ginmi.report": ("write_report", "ginmi.app.report"),
    "ginmi.plots": ("save", "ginmi.app.plots"),
    "ginmi.logging_utils": ("read_metrics", "ginmi.app.logging_utils"),
    "ginmi.pipelines.synthetic": ("run_synthetic", "ginmi.app.synthetic"),
    "ginmi.pipelines.images": ("run_images", "ginmi.app.images"),
    "ginmi.pipelines.user": ("run_fit", "ginmi.app.user"),
    "ginmi.pipelines.baselines": ("baseline_recovery", "ginmi.tasks.recovery_baselines"),
    "ginmi.pipelines.common": ("compute_latents", "ginmi.vector"),
}


def _imports(path: Path) -> set[str]:
    """The ginmi modules a source file imports (at any depth: late imports count too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return {n for n in names if n.startswith("ginmi")}


def _library_files() -> list[Path]:
    deprecated = {PACKAGE / (name.removeprefix("ginmi.").replace(".", "/") + ".py") for name in OLD_PATHS}
    return [
        p
        for p in PACKAGE.rglob("*.py")
        if "app" not in p.relative_to(PACKAGE).parts
        and p not in deprecated
        and p.name not in ("__main__.py", "_deprecated.py")
        and p.parent.name != "pipelines"
    ]


def test_the_library_never_imports_the_application():
    files = _library_files()
    assert len(files) > 15 and PACKAGE / "estimators.py" in files
    offenders = {
        str(p.relative_to(PACKAGE)): sorted(
            n for n in _imports(p) if n.startswith("ginmi.app") or n in OLD_PATHS or n == "ginmi.pipelines"
        )
        for p in files
    }
    assert not {k: v for k, v in offenders.items() if v}


def test_the_check_sees_a_library_module_that_imports_the_application(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from ginmi.app import plots\n")
    assert "ginmi.app" in _imports(bad)


@pytest.mark.parametrize("old", sorted(OLD_PATHS))
def test_old_import_paths_warn_and_forward(old):
    name, new = OLD_PATHS[old]
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {new}"):
        module = importlib.import_module(old)
    assert getattr(module, name) is getattr(importlib.import_module(new), name)
    with pytest.raises(AttributeError, match="has no attribute"):
        module.no_such_name  # noqa: B018
