r"""``attribute_dataset``: explain every example of a dataset with a pool of
Ray actors, results streamed to Parquet, resumable."""

from __future__ import annotations

import functools
import gc
import hashlib
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from tqdm.auto import tqdm

from captum_lr.remote.blackbox import QueryBudgetExceeded
from captum_lr.scale.checks import check_int_at_least, check_picklable
from captum_lr.scale.coordinator import Coordinator
from captum_lr.scale.rows import JobRows, job_rows
from captum_lr.scale.store import (
    check_manifest,
    clear_parts,
    write_manifest,
    written_ids,
)
from captum_lr.scale.worker import ERROR_MARK, ExplainWorker, WorkerConfig


class DatasetJobError(RuntimeError):
    r"""A dataset job stopped before every example was written. The message
    names the cause and the example ids not written; what was written is kept,
    and a re-run with ``resume=True`` computes only the missing ids.

    Attributes:

        lost_ids (list): The ids not written.
    """

    def __init__(self, message: str, lost_ids: list[Any]) -> None:
        super().__init__(message)
        self.lost_ids = lost_ids


@dataclass
class DatasetSummary:
    r"""What :func:`attribute_dataset` did.

    Attributes:

        examples_done (int): Examples explained and written by this run.
        examples_skipped (int): Examples already in ``output`` (resume).
        rows (int): Forward rows this run spent.
        wall_time_s (float): Seconds from the call to its return (Ray
                    start-up included when the call started Ray).
        output (str): The output directory.
        startup_s (float): Seconds spent starting or connecting to Ray.
        refused_ids (list): Examples refused by a query budget (not written).
    """

    examples_done: int
    examples_skipped: int
    rows: int
    wall_time_s: float
    output: str
    startup_s: float = 0.0
    refused_ids: list[Any] = field(default_factory=list)


def _shown(ids: list[Any], limit: int = 10) -> str:
    text = ", ".join(repr(i) for i in ids[:limit])
    return text + (f", ... ({len(ids)} in all)" if len(ids) > limit else "")


def _digest(value: Any) -> str:
    from ray import cloudpickle

    try:
        data = cloudpickle.dumps(value)
    except Exception as exc:
        raise TypeError(f"{value!r:.80} cannot be pickled: {exc}") from exc
    return hashlib.sha256(data).hexdigest()[:16]


def _job_fingerprint(
    make_explainer: Callable[[], Any], kwargs: dict[str, Any], rows: JobRows, reps: Any
) -> dict[str, Any]:
    fn, bound = make_explainer, ""
    if isinstance(fn, functools.partial):  # the function and its bound args
        fn, bound = fn.func, _digest((fn.args, sorted(fn.keywords.items())))
    name = getattr(fn, "__qualname__", type(fn).__qualname__)
    module = getattr(fn, "__module__", "")
    return {
        "make_explainer": f"{module}.{name}" + (f" ({bound})" if bound else ""),
        "attribute_kwargs": _digest(sorted(kwargs.items())),
        "input_shape": list(rows.shape),
        "stderr_replicates": reps,
        "format": 1,
    }


def _check_args(
    make_explainer: Any,
    num_workers: Any,
    batch_size: Any,
    max_queries: Any,
    stderr_replicates: Any,
) -> None:
    """The checks :func:`attribute_dataset` makes before starting Ray."""
    check_int_at_least("num_workers", num_workers)
    check_int_at_least("batch_size", batch_size)
    check_int_at_least("max_queries", max_queries, minimum=0, allow_none=True)
    check_int_at_least(
        "stderr_replicates", stderr_replicates, minimum=2, allow_none=True
    )
    check_picklable("make_explainer", make_explainer)


class _Pool(NamedTuple):
    """The shape of the actor pool (see :func:`attribute_dataset`)."""

    batch_size: int
    num_workers: int
    num_gpus_per_worker: float
    num_cpus_per_worker: float | None


def _start_ray(address: str | None) -> bool:
    """Connects to ``address`` (or starts a local Ray) unless Ray is already
    running in this process; returns whether this call started it."""
    import ray

    if ray.is_initialized():
        return False
    ray.init(address=address, include_dashboard=False, log_to_driver=False)
    return True


@contextmanager
def _ray_session(address: str | None, t0: float) -> Iterator[float]:
    """Ray for one job (:func:`_start_ray`), shut down on exit if this call
    started it; yields the seconds since ``t0`` (the start-up time)."""
    started = _start_ray(address)
    try:
        yield time.perf_counter() - t0
    finally:
        if started:
            import ray

            ray.shutdown()


def _pending(
    output: str | os.PathLike, config: WorkerConfig, rows: JobRows, resume: bool
) -> list[Any]:
    """Checks that ``output`` is empty or holds this job's results (its part
    files removed unless ``resume``) and writes the job's manifest; returns
    the ids of ``rows`` not written yet, in order."""
    job = _job_fingerprint(
        config.make_explainer, config.attribute_kwargs, rows, config.stderr_replicates
    )
    had = check_manifest(output, job)
    if had and not resume:
        clear_parts(output)
    write_manifest(output, job)
    done_before = written_ids(output)
    return [i for i in rows.ids if i not in done_before]


