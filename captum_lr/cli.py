r"""The ``captum-lr`` console command.

``captum-lr run NOTEBOOK.ipynb [--output OUT.ipynb] [--preset NAME]
[--n-samples N] [--seed S] [--compare] [--keep-going] [--report REPORT.json]``
executes a notebook as it stands with :func:`~captum_lr.patch_captum` active
in its kernel (:func:`captum_lr.run.run_notebook`), writes the executed
notebook, and prints the forward rows of every Captum gradient call (method,
input shapes, rows) and their total; with ``--compare`` also each call's
agreement with autograd (cosine, max relative error).

Exit status: 0 when every cell ran, or failed only because it uses a method
that rewrites the backward pass (``NeedsAutogradError``: reported with the
cell's index and first line, and the run goes on); 1 when a cell failed for
any other reason (the run stops there unless ``--keep-going``); 2 for a bad
command line, a missing notebook or an unknown preset.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    from captum_lr.estimation.presets import PRESETS  # noqa: PLC0415

    parser = argparse.ArgumentParser(
        prog="captum-lr",
        description="Captum's gradient attributions without autograd.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run",
        help="execute a notebook unchanged with patch_captum() active",
        description=(
            "Execute NOTEBOOK unchanged, with every gradient Captum computes "
            "answered by the likelihood-ratio estimator (captum_lr.patch_captum), "
            "and print the forward rows of each attribution call."
        ),
        epilog=(
            "Cells that use DeepLift, GuidedBackprop, LRP or another method "
            "that rewrites the backward pass fail with NeedsAutogradError; they "
            "are reported and the run goes on. A cell that fails for another "
            "reason stops the run (unless --keep-going) and makes the exit "
            "status 1."
        ),
    )
    run.add_argument("notebook", type=Path, help="the .ipynb to execute")
    run.add_argument(
        "--output",
        "-o",
        type=Path,
        help="where to write the executed notebook "
        "(default: NOTEBOOK.captum-lr.ipynb beside it)",
    )
    run.add_argument(
        "--preset",
        default="default",
        choices=sorted(PRESETS),
        help="the estimator's preset (default: default)",
    )
    run.add_argument("--n-samples", type=int, help="noise samples per gradient")
    run.add_argument("--seed", type=int, help="the estimator's seed")
    run.add_argument(
        "--compare",
        action="store_true",
        help="also run each attribution call with autograd and print the agreement",
    )
    run.add_argument(
        "--keep-going",
        action="store_true",
        help="run the remaining cells after a cell fails",
    )
    run.add_argument(
        "--timeout", type=int, default=600, help="seconds per cell (default: 600)"
    )
    run.add_argument(
        "--kernel", default="python3", help="Jupyter kernel name (default: python3)"
    )
    run.add_argument(
        "--cwd", type=Path, help="kernel working directory (default: the notebook's)"
    )
    run.add_argument("--report", type=Path, help="also write the report as JSON")
    return parser


def _default_output(notebook: Path) -> Path:
    return notebook.with_name(notebook.stem + ".captum-lr.ipynb")


def _run(args: argparse.Namespace) -> int:
    from captum_lr.estimation.presets import make_estimator  # noqa: PLC0415
    from captum_lr.run.notebook import run_notebook  # noqa: PLC0415

    if not args.notebook.is_file():
        print(f"captum-lr run: no such notebook: {args.notebook}", file=sys.stderr)
        return 2
    given = {"n_samples": args.n_samples, "seed": args.seed}
    try:
        make_estimator(args.preset, **{k: v for k, v in given.items() if v is not None})
    except (TypeError, ValueError) as error:
        print(f"captum-lr run: {error}", file=sys.stderr)
        return 2
    output = args.output or _default_output(args.notebook)
    settings = f"preset {args.preset}"
    if args.n_samples is not None:
        settings += f", n_samples {args.n_samples}"
    if args.seed is not None:
        settings += f", seed {args.seed}"
    mode = "estimator and autograd (--compare)" if args.compare else "estimator"
    print(f"captum-lr run: {args.notebook} ({settings}; {mode})", flush=True)
    try:
        result = run_notebook(
            args.notebook,
            output,
            preset=args.preset,
            n_samples=args.n_samples,
            seed=args.seed,
            compare=args.compare,
            keep_going=args.keep_going,
            timeout=args.timeout,
            kernel_name=args.kernel,
            cwd=args.cwd,
        )
    except (RuntimeError, KeyError) as error:  # no such kernel, or its set-up failed
        print(f"captum-lr run: {error}", file=sys.stderr)
        return 2
    print(result.format(), flush=True)
    if args.report is not None:
        args.report.write_text(json.dumps(result.to_dict(), indent=1) + "\n")
    return result.exit_status


def main(argv: Sequence[str] | None = None) -> int:
    r"""
    The ``captum-lr`` command.

    Args:

        argv (Sequence[str], optional): The arguments (without the program
                    name). Default: ``sys.argv[1:]``

    Returns:
        *int*: the exit status (0: every cell ran or needs autograd; 1: a cell
        failed; 2: a bad command line).

    Examples::

        $ captum-lr run Titanic_Basic_Interpret.ipynb --seed 0 --compare
    """
    args = _parser().parse_args(argv)
    if args.command == "run":
        return _run(args)
    return 2  # pragma: no cover - argparse requires a command


if __name__ == "__main__":
    sys.exit(main())
