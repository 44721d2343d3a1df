r"""A forward function backed by a pool of Ray actors, each holding a model
replica: each batch the estimator sends is split into one contiguous chunk
per actor, evaluated in parallel and put back together in order. The
estimator keeps several batches in flight (``submit``), so that the actors
have the next chunk queued while the driver draws noise and adds up."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from captum_lr.scale.checks import check_int_at_least, check_picklable


class _Replica:
    """One model replica (run as a Ray actor)."""

    def __init__(
        self, make_model: Callable[[], Any], threads: int | None, device: str | None
    ) -> None:
        if threads:
            torch.set_num_threads(threads)
        self.device = device
        self.model = make_model()

    def forward(self, *args: Any) -> np.ndarray:
        moved = [
            torch.from_numpy(a).to(self.device or "cpu")
            if isinstance(a, np.ndarray)
            else a
            for a in args
        ]
        with torch.no_grad():
            out = self.model(*moved)
        return out.detach().cpu().numpy()


def _split(args: tuple[Any, ...], rows: int, parts: int) -> list[tuple[Any, ...]]:
    """Contiguous chunks of every argument with ``rows`` rows (as NumPy);
    other arguments go to every chunk unchanged."""
    bounds = np.linspace(0, rows, parts + 1).round().astype(int)
    chunks = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        chunks.append(
            tuple(
                a[lo:hi].detach().cpu().numpy()
                if isinstance(a, Tensor) and a.dim() > 0 and a.shape[0] == rows
                else a
                for a in args
            )
        )
    return chunks


class RayResult:
    r"""
    The output of a :meth:`RayForward.submit` call on its way.

    Args:

        refs (list): The Ray object references of the chunks' outputs, in
                    order.
        device (torch.device): Where the output goes.
    """

    def __init__(self, refs: list[Any], device: torch.device) -> None:
        self.refs = refs
        self.device = device

    def result(self) -> Tensor:
        r"""Waits for every chunk; returns the outputs of all rows, in order."""
        import ray

        outs = ray.get(self.refs)
        return torch.from_numpy(np.concatenate(outs, axis=0)).to(self.device)


class RayForward:
    r"""
    A forward function whose rows are evaluated by a pool of Ray actors, each
    holding its own model replica (on its own GPU with
    ``num_gpus_per_worker``), so that one large attribution (a big image,
    many IG steps, a large NoiseTunnel) uses every worker.

    Each call splits its rows into one contiguous chunk per actor (calls with
    fewer than ``min_rows_per_worker`` rows per actor use fewer actors),
    evaluates the chunks in parallel and returns the outputs in order, on the
    first input's device. Give the estimator a ``max_batch_size`` of a few
    dozen rows per worker or more (e.g. 32 to 128) so that each call carries
    enough rows to split. The estimator keeps up to ``max_in_flight`` batches
    in flight (:meth:`submit`): each actor has its next chunk queued while
    the driver draws noise and adds up, except where the estimator adapts
    its noise scale or design (it waits for every batch there); memory grows
    with ``max_in_flight`` batches, not with ``n_samples``. The input
    attribution classes can use it; the layer and neuron classes hook modules
    of a model in this process, which the actors do not run. The model must be
    deterministic row by row; a seeded attribution then equals the
    single-process one up to float summation order. Actors that die are
    restarted and their chunk retried (the forward function is pure). Uses
    the Ray of this process, or starts a local one.

    Args:

        make_model (Callable[[], Callable]): Builds the model (or any forward
                    function of tensors) on a worker; must be picklable.
        num_workers (int, optional): Actors.
                    Default: 2
        num_gpus_per_worker (float, optional): GPUs each actor reserves (the
                    rows are moved to ``cuda`` there: build the model on it).
                    Default: 0
        num_cpus_per_worker (float, optional): CPUs each actor reserves.
                    Default: 1
        threads_per_worker (int, optional): torch threads per actor (None:
                    Ray's default, one per reserved CPU).
                    Default: None
        min_rows_per_worker (int, optional): The fewest rows sent to an actor
                    (small calls, e.g. ``f(x)``, go to one actor).
                    Default: 8
        max_restarts (int, optional): Restarts of a dead actor.
                    Default: 2
        max_in_flight (int, optional): The most batches the estimator keeps
                    in flight (1: one at a time).
                    Default: 2

    Attributes:

        rows (int): Rows sent so far.
        calls (int): Calls so far.
        max_in_flight (int): As the argument; read when an attribution
                    starts.

    Examples::

        >>> with RayForward(make_model, num_workers=4, num_gpus_per_worker=1) as f:
        ...     est = LREstimator(n_samples=4096, seed=0, max_batch_size=1024)
        ...     ig = LRIntegratedGradients(f, estimator=est)
        ...     attr = ig.attribute(x, target=3, n_steps=64)
    """

    def __init__(
        self,
        make_model: Callable[[], Any],
        num_workers: int = 2,
        num_gpus_per_worker: float = 0,
        num_cpus_per_worker: float = 1,
        threads_per_worker: int | None = None,
        min_rows_per_worker: int = 8,
        max_restarts: int = 2,
        max_in_flight: int = 2,
    ) -> None:
        import ray

        check_int_at_least("num_workers", num_workers)
        check_int_at_least("min_rows_per_worker", min_rows_per_worker)
        check_int_at_least("max_in_flight", max_in_flight)
        check_picklable("make_model", make_model, builds="model")
        if not ray.is_initialized():
            ray.init(include_dashboard=False, log_to_driver=False)
        device = "cuda" if num_gpus_per_worker else None
        actor = ray.remote(_Replica).options(
            num_cpus=num_cpus_per_worker,
            num_gpus=num_gpus_per_worker,
            max_restarts=max_restarts,
            max_task_retries=max_restarts,
        )
        self.actors = [
            actor.remote(make_model, threads_per_worker, device)
            for _ in range(num_workers)
        ]
        self.min_rows_per_worker = min_rows_per_worker
        self.max_in_flight = max_in_flight
        self.rows = self.calls = 0
        self._next = 0

    def __call__(self, *args: Any) -> Tensor:
        r"""
        Evaluates the model on the rows of ``args`` across the actors.

        Args:

            *args: The input tensor(s), batch dimension first, then other
                        arguments (passed to every chunk unchanged).

        Returns:
            *Tensor*: the model's output for every row, in order, on the first
            input's device.
        """
        return self.submit(*args).result()

    def submit(self, *args: Any) -> RayResult:
        r"""
        Sends the rows of ``args`` to the actors and returns at once (the
        estimator's asynchronous calls, ``captum_lr.estimation.queries.
        AsyncForward``). Arguments as for ``__call__``.

        Returns:
            *RayResult*: ``result()`` waits for the output.
        """
        if not self.actors:
            raise RuntimeError("this RayForward is closed.")
        first = args[0]
        rows = first.shape[0]
        parts = max(1, min(len(self.actors), rows // self.min_rows_per_worker))
        chunks = _split(args, rows, parts)
        start = self._next
        self._next = (self._next + parts) % len(self.actors)
        refs = [
            self.actors[(start + i) % len(self.actors)].forward.remote(*c)
            for i, c in enumerate(chunks)
        ]
        self.rows += rows
        self.calls += 1
        return RayResult(refs, first.device)

    def close(self) -> None:
        r"""Stops the actors."""
        import ray

        for a in self.actors:
            ray.kill(a)
        self.actors = []

    def __enter__(self) -> RayForward:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"RayForward(num_workers={len(self.actors)}, rows={self.rows}, "
            f"calls={self.calls}, max_in_flight={self.max_in_flight})"
        )