def _pipeline(rows: JobRows, todo: set[Any], config: WorkerConfig, pool: _Pool) -> Any:
    from ray.data import ActorPoolStrategy, DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    return rows.only(todo, pool.batch_size).map_batches(
        ExplainWorker,
        fn_constructor_args=(config,),
        batch_size=pool.batch_size,
        batch_format="numpy",
        compute=ActorPoolStrategy(
            size=pool.num_workers, max_tasks_in_flight_per_actor=1
        ),
        num_gpus=pool.num_gpus_per_worker or None,
        num_cpus=pool.num_cpus_per_worker,
    )


def _cause(exc: BaseException) -> str:
    text = str(exc)
    found = re.search(re.escape(ERROR_MARK) + r" (.*)", text)
    if found:
        return found.group(1).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def _run(
    stream: Any, total: int, show_progress: bool
) -> tuple[int, int, list[str], str]:
    """Consumes the results: (done, rows, refused ids as str, a refusal)."""
    done = rows = 0
    refused: list[str] = []
    message = ""
    with tqdm(total=total, disable=not show_progress, unit="example") as bar:
        for batch in stream.iter_batches(batch_size=None, batch_format="numpy"):
            for rid, status, r, msg in zip(
                batch["id"], batch["status"], batch["rows"], batch["message"]
            ):
                if status == "done":
                    done, rows = done + 1, rows + int(r)
                else:
                    refused.append(rid)
                    message = message or msg
            bar.update(len(batch["id"]))
    return done, rows, refused, message


def attribute_dataset(
    make_explainer: Callable[[], Any],
    dataset: Any,
    *,
    attribute_kwargs: dict[str, Any] | None = None,
    output: str | os.PathLike,
    num_workers: int = 1,
    num_gpus_per_worker: float = 0,
    batch_size: int = 4,
    address: str | None = None,
    resume: bool = True,
    max_queries: int | None = None,
    show_progress: bool = True,
    seed: int | None = 0,
    stderr_replicates: int | None = None,
    threads_per_worker: int | None = None,
    num_cpus_per_worker: float | None = None,
    input_shape: Any = "first",
) -> DatasetSummary:
    r"""
    Explains every example of ``dataset`` on a pool of Ray actors and writes
    the attributions to Parquet under ``output``, one row per example.

    The workers are a Ray Data actor pool (``map_batches`` with
    ``compute=ActorPoolStrategy(size=num_workers)``, Ray's replacement for
    ``concurrency=``, and ``num_gpus``). Each worker calls
    ``make_explainer()`` once (building its model on its own
    device), then explains the examples of each batch it receives one at a
    time, as ``explainer.attribute(x.unsqueeze(0), target=t,
    **attribute_kwargs)``, after
    :func:`~captum_lr.scale.seed_example` ``(seed, id)``: a seeded estimator's
    noise depends on (seed, row shapes, stream, sample) only, so each
    example's map equals the one a plain loop over the examples gives, on any
    number of workers. A worker writes a batch's examples as one part file
    when the batch is done; the driver shows a progress bar over examples.

    Everything is checked before any query: that ``make_explainer`` can be
    pickled, every row's id (unique int or str) and input shape, and that
    ``output`` is empty or holds this job's results (its ``_job.json``
    names the ``make_explainer``, a digest of ``attribute_kwargs`` and the
    input shape). With ``resume=True`` the ids already written are skipped.

    Query budgets: ``max_queries`` caps the forward rows of the whole job
    (each example reserves its exact cost, ``estimate_queries``, before it
    runs). A :class:`~captum_lr.BlackBox` inside the explainer has its
    ``max_queries``, ``requests_per_second`` and in-memory cache shared by
    every worker through one Ray actor. Examples refused by a budget are not
    written; the call then raises :class:`QueryBudgetExceeded` naming the
    spent and remaining rows and the refused ids (the rest is written).

    Faults: a worker process that dies is restarted by Ray and its batch
    retried (Ray Data's actor pool restarts actors without limit); an
    exception in the model stops the job with a :class:`DatasetJobError`
    naming the example that raised and every id not written. Part files are
    written whole (renamed into place), so nothing written is lost, and a
    re-run computes only the missing ids.

    Args:

        make_explainer (Callable[[], Attribution]): Builds the model and the
                    explainer on a worker: any captum_lr class (or NoiseTunnel
                    around one), or a Captum class built under
                    :func:`~captum_lr.patch_captum`. Must be picklable
                    (cloudpickle): a module-level function, or a closure over
                    picklable values.
        dataset: A Ray Dataset with columns ``id``, ``input`` (one example,
                    without batch dimension) and optionally ``target``; a
                    torch ``Dataset`` or ``DataLoader`` yielding ``x`` or
                    ``(x, target)`` (ids: positions 0, 1, ...); or an iterable
                    of ``(id, input[, target])`` rows or dicts with those keys.
        attribute_kwargs (dict, optional): Passed to every ``attribute`` call
                    (``n_steps``, ``baselines``, ``return_convergence_delta``,
                    a ``target`` for rows without one, ...).
                    Default: None
        output (str or PathLike): The output directory (created if missing).
        num_workers (int, optional): Actors in the pool.
                    Default: 1
        num_gpus_per_worker (float, optional): GPUs each actor reserves; with
                    GPUs, inputs are moved to ``cuda`` (build the model there).
                    Default: 0
        batch_size (int, optional): Examples per ``map_batches`` batch (one part
                    file each; what a failure can lose).
                    Default: 4
        address (str, optional): A Ray cluster to connect to (``"auto"``,
                    ``"ray://head:10001"``); None starts a local Ray (or uses
                    the one already initialised in this process). A Ray this
                    call started is shut down when it returns.
                    Default: None
        resume (bool, optional): Skip ids already written under ``output``.
                    False removes this job's part files first.
                    Default: True
        max_queries (int, optional): The most forward rows the job may spend.
                    Default: None
        show_progress (bool, optional): A tqdm bar over the examples.
                    Default: True
        seed (int, optional): Seeds torch, NumPy and ``random`` per example
                    (:func:`~captum_lr.scale.seed_example`; None: not seeded).
                    Default: 0
        stderr_replicates (int, optional): Use
                    :func:`~captum_lr.attribute_with_stderr` with this many
                    replicates and store each example's standard error.
                    Default: None
        threads_per_worker (int, optional): ``torch.set_num_threads`` on each
                    worker (None: Ray's default, one per reserved CPU).
                    Default: None
        num_cpus_per_worker (float, optional): CPUs each actor reserves
                    (None: Ray Data's default).
                    Default: None
        input_shape (tuple or "first", optional): The shape every input must
                    have; ``"first"``: the first row's.
                    Default: ``"first"``

    Returns:
        *DatasetSummary*: examples done, skipped, forward rows spent, wall
        time and the output path.

    Examples::

        >>> import ray.data
        >>> from captum_lr.scale import attribute_dataset, load_attributions
        >>> def make_explainer():
        ...     model = torch.load("model.pt").eval()
        ...     return LRIntegratedGradients(model, estimator=LREstimator(seed=0))
        >>> rows = [(i, x, y) for i, (x, y) in enumerate(val_set)]
        >>> summary = attribute_dataset(
        ...     make_explainer, rows, attribute_kwargs={"n_steps": 16},
        ...     output="ig-val", num_workers=2)
        >>> maps = load_attributions("ig-val")
    """
    t0 = time.perf_counter()
    _check_args(make_explainer, num_workers, batch_size, max_queries, stderr_replicates)
    config = WorkerConfig(
        make_explainer=make_explainer,
        output=str(output),
        attribute_kwargs=dict(attribute_kwargs or {}),
        seed=seed,
        stderr_replicates=stderr_replicates,
        threads=threads_per_worker,
        device="cuda" if num_gpus_per_worker else None,
        job_budget=max_queries is not None,
    )
    pool = _Pool(batch_size, num_workers, num_gpus_per_worker, num_cpus_per_worker)
    with _ray_session(address, t0) as startup:
        rows = job_rows(dataset, input_shape)
        todo = _pending(output, config, rows, resume)
        skipped = len(rows.ids) - len(todo)
        summary = DatasetSummary(0, skipped, 0, 0.0, str(Path(output)), startup)
        if todo:
            _execute(rows, todo, summary, config, pool, max_queries, show_progress)
        summary.wall_time_s = time.perf_counter() - t0
        return summary


