"""The docs tell the truth about the command line: every `labeler ...` command shown in README.md,
CONTRIBUTING.md and docs/*.md names a real subcommand and only options that subcommand takes."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from labeler.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
#: a command: a shell line or an inline code span that starts with `labeler`, up to a comment
COMMAND = re.compile(r"^(?:.*&& )?(?:\.venv/bin/)?labeler((?:[ \t]+[^\s#|]+)*)", re.M)


def _commands() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        text = doc.read_text("utf-8")
        shell = re.findall(r"```(?:bash|sh|console|)\n(.*?)```", text, re.S)
        spans = shell + re.findall(r"(?<!`)`([^`\n]+)`(?!`)", text)
        for span in spans:
            for match in COMMAND.finditer(span):
                found.append((doc.name, match.group(1)))
    return found


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_the_docs_show_commands() -> None:
    assert len(_commands()) >= 15


@pytest.mark.parametrize(("doc", "args"), _commands(), ids=lambda v: str(v)[:60])
def test_every_documented_command_exists(doc: str, args: str) -> None:
    parser = build_parser()
    words = shlex.split(args.replace("[", " ").replace("]", " ").replace("…", ""))
    while words and words[0].startswith("-"):  # global options: --config FILE, --version
        option = words.pop(0)
        assert option in parser._option_string_actions, (doc, args, option)
        if option == "--config" and words:
            words.pop(0)
    if not words:
        return  # `labeler --help` and the like
    commands = _subparsers(parser)
    assert words[0] in commands, f"{doc}: no subcommand {words[0]!r} in `labeler {args}`"
    known = commands[words[0]]._option_string_actions
    for word in words[1:]:
        option = word.split("=", 1)[0]
        if option.startswith("-") and option != "-":
            assert option in known, f"{doc}: `labeler {words[0]}` has no option {option}"
