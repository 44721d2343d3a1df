r"""The host side of ``captum-lr run``: execute a notebook as it stands, with
:func:`~captum_lr.patch_captum` active in its kernel.

The notebook's cells are run unchanged by nbclient, one by one, in a kernel
where :func:`captum_lr.run.recorder.start` ran first as a silent execute
request (no cell is added; the execution counts of the notebook's own cells
start at 1). After each cell the records of the attribution calls it made
are read from the kernel's log and attached to the cell's index.

Failures: a cell that raises :class:`~captum_lr.NeedsAutogradError` (a
backward-rewriting method such as DeepLift) is reported with its index and
first line, and the run goes on with the next cell. A cell that fails for any
other reason (or runs past the timeout) stops the run, unless
``keep_going=True``; the executed notebook is written either way, with the
error in the cell's outputs.
A cell that runs past the timeout is interrupted (its calls so far stay
recorded under it), so the next cell starts on an idle kernel.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

AUTOGRAD_ERROR = "NeedsAutogradError"


@dataclass
class CallRecord:
    r"""
    One outermost Captum gradient call made by a cell.

    Args:

        cell (int): The index of the cell in the notebook (0-based, markdown
                    cells included, as nbformat counts).
        method (str): The Captum method, e.g. ``"IntegratedGradients"``,
                    ``"NoiseTunnel(Saliency)"``, ``"FGSM"``,
                    ``"sensitivity_max(IntegratedGradients)"``.
        inputs (list[list[int]]): The shapes of its input tensors.
        rows (int): Forward rows the estimator sent.
        model_rows (int or None): Rows the model received during the call,
                    Captum's own (convergence deltas) included; None when the
                    forward function is not a ``torch.nn.Module``.
        seconds (float or None): Wall time of the estimator's call.
        cosine (float or None): With ``compare``: cosine with autograd's
                    result of the same call.
        max_rel_err (float or None): With ``compare``: ``max |LR - autograd|
                    / max |autograd|``.
        note (str or None): Why a call was not compared, if it was not.
        error (str or None): The exception the call raised, if any.
    """

    cell: int
    method: str
    inputs: list[list[int]]
    rows: int
    model_rows: int | None = None
    seconds: float | None = None
    cosine: float | None = None
    max_rel_err: float | None = None
    note: str | None = None
    error: str | None = None

    @property
    def shape(self) -> str:
        r"""The input shapes as text, e.g. ``(4, 6)`` or ``(4, 6) + (4, 2)``."""
        return " + ".join(str(tuple(s)) for s in self.inputs) or "-"


@dataclass
class CellFailure:
    r"""
    A cell that raised.

    Args:

        cell (int): Its index in the notebook.
        first_line (str): Its first non-empty source line.
        ename (str): The exception's class name.
        evalue (str): The exception's message.
    """

    cell: int
    first_line: str
    ename: str
    evalue: str

    @property
    def needs_autograd(self) -> bool:
        r"""Whether the cell used a backward-rewriting method."""
        return self.ename == AUTOGRAD_ERROR


@dataclass
class NotebookRun:
    r"""
    What :func:`run_notebook` did.

    Args:

        notebook (Path): The notebook that ran.
        output (Path or None): Where the executed notebook was written.
        settings (dict): The estimator's preset and overrides, and ``compare``.
        code_cells (int): Code cells in the notebook.
        cells_run (int): Code cells executed (failed ones included).
        calls (list[CallRecord]): Every outermost attribution call.
        failures (list[CellFailure]): Cells that raised, in order.
    """

    notebook: Path
    output: Path | None
    settings: dict[str, Any]
    code_cells: int = 0
    cells_run: int = 0
    calls: list[CallRecord] = field(default_factory=list)
    failures: list[CellFailure] = field(default_factory=list)

    @property
    def total_rows(self) -> int:
        r"""Forward rows the estimator sent over the whole notebook."""
        return sum(c.rows for c in self.calls)

    @property
    def needs_autograd(self) -> list[CellFailure]:
        r"""Cells that failed only because they rewrite the backward pass."""
        return [f for f in self.failures if f.needs_autograd]

    @property
    def errors(self) -> list[CellFailure]:
        r"""Cells that failed for any other reason."""
        return [f for f in self.failures if not f.needs_autograd]

    @property
    def exit_status(self) -> int:
        r"""0 when every cell ran or failed only for needing autograd, else 1."""
        return 1 if self.errors else 0

    def to_dict(self) -> dict[str, Any]:
        r"""A JSON-ready summary (what ``--report`` writes)."""
        return {
            "notebook": str(self.notebook),
            "output": str(self.output) if self.output else None,
            "settings": self.settings,
            "code_cells": self.code_cells,
            "cells_run": self.cells_run,
            "total_rows": self.total_rows,
            "calls": [_jsonable(vars(c)) for c in self.calls],
            "failures": [vars(f) for f in self.failures],
            "exit_status": self.exit_status,
        }

    def format(self) -> str:
        r"""The report ``captum-lr run`` prints."""
        compare = bool(self.settings.get("compare"))
        width = max([24] + [len(c.method) for c in self.calls])
        header = f"{'cell':>4}  {'method':<{width}} {'inputs':<16} {'rows':>10}"
        header += f" {'model rows':>11}"
        if compare:
            header += f" {'cosine':>8} {'max rel err':>11}"
        lines = [header]
        for c in self.calls:
            line = f"{c.cell:>4}  {c.method:<{width}} {c.shape:<16} {c.rows:>10,}"
            line += f" {_int(c.model_rows):>11}"
            if compare:
                line += f" {_num(c.cosine, '.4f'):>8} {_num(c.max_rel_err, '.1e'):>11}"
            if c.note:
                line += f"  ({c.note})"
            if c.error:
                line += f"  (raised {c.error})"
            lines.append(line)
        if not self.calls:
            lines.append("   (no Captum gradient calls)")
        lines.append(
            f"total: {len(self.calls)} attribution call(s), "
            f"{self.total_rows:,} forward rows sent by the estimator"
        )
        lines.append(
            f"cells: {self.cells_run} of {self.code_cells} code cells run, "
            f"{len(self.needs_autograd)} need autograd, {len(self.errors)} failed"
        )
        for f in self.failures:
            kind = "needs autograd" if f.needs_autograd else "failed"
            lines.append(f"cell {f.cell} {kind}: `{f.first_line}`")
            lines.append(f"    {f.ename}: {_shorten(f.evalue)}")
        if self.output is not None:
            lines.append(f"executed notebook: {self.output}")
        return "\n".join(lines)


def _jsonable(record: dict[str, Any]) -> dict[str, Any]:
    """NaN and infinite numbers as None (strict JSON has neither)."""
    return {
        k: None if isinstance(v, float) and not math.isfinite(v) else v
        for k, v in record.items()
    }


def _int(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _num(value: float | None, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def _shorten(text: str, limit: int = 600) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first_line(source: str) -> str:
    for line in source.splitlines():
        if line.strip():
            return line.strip()
    return ""


def _tail(path: Path, lines: int = 20) -> str:
    text = path.read_text(errors="replace").strip() if path.exists() else ""
    return (
        ("\nkernel stderr:\n" + "\n".join(text.splitlines()[-lines:])) if text else ""
    )


def _setup_code(config: dict[str, Any]) -> str:
    """The hidden setup request: binds no name in the user's namespace."""
    return (
        '__import__("importlib").import_module("captum_lr.run.recorder")'
        f".start({json.dumps(json.dumps(config))})"
    )


