"""The library's own errors: each carries the exit code the command contract gives it.

The CLI catches ``LogAnalyzerError`` once and prints its message as one line; the library
raises one of these with a message that names the wrong value and what is accepted.
"""

from __future__ import annotations

import contextlib
import operator
import os
from collections.abc import Iterable


class LogAnalyzerError(Exception):
    """Base of every error loganalyzer raises on purpose."""

    #: Exit code of the command that meets it (DESIGN.md, the command contract).
    exit_code = 2


class BadInput(LogAnalyzerError, ValueError):
    """A value given by the user is wrong: the message names it and what is accepted."""


class NotAStore(BadInput):
    """A path given as a store holds no loganalyzer store."""


class StoreError(LogAnalyzerError, RuntimeError):
    """A store that cannot be used as asked (exit 2: the path or its rights are wrong)."""


class StoreChanged(StoreError):
    """A part the manifest listed was removed while it was read: a compaction (or a prune)
    committed under the reader. The store is whole; the same query run again reads the new
    layout (``store.duck.part_gone`` says which errors are this)."""


class NothingFound(LogAnalyzerError, LookupError):
    """The query was valid and matched nothing."""

    exit_code = 1


def as_list(values: Iterable | str | os.PathLike | None) -> list:
    """``values`` as a list, a lone string or path as its one item: a caller who gives one
    path or domain where a list is asked means that one (iterating a string gives its
    characters, and ``"/"`` is the root folder)."""
    if values is None:
        return []
    if isinstance(values, (str, bytes, os.PathLike)):
        return [values]
    try:
        return list(values)
    except TypeError:
        raise BadInput(f"{values!r}: give one value or a list of them") from None


def whole(name: str, value: object) -> int:
    """``value`` as a whole number: an int, or its digits as text (a form or widget's value);
    BadInput naming ``name`` for anything else (the range is checked where it is known)."""
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value)
    if not isinstance(value, (bool, str)):
        with contextlib.suppress(TypeError):
            return operator.index(value)  # an int, numpy's too
    raise BadInput(f"{name} {value!r}: give a whole number")


def as_text(name: str, value: object) -> str | None:
    """``value`` when it is text (or None); BadInput naming ``name`` for anything else."""
    if value is None or isinstance(value, str):
        return value
    raise BadInput(f"{name} {value!r}: give it as text")
