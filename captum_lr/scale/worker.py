r"""The per-worker side of a dataset job: a callable class for Ray Data's
``map_batches`` that builds the explainer once, explains each example of a
batch on its own (so an example's map does not depend on its batch), writes
the finished examples as one Parquet part file and returns a small summary
row per example."""

from __future__ import annotations

import hashlib
import os
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from captum_lr.estimation.budget import estimate_queries
from captum_lr.estimation.queries import CountingForward
from captum_lr.estimation.uncertainty import attribute_with_stderr
from captum_lr.remote.blackbox import QueryBudgetExceeded
from captum_lr.scale.coordinator import JOB, SharedBudget, share_blackboxes
from captum_lr.scale.store import ExampleResult, write_part

ERROR_MARK = "[captum_lr.scale example failed]"


def example_seed(seed: int, example_id: Any) -> int:
    r"""
    The seed of one example: a function of the job's ``seed`` and the
    example's id only, so the result does not depend on the worker, the batch
    or the order.

    Args:

        seed (int): The job's seed.
        example_id (int or str): The example's id.

    Returns:
        *int*: a seed in ``[0, 2**63)``.
    """
    if isinstance(example_id, np.generic):
        example_id = example_id.item()
    digest = hashlib.sha256(f"{seed}\x1f{example_id!r}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % (2**63)


def seed_example(seed: int, example_id: Any) -> None:
    r"""
    Seeds torch's, NumPy's and Python's global generators for one example,
    as a dataset job's worker does before explaining it (Captum's own draws,
    e.g. GradientShap's baselines and NoiseTunnel's noise, come from them).

    Args:

        seed (int): The job's seed.
        example_id (int or str): The example's id.

    Examples::

        >>> seed_example(0, 17)  # the per-example reference of a job's map
        >>> reference = explainer.attribute(x17.unsqueeze(0), target=3)
    """
    s = example_seed(seed, example_id)
    torch.manual_seed(s)
    np.random.seed(s % (2**32))
    random.seed(s)


@dataclass
class WorkerConfig:
    r"""What every worker of a job is built with."""

    make_explainer: Callable[[], Any]
    output: str
    attribute_kwargs: dict[str, Any] = field(default_factory=dict)
    seed: int | None = 0
    stderr_replicates: int | None = None
    threads: int | None = None
    device: str | None = None
    coordinator: Any = None
    job_budget: bool = False


class RowCounter:
    r"""Forward rows an explainer has spent: its ``queries`` (LR classes,
    NoiseTunnel around one, a Captum class whose ``gradient_func`` counts),
    else a counter wrapped around its forward function."""

    def __init__(self, explainer: Any) -> None:
        self.explainer = explainer
        self.wrapped = 0
        holder = getattr(explainer, "attribution_method", explainer)
        self.source = next(
            (
                o
                for o in (explainer, holder, getattr(holder, "gradient_func", None))
                if isinstance(getattr(o, "queries", None), int)
            ),
            None,
        )
        if self.source is None and hasattr(holder, "forward_func"):
            holder.forward_func = CountingForward(holder.forward_func, self._add)

    def _add(self, rows: int) -> None:
        self.wrapped += rows

    def __call__(self) -> int:
        return self.source.queries if self.source is not None else self.wrapped


def _first_example(value: Any) -> Any:
    """The one example of a batch of one, through tuples and lists (a list of
    layers, a tuple-valued layer)."""
    if isinstance(value, (tuple, list)):
        return type(value)(_first_example(v) for v in value)
    return value[0]


def _row_target(batch: dict[str, np.ndarray], i: int) -> int | None:
    targets = batch.get("target")
    if targets is None:
        return None
    t = targets[i]
    if t is None or (isinstance(t, float) and np.isnan(t)):
        return None
    return int(t)


class ExplainWorker:
    r"""
    One worker of a dataset job (Ray Data builds it once per actor).

    Args:

        config (WorkerConfig): The job's settings.
    """

    def __init__(self, config: WorkerConfig) -> None:
        if config.threads:
            torch.set_num_threads(config.threads)
        self.config = config
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.explainer = config.make_explainer()
        self.rows = RowCounter(self.explainer)
        self.budget = None
        if config.coordinator is not None:
            share_blackboxes(self.explainer, config.coordinator)
            if config.job_budget:
                self.budget = SharedBudget(config.coordinator, JOB)

    def _attribute(self, x: Tensor, kw: dict[str, Any]) -> tuple[Any, Any, Any]:
        """(attribution, stderr or None, delta or None) for one example."""
        reps = self.config.stderr_replicates
        if reps:
            attr, se = attribute_with_stderr(self.explainer, x, reps, **kw)
            return attr, se, None
        out = self.explainer.attribute(x, **kw)
        if kw.get("return_convergence_delta"):
            return out[0], None, out[1]
        return out, None, None

    def explain(self, example_id: Any, x: Tensor, target: int | None) -> ExampleResult:
        r"""Explains one example (``x`` with a batch dimension of 1)."""
        kw = dict(self.config.attribute_kwargs)
        if target is not None:
            kw["target"] = target
        reservation = None
        if self.budget is not None:
            reservation = self.budget.reserve(estimate_queries(self.explainer, x, **kw))
        if self.config.seed is not None:
            seed_example(self.config.seed, example_id)
        before, start = self.rows(), time.perf_counter()
        try:
            attr, se, delta = self._attribute(x, kw)
        finally:
            if reservation is not None:
                reservation.commit(min(self.rows() - before, reservation.left))
                reservation.release()
        return ExampleResult(
            id=example_id,
            attribution=_first_example(attr),
            rows=self.rows() - before,
            stderr=None if se is None else _first_example(se),
            delta=None if delta is None else float(torch.as_tensor(delta).sum()),
            seconds=time.perf_counter() - start,
            worker=self.name,
        )

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        r"""Explains the examples of ``batch`` and writes them; returns per
        example its id (as str), status (``done`` or ``refused``: over a
        budget), rows spent and the refusal's message."""
        ids = [i.item() if isinstance(i, np.generic) else i for i in batch["id"]]
        done: list[ExampleResult] = []
        status, messages = [], []
        for i, rid in enumerate(ids):
            x = torch.as_tensor(np.asarray(batch["input"][i])).unsqueeze(0)
            if self.config.device:
                x = x.to(self.config.device)
            try:
                done.append(self.explain(rid, x, _row_target(batch, i)))
                status.append("done")
                messages.append("")
            except QueryBudgetExceeded as exc:
                status.append("refused")
                messages.append(str(exc))
            except Exception as exc:
                if done:  # what is finished is kept
                    write_part(self.config.output, done)
                raise RuntimeError(
                    f"{ERROR_MARK} example id={rid!r} raised {type(exc).__name__}: "
                    f"{exc}"
                ) from exc
        if done:
            write_part(self.config.output, done)
        rows = {r.id: r.rows for r in done}
        return {
            "id": np.array([str(i) for i in ids], dtype=object),
            "status": np.array(status, dtype=object),
            "rows": np.array([rows.get(i, 0) for i in ids], dtype=np.int64),
            "message": np.array(messages, dtype=object),
        }