def _read_records(log: Path, offset: int, cell: int) -> tuple[list[CallRecord], int]:
    if not log.exists():
        return [], offset
    with open(log, encoding="utf-8") as handle:
        handle.seek(offset)
        text = handle.read()
        offset = handle.tell()
    records = []
    for line in text.splitlines():
        if line.strip():
            records.append(CallRecord(cell=cell, **json.loads(line)))
    return records, offset


def _stop_cell(client: Any, cell: Any) -> bool:
    """Interrupts the kernel's running cell (after a timeout) and waits until
    the kernel is idle: a silent request queued behind the cell answers once
    the cell has stopped. False if the kernel did not answer in time."""
    from nbclient.exceptions import CellTimeoutError  # noqa: PLC0415
    from nbclient.util import ensure_async, run_sync  # noqa: PLC0415

    async def interrupt() -> None:
        await ensure_async(client.km.interrupt_kernel())

    run_sync(interrupt)()
    msg_id = client.kc.execute("", silent=True, store_history=False)
    try:
        return client.wait_for_reply(msg_id, cell) is not None
    except CellTimeoutError:
        return False


def _prepare_kernel(
    client: Any, nb: Any, config: dict[str, Any], kernel_log: Path
) -> None:
    """Records the kernel's language in the notebook and turns the switch on
    in the kernel, with the call log at ``config["log"]``."""
    assert client.kc is not None
    info = client.wait_for_reply(client.kc.kernel_info())
    if info is not None and "language_info" in info["content"]:
        nb.metadata["language_info"] = info["content"]["language_info"]
    reply = client.wait_for_reply(
        client.kc.execute(_setup_code(config), silent=True, store_history=False)
    )
    content = reply["content"] if reply is not None else {}
    if content.get("status") != "ok":
        raise RuntimeError(
            "setting up the kernel failed: "
            f"{content.get('ename')}: {content.get('evalue')}" + _tail(kernel_log)
        )


