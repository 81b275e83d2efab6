"""The README stays what a newcomer needs first: short, the two set-up commands, snippets that import
only from ``ginmi``, and links to the documentation pages that hold the rest. (Its Python snippets
run as written in ``tests/test_docs.py``, with those of the docs pages.)"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"^```python\n(.*?)^```", README, flags=re.S | re.M)


def test_the_readme_is_short():
    assert len(README.splitlines()) <= 200, "the README holds what a newcomer needs first; move the rest to docs/"


def test_the_two_setup_commands():
    """Install and run the main job; install and run the tests (as .ci/run does)."""
    assert "pip install torch==2.13.0 && pip install -e . && ginmi synthetic" in README
    assert 'pip install torch==2.13.0 && pip install -e ".[test]" && python -m pytest' in README


def test_python_snippets_import_only_from_ginmi():
    assert BLOCKS
    for code in BLOCKS:
        modules = re.findall(r"^\s*(?:from|import)\s+(ginmi\S*)", code, flags=re.M)
        assert modules and set(modules) == {"ginmi"}, modules


def test_links_to_the_docs_pages_resolve():
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README)
    local = [link for link in links if not re.match(r"https?:", link)]
    assert {"docs/cli.md", "docs/python-api.md", "docs/reproducing-the-paper.md", "docs/results-schema.md"} <= set(
        local
    )
    for link in local:
        assert (ROOT / link).is_file(), f"README links to {link}, which does not exist"
