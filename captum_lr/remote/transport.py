r"""Sending batches to the wrapped function: batch sizes, threads, a rate limit
and retries with exponential backoff (tenacity). It knows nothing of caches,
budgets or what the answers mean."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from captum_lr.remote.errors import MalformedResponseError, PermanentError
from captum_lr.remote.validation import (
    check_callable,
    check_count,
    check_rate,
    check_seconds,
    check_transient,
)

T = TypeVar("T")


class RateLimiter:
    r"""Spaces request starts at least ``1 / rps`` seconds apart, across threads."""

    def __init__(self, rps: float) -> None:
        self.interval = 1.0 / rps
        self.lock = threading.Lock()
        self.next = 0.0

    def wait(self) -> None:
        r"""Returns when the next request may start."""
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next)
            self.next = start + self.interval
        if start > now:
            time.sleep(start - now)


class Transport:
    r"""
    Calls ``fn`` on batches: at most ``batch_size`` rows each,
    ``max_concurrency`` at a time, ``requests_per_second`` started per second,
    transient failures retried with exponential backoff.

    Args: as the same-named arguments of
    :class:`~captum_lr.remote.blackbox.BlackBox` (``transient=None`` is
    :func:`~captum_lr.remote.errors.default_transient`).

    Attributes:

        requests (int): Calls of ``fn``, failed attempts included.
        sent_rows (int): Rows sent to ``fn``, failed attempts included.
        retried (int): Calls of ``fn`` that were retries.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        batch_size: int | None = None,
        max_concurrency: int = 1,
        requests_per_second: float | None = None,
        retries: int = 5,
        backoff: float = 0.1,
        max_backoff: float = 10.0,
        transient: tuple[type[BaseException], ...] | None = None,
    ) -> None:
        check_callable("fn", fn)
        check_count("batch_size", batch_size, allow_none=True)
        check_count("max_concurrency", max_concurrency)
        check_count("retries", retries, minimum=0)
        self.fn = fn
        self.batch_size = batch_size
        self.max_concurrency = max_concurrency
        self.retries = retries
        self.backoff = check_seconds("backoff", backoff)
        self.max_backoff = check_seconds("max_backoff", max_backoff)
        self.transient = check_transient(transient)
        rps = check_rate(requests_per_second)
        self.limiter = RateLimiter(rps) if rps else None
        self.lock = threading.Lock()
        self.requests = 0
        self.sent_rows = 0
        self.retried = 0

    def plan(self, rows: int) -> list[tuple[int, int]]:
        r"""``(start, stop)`` of each batch for ``rows`` rows."""
        size = self.batch_size or rows
        return [(s, min(s + size, rows)) for s in range(0, rows, size)]

    def run(self, jobs: Sequence[Callable[[], T]]) -> list[T]:
        r"""Runs the jobs (one per batch), ``max_concurrency`` at a time, and
        returns their results in order. One at a time, the first failure stops
        the rest; in threads, every job finishes and the first failure (in
        batch order) is raised."""
        if self.max_concurrency == 1 or len(jobs) <= 1:
            return [job() for job in jobs]
        with ThreadPoolExecutor(min(self.max_concurrency, len(jobs))) as pool:
            futures = [pool.submit(job) for job in jobs]
        for f in futures:
            if f.exception() is not None:
                raise f.exception()
        return [f.result() for f in futures]

    def send(self, args: Sequence[Any], m: int, where: str) -> Any:
        r"""Calls ``fn(*args)`` for one batch of ``m`` rows, with retries, and
        returns its answer; raises :class:`PermanentError` naming ``where``."""
        attempts = [0]

        def before(state: Any) -> None:  # tenacity calls it before each attempt
            attempts[0] = state.attempt_number
            if self.limiter is not None:
                self.limiter.wait()
            with self.lock:
                self.requests += 1
                self.sent_rows += m
                self.retried += int(state.attempt_number > 1)

        try:
            return self._retrying(before)(self.fn, *args)
        except MalformedResponseError:
            raise
        except self.transient as exc:
            raise PermanentError(
                f"{where} still failed after {attempts[0]} attempts "
                f"({type(exc).__name__}: {exc}); the rows answered before are "
                "cached, re-run to resume."
            ) from exc
        except Exception as exc:
            raise PermanentError(
                f"{where} failed with a non-transient {type(exc).__name__}: {exc} "
                "(not retried; the rows answered before are cached, re-run to "
                "resume)."
            ) from exc

    def _retrying(self, before: Callable[[Any], None]) -> Any:
        try:  # the ``api`` extra; imported here so captum_lr imports without it
            from tenacity import (
                Retrying,
                retry_if_exception_type,
                stop_after_attempt,
                wait_exponential,
            )
        except ImportError as exc:  # pragma: no cover
            raise ImportError(
                "BlackBox retries need tenacity: pip install 'captum-lr[api]'."
            ) from exc
        return Retrying(
            stop=stop_after_attempt(self.retries + 1),
            wait=wait_exponential(
                multiplier=self.backoff, min=self.backoff, max=self.max_backoff
            ),
            retry=retry_if_exception_type(self.transient),
            before=before,
            reraise=True,
        )
