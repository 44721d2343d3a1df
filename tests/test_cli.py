"""``captum-lr run``: an unchanged notebook runs with patch_captum() in its kernel.

Each notebook here is written by the test (Captum cells, small models) and run
through the command in a fresh kernel (a few seconds each): the rows the
command prints are the rows the model received; ``--compare`` agrees with
autograd on exact sweeps and says why where autograd is impossible; a
DeepLift cell is reported by index and first line and the run goes on; a
genuine error stops the run with exit status 1 (``--keep-going`` runs on);
``--output`` and ``--report`` are written; the user's cells are unchanged.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import time

import pytest
import torch

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

from captum_lr.cli import main  # noqa: E402
from captum_lr.run.recorder import agreement  # noqa: E402

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}

MODEL = """import torch
from captum.attr import (
    DeepLift, IntegratedGradients, LayerConductance, NoiseTunnel, Saliency,
)

torch.manual_seed(0)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin1 = torch.nn.Linear(6, 5)
        self.act = torch.nn.Tanh()
        self.lin2 = torch.nn.Linear(5, 3)
        self.rows = 0  # every row the model receives

    def forward(self, x):
        self.rows += x.shape[0]
        return self.lin2(self.act(self.lin1(x)))
"""

# a model without autograd: Captum's own gradient methods fail on it
NO_AUTOGRAD = (
    MODEL
    + """

class NoAutograd(Net):
    @torch.no_grad()
    def forward(self, x):
        return super().forward(x)


