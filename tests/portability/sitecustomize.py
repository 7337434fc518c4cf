"""Portability mode: loganalyzer's own code runs on Linux as far as possible as on Windows.

Active in every Python process started with this folder on ``PYTHONPATH`` (Python imports
``sitecustomize`` at start-up) and ``LOGANALYZER_PORTABILITY=1``; ``tests/conftest.py`` sets
both for the test processes and everything they start (the ``loganalyzer`` command, pool
workers, Dask schedulers and workers). In this mode:

- the multiprocessing start method is ``spawn`` (Windows' and macOS's only one);
- ``os.fork`` and ``os.forkpty`` do not exist, and loganalyzer's modules see no
  ``os.register_at_fork`` either;
- ``fcntl``, ``resource`` and ``termios`` (POSIX only) cannot be imported by loganalyzer's
  modules. Only by them: the standard library and third-party libraries (pytest, Dask, rich,
  filelock ...) import these on Linux and choose their Windows code on Windows themselves.
"""

from __future__ import annotations

import builtins
import importlib
import os
import sys
import types

BLOCKED = frozenset({"fcntl", "resource", "termios"})
#: Top-level packages whose imports are checked.
OWN = frozenset({"loganalyzer", "eventcodes"})
#: What os lacks on Windows.
NO_FORK = frozenset({"fork", "forkpty", "register_at_fork"})


def active() -> bool:
    return os.environ.get("LOGANALYZER_PORTABILITY") == "1"


def _own(globals_: dict | None) -> bool:
    if not globals_:
        return False
    spec = globals_.get("__spec__")
    name = getattr(spec, "name", None) or globals_.get("__name__") or ""
    return name.split(".")[0] in OWN


class _WindowsOs(types.ModuleType):
    """``os`` as loganalyzer's modules see it: without what Windows lacks."""

    def __getattr__(self, name: str):
        if name in NO_FORK:
            raise AttributeError(f"module 'os' has no attribute {name!r} (portability mode)")
        return getattr(os, name)


_os = _WindowsOs("os", os.__doc__)
_real_import = builtins.__import__
_real_import_module = importlib.import_module


def _check(name: str) -> None:
    if name.split(".")[0] in BLOCKED:
        raise ModuleNotFoundError(
            f"No module named {name!r} (portability mode: not on Windows)", name=name
        )


def _import(name, globals=None, locals=None, fromlist=(), level=0):  # noqa: A002
    if level == 0 and _own(globals):
        _check(name)
        if name == "os" or name.startswith("os."):
            module = _real_import(name, globals, locals, fromlist, level)
            return _os if module is os else module
    return _real_import(name, globals, locals, fromlist, level)


def _import_module(name, package=None):
    if _own(sys._getframe(1).f_globals):
        _check(name)
    return _real_import_module(name, package)


def install() -> None:
    """Turn the mode on in this process (once)."""
    if getattr(builtins.__import__, "portability", False):
        return
    for name in ("fork", "forkpty"):
        if hasattr(os, name):
            delattr(os, name)
    _import.portability = True
    builtins.__import__ = _import
    importlib.import_module = _import_module
    import multiprocessing

    multiprocessing.set_start_method("spawn", force=True)


if active():
    install()
