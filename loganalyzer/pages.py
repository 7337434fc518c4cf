"""The Jinja2 setup every HTML page shares (the package's templates, escaping always on), and
how a page is written to a file."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from loganalyzer.errors import BadInput


def page_environment(**filters: Callable) -> Environment:
    """A template environment with ``filters``; autoescape is on for every template, so a
    value from a log cannot add markup."""
    env = Environment(
        loader=PackageLoader("loganalyzer", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(filters)
    return env


def write_page(path: str | os.PathLike[str], html: str) -> Path:
    """Write ``html`` to ``path``, creating its folder; BadInput naming the path when it
    cannot be written (a read-only folder, a file where a folder should be)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(html, encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"cannot write {path}: {exc.strerror or exc}") from None
    return path
