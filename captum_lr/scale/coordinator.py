r"""One Ray actor per job that every worker shares: the job's forward-row cap,
and for each :class:`~captum_lr.remote.blackbox.BlackBox` in the explainer one
query budget, one rate limit and one answer cache.

A worker's BlackBox keeps its own transport (threads, retries) but reserves
and pays through :class:`SharedBudget`, starts requests through
:class:`SharedLimiter` and, when its cache is in memory, reads and writes
:class:`SharedCache`, all three backed by the actor. So ``max_queries`` and
``requests_per_second`` hold for the whole job, and rows answered before a
worker died are in the actor's cache when Ray restarts it: never paid twice.
A BlackBox with a directory cache keeps it (every worker opens the same SQLite
file; on a cluster put it on a file system all nodes see).
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Sequence
from typing import Any

from captum_lr.remote.blackbox import BlackBox, QueryBudgetExceeded
from captum_lr.remote.budget import QueryBudget, Reservation

JOB = "job"  # the key of the job's own forward-row cap


class Coordinator:
    r"""
    The shared state of one job (run as a Ray actor: ``ray.remote(Coordinator)``).

    Args:

        max_queries (int, optional): The job's cap on forward rows (None: none).
    """

    def __init__(self, max_queries: int | None = None) -> None:
        self.budgets: dict[str, QueryBudget] = {JOB: QueryBudget(max_queries)}
        self.reservations: dict[int, Reservation] = {}
        self.tokens = itertools.count()
        self.next_start: dict[str, float] = {}
        self.caches: dict[str, dict[bytes, Any]] = {}

    def register(self, key: str, max_queries: int | None) -> None:
        r"""A budget for ``key`` with the given cap (the first call wins)."""
        self.budgets.setdefault(key, QueryBudget(max_queries))
        self.caches.setdefault(key, {})

    def reserve(self, key: str, rows: int) -> tuple[int | None, str]:
        r"""``(token, "")`` once ``rows`` are reserved, or ``(None, message)``."""
        try:
            r = self.budgets[key].reserve(rows)
        except QueryBudgetExceeded as exc:
            return None, str(exc)
        token = next(self.tokens)
        self.reservations[token] = r
        return token, ""

    def settle(self, token: int, rows: int | None, paid: bool) -> None:
        r"""Commits (``paid``) or releases ``rows`` of a reservation (None: the
        rest); a reservation with nothing left is forgotten."""
        r = self.reservations[token]
        if paid:
            r.commit(rows)
        else:
            r.release(rows)
        if r.left == 0:
            del self.reservations[token]

    def counts(self, key: str) -> tuple[int, int, int | None]:
        r"""``(spent, reserved, max_queries)`` of ``key``'s budget."""
        b = self.budgets[key]
        return b.spent, b.reserved, b.max_queries

    def set_cap(self, key: str, max_queries: int | None) -> None:
        r"""Changes ``key``'s cap."""
        self.budgets[key].max_queries = max_queries

    def slot(self, key: str, interval: float) -> float:
        r"""The wall-clock time at which the next request of ``key`` may start
        (at least ``interval`` seconds after the one before, across workers)."""
        now = time.time()
        start = max(now, self.next_start.get(key, 0.0))
        self.next_start[key] = start + interval
        return start

    def cache_get(self, key: str, rows: Sequence[bytes]) -> dict[bytes, Any]:
        r"""The cached answers among ``rows``."""
        cache = self.caches[key]
        return {k: cache[k] for k in rows if k in cache}

    def cache_put(self, key: str, rows: Sequence[bytes], values: Sequence[Any]) -> None:
        r"""Stores one answer per row key."""
        self.caches[key].update(zip(rows, values))

    def cache_len(self, key: str) -> int:
        r"""Rows held in ``key``'s cache."""
        return len(self.caches[key])


def _get(ref: Any) -> Any:
    import ray

    return ray.get(ref)


class SharedReservation:
    r"""A reservation held by the coordinator (same methods as
    :class:`~captum_lr.remote.budget.Reservation`)."""

    def __init__(self, actor: Any, token: int | None, rows: int) -> None:
        self.actor, self.token, self.left = actor, token, rows

    def _settle(self, rows: int | None, paid: bool) -> None:
        rows = self.left if rows is None else rows
        if rows > self.left:
            raise RuntimeError(
                f"settling {rows} rows but only {self.left} are still reserved."
            )
        self.left -= rows
        if self.token is not None and rows:
            _get(self.actor.settle.remote(self.token, rows, paid))

    def commit(self, rows: int) -> None:
        r"""Counts ``rows`` reserved rows as paid (job-wide)."""
        self._settle(rows, True)

    def release(self, rows: int | None = None) -> None:
        r"""Gives ``rows`` (None: all left) back to the job's budget."""
        self._settle(rows, False)

    def __enter__(self) -> SharedReservation:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


