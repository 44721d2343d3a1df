"""Executes every tutorial notebook top to bottom, offline, as CI does.

A notebook fails the test when any cell raises (each notebook asserts its own
agreement between the LR attributions and autograd's), when the whole notebook
runs past TIMEOUT_S, or when a fresh run no longer draws the figures its
committed outputs show.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))
# Per notebook. Measured on a loaded 2-core machine: the slowest (04, efficientnet)
# runs in about 75 s, all five in about 135 s.
TIMEOUT_S = 300


def _figures(nb) -> list[tuple[int, tuple[str, ...]]]:
    """(cell index, mime types) of every rich display output."""
    found = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            if output.output_type in ("display_data", "execute_result"):
                kinds = tuple(sorted(k for k in output.data if k.startswith("image/")))
                if kinds:
                    found.append((index, kinds))
    return found


def test_every_notebook_is_collected():
    assert NOTEBOOKS, f"no notebooks found in {TUTORIALS}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path: Path) -> None:
    committed = nbformat.read(path, as_version=4)
    nb = copy.deepcopy(committed)
    deadline = time.monotonic() + TIMEOUT_S

    def remaining(cell) -> int:
        # nbclient's timeout is per cell; this makes it a budget for the notebook.
        return max(1, int(deadline - time.monotonic()))

    client = nbclient.NotebookClient(
        nb,
        timeout_func=remaining,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    assert _figures(nb) == _figures(committed), (
        f"{path.name}: a fresh run draws different figures than the committed "
        "outputs; re-execute the notebook and commit it."
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_was_executed(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    counts = [c.execution_count for c in code]
    assert counts == list(range(1, len(code) + 1)), (
        f"{path.name} was not executed top to bottom in one run before it was "
        f"committed (execution counts {counts}); re-execute it and commit it."
    )