model = NoAutograd().eval()
x = torch.randn(4, 6)
rows = {}
"""
)

CALLS = [
    "model.rows = 0\nsal = Saliency(model).attribute(x, target=1)\n"
    "rows['Saliency'] = model.rows",
    "model.rows = 0\nig = IntegratedGradients(model)\n"
    "attr = ig.attribute(x, target=1, n_steps=8)\n"
    "rows['IntegratedGradients'] = model.rows",
    "model.rows = 0\nnt = NoiseTunnel(ig)\n"
    "smooth = nt.attribute(x, nt_type='smoothgrad', nt_samples=3, target=1,\n"
    "                      n_steps=4)\n"
    "rows['NoiseTunnel(IntegratedGradients)'] = model.rows",
    "model.rows = 0\ncond = LayerConductance(model, model.act)\n"
    "cond_vals = cond.attribute(x, target=1, n_steps=5)\n"
    "rows['LayerConductance'] = model.rows",
    "# backward rewriting: fails under the switch\n"
    "dl = DeepLift(model).attribute(x, target=1)",
    "import json\nprint('ROWS', json.dumps(rows))",
]


def _notebook(path, sources):
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": KERNELSPEC})
    nb.cells = [nbformat.v4.new_markdown_cell("# A Captum notebook")]
    nb.cells += [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, path)
    return path


def _run(capsys, *argv):
    status = main(["run", *map(str, argv)])
    return status, capsys.readouterr().out


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    # the kernel inherits the environment: one torch thread, as the suite uses
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def no_autograd_run(tmp_path_factory):
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OMP_NUM_THREADS", "1")
        return _no_autograd_run(tmp_path_factory)


def _no_autograd_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    path = _notebook(tmp / "captum.ipynb", [NO_AUTOGRAD, *CALLS])
    out, report = tmp / "executed.ipynb", tmp / "report.json"
    buffer = io.StringIO()  # a module fixture: no capsys
    with contextlib.redirect_stdout(buffer):
        status = main(
            ["run", str(path), "--seed", "0", "--output", str(out)]
            + ["--report", str(report)]
        )
    return {
        "path": path,
        "out": out,
        "status": status,
        "stdout": buffer.getvalue(),
        "report": json.loads(report.read_text()),
    }


def test_rows_printed_are_the_rows_the_model_received(no_autograd_run):
    run = no_autograd_run
    assert run["status"] == 0, run["stdout"]
    executed = nbformat.read(run["out"], as_version=4)
    printed = executed.cells[-1].outputs[0]["text"]
    received = json.loads(printed.split("ROWS", 1)[1])
    calls = run["report"]["calls"]
    assert [c["method"] for c in calls] == list(received)
    for call in calls:
        # no convergence delta here: every row the model got, the estimator sent
        assert call["rows"] == call["model_rows"] == received[call["method"]]
        assert call["inputs"] == [[4, 6]]
    # exact sweeps (d = 6 inputs, 5 units): 2 d rows per gradient row
    rows = {c["method"]: c["rows"] for c in calls}
    assert rows["Saliency"] == 4 * 12
    assert rows["IntegratedGradients"] == 8 * 4 * 12
    assert rows["NoiseTunnel(IntegratedGradients)"] == 3 * 4 * 4 * 12
    assert run["report"]["total_rows"] == sum(received.values())
    # the printed table: one line per call with its rows, and the total
    for method, count in received.items():
        line = next(ln for ln in run["stdout"].splitlines() if f" {method} " in ln)
        assert f"{count:,}" in line and "(4, 6)" in line
    assert f"{sum(received.values()):,} forward rows" in run["stdout"]


def test_deeplift_cell_is_reported_and_the_run_goes_on(no_autograd_run):
    run = no_autograd_run
    deeplift = (
        1 + len([NO_AUTOGRAD]) + CALLS.index(next(c for c in CALLS if "DeepLift(" in c))
    )
    assert f"cell {deeplift} needs autograd: `# backward rewriting" in run["stdout"]
    assert "NeedsAutogradError: DeepLift cannot run" in run["stdout"]
    assert "nearest forward-only method is IntegratedGradients" in run["stdout"]
    (failure,) = run["report"]["failures"]
    assert failure["cell"] == deeplift and failure["ename"] == "NeedsAutogradError"
    assert run["report"]["cells_run"] == run["report"]["code_cells"] == 1 + len(CALLS)


def test_output_is_the_unchanged_notebook_executed(no_autograd_run):
    run = no_autograd_run
    original = nbformat.read(run["path"], as_version=4)
    executed = nbformat.read(run["out"], as_version=4)
    nbformat.validate(executed)
    # no hidden cell, sources unchanged, counts from 1
    assert [c.source for c in executed.cells] == [c.source for c in original.cells]
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    assert "captum_lr" not in executed.cells[1].outputs  # nothing printed by set-up
    assert executed.metadata["captum_lr"]["total_rows"] == run["report"]["total_rows"]
    assert "captum_lr" not in original.metadata


def test_compare_agrees_with_autograd_on_exact_sweeps(tmp_path, capsys):
    autograd_model = (
        MODEL
        + "\nmodel = Net().eval()\nx = torch.randn(4, 6)\nrows = {}\n"
        + "from captum.attr import GradientShap\n"
        + "class Frozen(torch.nn.Module):\n"
        + "    def __init__(self, net):\n        super().__init__()\n"
        + "        self.net = net\n"
        + "    @torch.no_grad()\n    def forward(self, x):\n"
        + "        return self.net(x)\n"
    )
    sources = [
        autograd_model,
        *CALLS[:4],
        "gs = GradientShap(model).attribute(x, baselines=torch.randn(3, 6), "
        "n_samples=4, target=0, stdevs=0.1)",
        "attr, delta = ig.attribute(x, target=2, n_steps=6, "
        "return_convergence_delta=True)",
        "frozen = Saliency(Frozen(model)).attribute(x, target=0)",
    ]
    path = _notebook(tmp_path / "compare.ipynb", sources)
    report = tmp_path / "report.json"
    status, out = _run(
        capsys,
        path,
        "--seed",
        "0",
        "--compare",
        "--report",
        report,
        "-o",
        tmp_path / "o.ipynb",
    )
    assert status == 0, out
    calls = json.loads(report.read_text())["calls"]
    assert len(calls) == 7, out
    compared, frozen = calls[:-1], calls[-1]
    for call in compared:
        assert call["cosine"] > 0.9999, (call, out)
        assert call["max_rel_err"] < 2e-3, (call, out)
    # the convergence delta's rows reach the model but not the estimator
    ig_delta = compared[-1]
    assert ig_delta["model_rows"] == ig_delta["rows"] + 2 * 4
    # where the model has no autograd the comparison says why
    assert frozen["cosine"] is None and "autograd failed" in frozen["note"]
    assert "does not require grad" in frozen["note"]
    header = next(ln for ln in out.splitlines() if ln.lstrip().startswith("cell"))
    assert "cosine" in header and "max rel err" in header
    line = next(ln for ln in out.splitlines() if " LayerConductance " in ln)
    assert re.search(r"\b1\.0000\b", line), line


def test_a_genuine_error_stops_the_run_with_exit_status_1(tmp_path, capsys):
    sources = [
        "import torch\nfrom captum.attr import Saliency\n"
        "net = torch.nn.Linear(3, 2)\nx = torch.randn(2, 3)",
        "attr = Saliency(net).attribute(x, target=5)  # no class 5",
        "print('after the error')",
    ]
    path = _notebook(tmp_path / "broken.ipynb", sources)
    status, out = _run(capsys, path, "-o", tmp_path / "o.ipynb")
    assert status == 1, out
    assert "cell 2 failed: `attr = Saliency(net).attribute(x, target=5)" in out
    assert "cells: 2 of 3 code cells run, 0 need autograd, 1 failed" in out
    executed = nbformat.read(tmp_path / "o.ipynb", as_version=4)
    assert executed.cells[-1].execution_count is None  # not run
    assert executed.cells[2].outputs[-1]["output_type"] == "error"

    status, out = _run(capsys, path, "--keep-going", "-o", tmp_path / "o2.ipynb")
    assert status == 1, out
    executed = nbformat.read(tmp_path / "o2.ipynb", as_version=4)
    assert "after the error" in executed.cells[-1].outputs[0]["text"]


def test_a_timed_out_cell_is_interrupted_and_keeps_its_calls(tmp_path, capsys):
    # nbclient leaves a timed-out cell running: its late calls landed on the
    # next cell, which also waited for it; the command interrupts it instead
    sources = [
        "import time\nimport torch\nfrom captum.attr import Saliency\n"
        "net = torch.nn.Linear(3, 2)\nx = torch.randn(2, 3)",
        "time.sleep(120)\nlate = Saliency(net).attribute(x, target=1)",
        "attr = Saliency(net).attribute(x, target=0)",
        "print('late' in globals())",
    ]
    path = _notebook(tmp_path / "slow.ipynb", sources)
    out_nb, report = tmp_path / "o.ipynb", tmp_path / "r.json"
    start = time.monotonic()
    status, out = _run(
        capsys,
        path,
        "--timeout",
        "10",
        "--keep-going",
        "-o",
        out_nb,
        "--report",
        report,
    )
    assert time.monotonic() - start < 100, out  # not the 120 s of the sleep
    assert status == 1, out
    assert "cell 2 failed: `time.sleep(120)`" in out
    assert "CellTimeoutError" in out
    calls = json.loads(report.read_text())["calls"]
    assert [(c["cell"], c["method"]) for c in calls] == [(3, "Saliency")]
    executed = nbformat.read(out_nb, as_version=4)
    assert executed.cells[4].outputs[0]["text"].strip() == "False"


def test_default_output_path_and_bad_arguments(tmp_path, capsys):
    assert _run(capsys, tmp_path / "missing.ipynb")[0] == 2
    path = _notebook(tmp_path / "nb.ipynb", ["1 + 1"])
    assert _run(capsys, path, "--preset", "grid14", "--n-samples", "8")[0] == 2
    assert _run(capsys, path, "--n-samples", "0")[0] == 2
    with pytest.raises(SystemExit):
        main(["run", str(path), "--preset", "no-such-preset"])
    status, out = _run(capsys, path)
    assert status == 0, out
    assert (tmp_path / "nb.captum-lr.ipynb").is_file()
    assert "(no Captum gradient calls)" in out


def test_agreement_figures():
    g = torch.tensor([1.0, -2.0, 4.0])
    assert agreement(g, g) == (pytest.approx(1.0), 0.0)
    cosine, err = agreement(g + torch.tensor([0.0, 0.0, 0.4]), g)
    assert err == pytest.approx(0.1) and 0.99 < cosine < 1.0
    assert agreement(torch.zeros(3), torch.zeros(3)) == (1.0, 0.0)
    cosine, err = agreement(g, torch.zeros(3))
    assert math.isnan(cosine) and math.isinf(err)
