"""The Jinja2 setup every HTML page shares: the package's templates, escaping always on."""

from __future__ import annotations

from collections.abc import Callable

from jinja2 import Environment, PackageLoader, select_autoescape


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
