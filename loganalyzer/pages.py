"""The Jinja2 setup every HTML page shares (the package's templates, escaping always on), how a
page is written to a file, and how a log's values are shown (bidirectional controls, subjects)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from pathlib import Path
from typing import TYPE_CHECKING

from loganalyzer.errors import BadInput

if TYPE_CHECKING:
    from jinja2 import Environment

#: Characters that reorder the text around them (bidirectional overrides, isolates and marks):
#: in a log value they make "\u202emoc.osotnoc@nimda" read as admin@contoso.com. Shown as
#: U+FFFD on every page and in the terminal.
BIDI = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _visible(value: object) -> object:
    """A value as a page shows it: bidirectional controls replaced (markup stays markup)."""
    if isinstance(value, str) and BIDI.search(value):
        shown = BIDI.sub("\N{REPLACEMENT CHARACTER}", value)
        return type(value)(shown) if hasattr(value, "__html__") else shown  # Markup stays
    return value


def page_environment(**filters: Callable) -> Environment:
    """A template environment with ``filters``; autoescape is on for every template, so a
    value from a log cannot add markup, and every value is ``_visible``."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader("loganalyzer", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_visible,
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


def display_subject(text: str | None) -> str:
    """A subject for display: RFC 2047 encoded-words decoded (the store keeps the raw text).

    Text that is not encoded, or whose encoding is broken, comes back unchanged.
    """
    if not text or "=?" not in text:
        return text or ""
    try:
        return str(make_header(decode_header(text)))
    except (HeaderParseError, LookupError, UnicodeError, ValueError):
        return text