class SharedBudget:
    r"""A :class:`~captum_lr.remote.budget.QueryBudget` whose counts live in
    the coordinator, under ``key`` (one per BlackBox, and one for the job)."""

    def __init__(self, actor: Any, key: str) -> None:
        self.actor, self.key = actor, key

    def reserve(self, rows: int) -> SharedReservation:
        r"""Reserves ``rows`` job-wide, or raises :class:`QueryBudgetExceeded`
        whose message names the spent and remaining rows."""
        if not rows:
            return SharedReservation(self.actor, None, 0)
        token, message = _get(self.actor.reserve.remote(self.key, rows))
        if token is None:
            raise QueryBudgetExceeded(f"{message} (a budget shared by every worker)")
        return SharedReservation(self.actor, token, rows)

    @property
    def spent(self) -> int:
        r"""Rows paid job-wide."""
        return _get(self.actor.counts.remote(self.key))[0]

    @property
    def reserved(self) -> int:
        r"""Rows reserved job-wide by calls in flight."""
        return _get(self.actor.counts.remote(self.key))[1]

    @property
    def max_queries(self) -> int | None:
        r"""The job-wide cap."""
        return _get(self.actor.counts.remote(self.key))[2]

    @max_queries.setter
    def max_queries(self, value: int | None) -> None:
        _get(self.actor.set_cap.remote(self.key, value))


class SharedLimiter:
    r"""A rate limit shared by every worker (``wait()`` as
    :class:`~captum_lr.remote.transport.RateLimiter`)."""

    def __init__(self, actor: Any, key: str, interval: float) -> None:
        self.actor, self.key, self.interval = actor, key, interval

    def wait(self) -> None:
        r"""Returns when the next request of the whole job may start."""
        start = _get(self.actor.slot.remote(self.key, self.interval))
        delay = start - time.time()
        if delay > 0:
            time.sleep(delay)


class SharedCache:
    r"""An in-memory answer cache held by the coordinator (the methods of
    :class:`~captum_lr.remote.cache.AnswerCache` that BlackBox calls)."""

    enabled = True
    path = None

    def __init__(self, actor: Any, key: str) -> None:
        self.actor, self.key, self.hits = actor, key, 0

    def count_hits(self, rows: int) -> None:
        r"""Adds ``rows`` to this worker's :attr:`hits`."""
        self.hits += rows

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, Any]:
        r"""The cached answers among ``keys``."""
        return _get(self.actor.cache_get.remote(self.key, list(keys)))

    def put_many(self, keys: Sequence[bytes], values: Sequence[Any]) -> None:
        r"""Stores the answers job-wide (before returning)."""
        _get(self.actor.cache_put.remote(self.key, list(keys), list(values)))

    def __len__(self) -> int:
        return _get(self.actor.cache_len.remote(self.key))

    def close(self) -> None:
        r"""Nothing to close (the coordinator holds the answers)."""


def find_blackboxes(root: Any, depth: int = 5) -> list[BlackBox]:
    r"""The :class:`BlackBox` objects reachable from ``root`` through
    attributes, dicts, lists and tuples (not into modules or tensors), in a
    deterministic order."""
    import torch

    found: list[BlackBox] = []
    seen: set[int] = set()

    def visit(obj: Any, left: int) -> None:
        if id(obj) in seen or left < 0:
            return
        seen.add(id(obj))
        if isinstance(obj, BlackBox):
            found.append(obj)
            return
        if isinstance(obj, (torch.nn.Module, torch.Tensor, str, bytes)):
            return
        if isinstance(obj, dict):
            children = list(obj.values())
        elif isinstance(obj, (list, tuple)):
            children = list(obj)
        else:
            children = list(getattr(obj, "__dict__", {}).values())
        for child in children:
            visit(child, left - 1)

    visit(root, depth)
    return found


def share_blackboxes(explainer: Any, actor: Any) -> int:
    r"""Routes every BlackBox of ``explainer`` through the coordinator
    (budget, rate limit, and the cache when it is in memory); returns how
    many were found."""
    boxes = find_blackboxes(explainer)
    for i, box in enumerate(boxes):
        key = f"blackbox-{i}"
        _get(actor.register.remote(key, box.max_queries))
        box.share_with(
            SharedBudget(actor, key),
            limiter=functools.partial(SharedLimiter, actor, key),
            cache=functools.partial(SharedCache, actor, key),
        )
    return len(boxes)
