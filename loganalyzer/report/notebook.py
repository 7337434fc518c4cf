"""Whether a report shown in a notebook carries plotly.js (about 4.6 MB) or draws with the copy
an earlier output of the same notebook carries, as plotly's own notebook renderer does.

A notebook keeps every output: carried by each report, plotly.js made a notebook 5 MB larger
per report. Carried once, it must still be in the saved notebook, or a reopened notebook draws
no chart. So a report carries it unless the front end names the cell being run (JupyterLab and
Notebook 7 send its ``cellId``) and a report of another cell of the same front end carried it,
and that cell has not been run again (a run replaces its output) nor deleted (the front end
lists ``deletedCells``) since. Outside such a notebook (a console, a front end that does not
name its cells, plain Python), every report carries it. Nothing tells the kernel that an
output was cleared by hand: the charts that relied on it then say so where they would be.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["carries_plotly", "forget"]

#: Front end session -> the cell whose output carries plotly.js.
_CARRIERS: dict[str, str] = {}
_watching: set[int] = set()


def _shell() -> Any:
    """The running IPython kernel's shell, without importing IPython outside one."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell if getattr(shell, "kernel", None) is not None else None


def _on_run(info: Any) -> None:
    """A cell is run: its old output (with any plotly.js) is about to be replaced."""
    cell = getattr(info, "cell_id", None)
    for session in [s for s, c in _CARRIERS.items() if c == cell]:
        del _CARRIERS[session]


def carries_plotly() -> bool:
    """True when the report being shown must carry plotly.js itself (see the module)."""
    shell = _shell()
    if shell is None:
        return True
    try:
        request = shell.kernel.get_parent("shell") or {}
    except Exception:  # noqa: BLE001 - a kernel without get_parent: carry, the safe way
        return True
    meta = request.get("metadata") or {}
    cell, session = meta.get("cellId"), (request.get("header") or {}).get("session")
    if not cell or not session:
        return True
    if id(shell) not in _watching:  # the first report: from now on, learn of re-runs
        shell.events.register("pre_run_cell", _on_run)
        _watching.add(id(shell))
    held = _CARRIERS.get(session)
    if held is not None and held not in (meta.get("deletedCells") or []):
        return False  # an earlier output (or this cell's, in this run) carries it
    _CARRIERS[session] = cell
    return True


def forget() -> None:
    """Make the next report shown carry plotly.js again (after clearing outputs by hand)."""
    _CARRIERS.clear()
