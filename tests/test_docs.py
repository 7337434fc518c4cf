"""The generated reference pages are current, and every command explains itself."""

from __future__ import annotations

import importlib.util

import click
import pytest
import typer
from conftest import ROOT

from loganalyzer.cli import app

spec = importlib.util.spec_from_file_location("docs_build", ROOT / "docs" / "build.py")
build = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build)


@pytest.mark.parametrize("page", list(build.PAGES))
def test_generated_page_is_current(page):
    assert (ROOT / "docs" / page).read_text(encoding="utf-8") == build.PAGES[page](), (
        f"docs/{page} is stale: run python docs/build.py"
    )


def test_every_command_has_help_and_is_documented():
    root = typer.main.get_command(app)
    page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    for path, cmd in build._commands(root, "loganalyzer"):
        assert (cmd.help or "").strip(), path
        assert f"## `{path}`" in page
        for param in cmd.params:
            if isinstance(param, click.Option):
                assert (param.help or "").strip() or param.name in ("help",), (path, param.name)