def _execute_cell(
    client: Any, cell: Any, index: int, kernel_log: Path
) -> tuple[CellFailure | None, bool]:
    """Runs one cell: its failure (None if it ran) and whether the kernel is
    gone (died, or a timed-out cell could not be stopped)."""
    from nbclient.exceptions import (  # noqa: PLC0415
        CellExecutionError,
        CellTimeoutError,
        DeadKernelError,
    )

    try:
        client.execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
    except CellExecutionError as error:
        failure = CellFailure(
            index, _first_line(cell.source), error.ename, error.evalue
        )
        return failure, False
    except (CellTimeoutError, DeadKernelError) as error:
        dead = isinstance(error, DeadKernelError)
        # nbclient leaves a timed-out cell running: stop it before its calls
        # are read (they would land on the next cell)
        if not dead and not _stop_cell(client, cell):
            dead = True
        failure = CellFailure(
            index,
            _first_line(cell.source),
            type(error).__name__,
            str(error) + (_tail(kernel_log) if dead else ""),
        )
        return failure, dead
    return None, False


def run_notebook(
    notebook: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    *,
    preset: str = "default",
    n_samples: int | None = None,
    seed: int | None = None,
    compare: bool = False,
    keep_going: bool = False,
    timeout: int | None = 600,
    kernel_name: str = "python3",
    cwd: str | os.PathLike[str] | None = None,
) -> NotebookRun:
    r"""
    Executes a notebook as it stands, with :func:`~captum_lr.patch_captum`
    active in its kernel, and records the forward rows of every Captum
    gradient call (the Python side of ``captum-lr run``).

    Args:

        notebook (str or PathLike): The ``.ipynb`` file; it is not modified.
        output (str or PathLike, optional): Where to write the executed
                    notebook; None writes nothing.
                    Default: None
        preset (str, optional): The estimator's preset
                    (:data:`~captum_lr.PRESETS`).
                    Default: ``"default"``
        n_samples (int, optional): Overrides the preset's ``n_samples``.
                    Default: None
        seed (int, optional): The estimator's seed (None: unseeded).
                    Default: None
        compare (bool, optional): Also run each call with Captum's autograd
                    (the switch undone for that call, torch's random state
                    replayed) and record the cosine and max relative error.
                    Default: False
        keep_going (bool, optional): Run the remaining cells after a cell
                    fails for a reason other than needing autograd (cells
                    that need autograd never stop the run).
                    Default: False
        timeout (int or None, optional): Seconds a cell may run.
                    Default: 600
        kernel_name (str, optional): The Jupyter kernel; it must have
                    captum_lr installed.
                    Default: ``"python3"``
        cwd (str or PathLike, optional): The kernel's working directory.
                    Default: the notebook's directory

    Returns:
        *NotebookRun*: the calls, their rows (and agreement), and the cells
        that failed.

    Examples::

        >>> run = run_notebook("Titanic.ipynb", "out.ipynb", seed=0, compare=True)
        >>> print(run.format())
        >>> run.total_rows, run.exit_status
    """
    import nbclient  # noqa: PLC0415
    import nbformat  # noqa: PLC0415

    from captum_lr.estimation.presets import make_estimator  # noqa: PLC0415

    path = Path(notebook)
    overrides: dict[str, Any] = {}
    if n_samples is not None:
        overrides["n_samples"] = n_samples
    if seed is not None:
        overrides["seed"] = seed
    make_estimator(preset, **overrides)  # a bad preset or override fails here
    nb = nbformat.read(path, as_version=4)
    settings = {"preset": preset, "overrides": overrides, "compare": compare}
    run = NotebookRun(notebook=path, output=None, settings=settings)
    run.code_cells = sum(c.cell_type == "code" for c in nb.cells)
    workdir = Path(cwd) if cwd is not None else path.resolve().parent

    with tempfile.TemporaryDirectory(prefix="captum-lr-run-") as scratch:
        log = Path(scratch) / "calls.jsonl"
        client = nbclient.NotebookClient(
            nb,
            timeout=timeout,
            kernel_name=kernel_name,
            resources={"metadata": {"path": str(workdir)}},
        )
        offset = 0
        # the kernel's own stderr (start-up chatter, a crash's last words)
        # goes to a file, read back only when the kernel fails
        kernel_log = Path(scratch) / "kernel.log"
        with open(kernel_log, "w") as stderr, client.setup_kernel(stderr=stderr):
            _prepare_kernel(client, nb, {**settings, "log": str(log)}, kernel_log)
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                run.cells_run += 1
                failure, dead = _execute_cell(client, cell, index, kernel_log)
                records, offset = _read_records(log, offset, index)
                run.calls += records
                if failure is not None:
                    run.failures.append(failure)
                    if dead or (not failure.needs_autograd and not keep_going):
                        break
            client.set_widgets_metadata()
    nb.metadata["captum_lr"] = {
        "settings": settings,
        "total_rows": run.total_rows,
        "calls": [_jsonable(vars(c)) for c in run.calls],
    }
    if output is not None:
        run.output = Path(output)
        nbformat.write(nb, run.output)
    return run
