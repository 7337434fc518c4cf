"""The Jinja2 setup every HTML page shares (the package's templates, escaping always on), how a
page is written to a file, and how a log's values are shown (bidirectional controls, subjects)
and counted things are said."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import uuid
from collections.abc import Callable, Iterable
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


def json_text(value: object, *, indent: int | None = 2, default: Callable | None = None) -> str:
    """``value`` as JSON, letters of any script as they are but the bidirectional controls
    escaped (``\\u202e``): the same value to a program, and no reordered text on a terminal."""
    text = json.dumps(value, indent=indent, ensure_ascii=False, default=default)
    return BIDI.sub(lambda m: f"\\u{ord(m[0]):04x}", text)


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


def check_page_path(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path; BadInput naming it when no page can be written there (a folder, an
    empty name): checked before anything is written beside it."""
    path = Path(path)
    if not path.name or path.is_dir():  # "" is ".", a folder
        raise BadInput(f"cannot write {path}: Is a directory")
    return path


def write_page(path: str | os.PathLike[str], html: str | Iterable[str]) -> Path:
    """Write ``html`` (the page, or its parts in order as they are made) to ``path``,
    creating its folder; BadInput naming the path when it cannot be written (a read-only
    folder, a file where a folder should be). The page is written beside and renamed into
    place: a kill, or an error while its parts are made, leaves the old page or the new one."""
    path = check_page_path(path)
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with part.open("w", encoding="utf-8") as out:
            for chunk in [html] if isinstance(html, str) else html:
                out.write(chunk)
        os.replace(part, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            part.unlink(missing_ok=True)
        raise BadInput(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            part.unlink(missing_ok=True)
        raise
    return path


def staging_folder(folder: Path) -> Path:
    """A new empty folder beside ``folder`` to write its next pages into (``replace_pages``
    moves them in); hidden, so a listing of the reports does not show it."""
    staging = folder.with_name(f".{folder.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.part")
    try:
        staging.parent.mkdir(parents=True, exist_ok=True)
        staging.mkdir()  # with the umask's rights, as the folder it becomes
    except OSError as exc:
        raise BadInput(f"cannot write {folder}: {exc.strerror or exc}") from None
    return staging


def replace_pages(folder: Path, staging: Path | None, ours: re.Pattern[str]) -> list[Path]:
    """Make ``folder`` hold the pages in ``staging`` (None: no pages) instead of those an
    earlier run wrote there, the files whose names match ``ours``; returns the other files
    found in it, which are left as they were.

    A folder holding only our pages is replaced whole by two renames, so a kill leaves the
    old pages or the new ones, never a mix; the hidden folders a killed run left beside it
    are emptied of our pages and removed. BadInput naming ``folder`` when it cannot be
    written."""
    try:
        for left in folder.parent.glob(f".{glob.escape(folder.name)}.*"):
            if left != staging and left.suffix in (".part", ".old") and left.is_dir():
                _remove_pages(left, ours)
        if folder.exists() and not folder.is_dir():
            raise BadInput(f"cannot write {folder}: not a folder")
        others = []
        if folder.is_dir():
            others = sorted(p for p in folder.iterdir() if not ours.fullmatch(p.name))
        if others or folder.is_symlink():  # only our pages are replaced, one by one
            for p in folder.iterdir():
                if ours.fullmatch(p.name) and not p.is_dir():
                    p.unlink()
            if staging is not None:
                for p in staging.iterdir():
                    os.replace(p, folder / p.name)
                staging.rmdir()
            return others
        aside = folder.with_name(f".{folder.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.old")
        if folder.is_dir():
            folder.rename(aside)
        if staging is not None:
            staging.rename(folder)
        if aside.is_dir():
            _remove_pages(aside, ours)
    except OSError as exc:
        raise BadInput(f"cannot write {folder}: {exc.strerror or exc}") from None
    return []


def _remove_pages(folder: Path, ours: re.Pattern[str]) -> None:
    """Our pages in ``folder`` deleted, and the folder when that empties it."""
    for p in folder.iterdir():
        if ours.fullmatch(p.name) and not p.is_dir():
            p.unlink()
    with contextlib.suppress(OSError):  # another file in it: kept, and the folder too
        folder.rmdir()


def counted(n: int, word: str, words: str | None = None) -> str:
    """``n`` with its noun, singular for one: "1 file", "2,130 files" (``words``: an irregular
    plural)."""
    return f"{n:,} {word if n == 1 else words or word + 's'}"


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
