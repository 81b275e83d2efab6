"""MkDocs hooks: the parts of the site generated from the code at build time.

A page asks for generated text with a marker comment on a line of its own:

- ``<!-- ginmi:cli -->``: every command and option of ``ginmi``, read from the argparse parser
  (:func:`ginmi.app.cli.build_parser`), so the page cannot drift from ``ginmi COMMAND --help``;
- ``<!-- ginmi:include PATH -->``: the text of a file of the repository (``BENCHMARKS.md``); the
  local files it links to (its figures) are published beside it;
- ``<!-- ginmi:results-schema COMMAND -->``: the keys of that command's ``results.json``, generated
  from its typed results in :mod:`ginmi.app.results` (the classes the command writes and reads).

After rendering, the reST roles of the docstrings (``:func:`~ginmi.mi.mutual_information```)
are shown as plain code (``mutual_information``).

``tests/test_docs.py`` imports this file to check the generated text.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
_MARKER = re.compile(r"^<!-- ginmi:(?P<name>[a-z-]+)(?: (?P<arg>\S+))? -->$", re.M)
_LOCAL_LINK = re.compile(r"\]\((?!https?:|#|/)([^)\s#]+)\)")
_ROLE = re.compile(r":(?:func|class|meth|data|attr|mod|exc|obj|py:\w+):<code>(~?)([^<]*)</code>")


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|").replace("<", "&lt;")


def cli_commands() -> dict[str, argparse.ArgumentParser]:
    """The subparser of every ``ginmi`` command, in the parser's order."""
    from ginmi.app.cli import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def cli_reference() -> str:
    """Markdown: one section per command, a table of its arguments and options as ``--help`` shows them."""
    out: list[str] = []
    for name, sub in cli_commands().items():
        formatter = sub._get_formatter()
        out += [
            f"### `ginmi {name}`",
            "",
            _cell(sub.description or ""),
            "",
            "| argument or option | what it does |",
            "|---|---|",
        ]
        for action in sub._actions:
            if action.help == argparse.SUPPRESS or "-h" in action.option_strings:
                continue
            invocation = formatter._format_action_invocation(action)
            help_text = formatter._expand_help(action) if action.help else ""
            invocation = invocation.replace("|", "`\\|`")  # `--x | --no-x`: a pipe outside code
            out.append(f"| `{invocation}` | {_cell(help_text)} |")
        out.append("")
    return "\n".join(out)


def results_schema(command: str) -> str:
    """The keys of ``command``'s ``results.json`` as a Markdown table (key path, type, meaning)."""
    from ginmi.app.results import RESULTS, schema_markdown

    return schema_markdown(RESULTS[command]).rstrip("\n") + "\n"


def expand(markdown: str) -> str:
    """The page with every marker replaced by its generated text."""

    def replace(match: re.Match[str]) -> str:
        name, arg = match["name"], match["arg"]
        if name == "cli":
            return cli_reference()
        if name == "include":
            return (ROOT / arg).read_text(encoding="utf-8")
        if name == "results-schema":
            return results_schema(arg)
        raise ValueError(f"unknown docs marker {match[0]!r}")

    return _MARKER.sub(replace, markdown)


def linked_files(markdown: str) -> list[str]:
    """Repository files linked from the files a page includes, as paths relative to the root."""
    found = []
    for match in _MARKER.finditer(markdown):
        if match["name"] == "include":
            for target in _LOCAL_LINK.findall((ROOT / match["arg"]).read_text(encoding="utf-8")):
                if (ROOT / target).is_file():
                    found.append(target)
    return found


def on_files(files: Any, config: Any, **kwargs: Any) -> Any:
    from mkdocs.structure.files import File

    for page in list(files.documentation_pages()):
        for target in linked_files(Path(page.abs_src_path).read_text(encoding="utf-8")):
            if files.get_file_from_path(target) is None:
                files.append(File.generated(config, target, abs_src_path=str(ROOT / target)))
    return files


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    return expand(markdown)


def on_page_content(html: str, **kwargs: Any) -> str:
    def code(match: re.Match[str]) -> str:
        tilde, target = match.groups()
        return f"<code>{target.rsplit('.', 1)[-1] if tilde else target}</code>"

    return _ROLE.sub(code, html)