def _execute(
    rows: JobRows,
    todo: list[Any],
    summary: DatasetSummary,
    config: WorkerConfig,
    pool: _Pool,
    max_queries: int | None,
    show_progress: bool,
) -> None:
    """Runs the pool over ``todo`` and fills ``summary``; raises on a fault
    or a budget refusal, naming the ids not written."""
    import ray

    coordinator = ray.remote(Coordinator).options(num_cpus=0).remote(max_queries)
    config.coordinator = coordinator
    stream = _pipeline(rows, set(todo), config, pool)
    cause = None
    try:
        done, spent, refused, message = _run(stream, len(todo), show_progress)
    except Exception as exc:
        cause = _cause(exc)
    finally:
        ray.kill(coordinator)
        # a failed execution is held by its traceback's frames: let it go now,
        # so that its actors give their CPUs and GPUs back
        del stream
        gc.collect()
    if cause is not None:
        written = written_ids(config.output)
        lost = [i for i in todo if i not in written]
        raise DatasetJobError(
            f"the dataset job stopped: {cause}. {len(lost)} of the "
            f"{len(todo)} examples of this run were not written: ids "
            f"{_shown(lost)}. The {len(todo) - len(lost)} written are kept in "
            f"{config.output}; re-run with resume=True to compute only the "
            "missing ones.",
            lost,
        )
    summary.examples_done, summary.rows = done, spent
    if refused:
        by_str = {str(i): i for i in todo}
        summary.refused_ids = [by_str[r] for r in refused]
        raise QueryBudgetExceeded(
            f"{len(refused)} examples were refused by a query budget and not "
            f"written (ids {_shown(summary.refused_ids)}); {done} were written. "
            f"First refusal: {message} Re-run with a larger budget and "
            "resume=True to compute only these."
        )
