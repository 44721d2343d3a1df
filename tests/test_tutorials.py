"""Executes every tutorial notebook top to bottom, offline, as CI does.

A notebook fails the test when any cell raises (each notebook asserts its own
agreement between the LR attributions and autograd's), when it runs past its
time limit, or when a fresh run no longer draws the figures its committed
outputs show.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))
TIMEOUT_S = 240  # per notebook; together they run in about three minutes on 2 cores


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
    client = nbclient.NotebookClient(
        nb,
        timeout=TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    assert _figures(nb) == _figures(committed), (
        f"{path.name}: a fresh run draws different figures than the committed "
        "outputs; re-execute the notebook and commit it."
    )
