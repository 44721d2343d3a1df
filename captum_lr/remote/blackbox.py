r"""Wrap any batch function (a scikit-learn model, an ONNX session, an HTTP API)
as a forward function for the LR attribution classes.

:class:`BlackBox` converts Captum's tensors to what the function takes (tensors,
NumPy arrays or lists) and its answers back to a tensor on the inputs' device;
it splits the rows into the function's batch size, runs batches concurrently,
retries transient failures with exponential backoff (tenacity), checks every
answer (length, type, NaN), caps the number of paid queries and caches every
answered row, keyed by the exact bytes of the query, in memory or on disk, so
that re-running an interrupted attribution re-sends nothing that was already
answered.

It is a composition of small parts, one job each: :mod:`.validation`
(argument checks), :mod:`.encoding` (one host copy of the inputs, shared by the
cache keys and the batches), :mod:`.cache`, :mod:`.budget` (reserve before
sending, commit or release after), :mod:`.transport` (batches, threads, rate
limit, retries) and :mod:`.decoding` (answers to numbers, once per row).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import Tensor

from captum_lr.remote.budget import QueryBudget, Reservation
from captum_lr.remote.cache import AnswerCache
from captum_lr.remote.decoding import Decoder, numeric_output, split_rows
from captum_lr.remote.encoding import INPUT_FORMATS, EncodedCall, Encoder
from captum_lr.remote.errors import (
    MalformedResponseError,
    PermanentError,
    QueryBudgetExceeded,
    TransientError,
)
from captum_lr.remote.transport import Transport

__all__ = [
    "INPUT_FORMATS",
    "BlackBox",
    "MalformedResponseError",
    "PermanentError",
    "QueryBudgetExceeded",
    "TransientError",
    "numeric_output",
]


class _Part:
    """An attribute of BlackBox kept by one of its parts (read-only counters)."""

    def __init__(self, part: str, name: str | None = None, readonly: bool = False):
        self.part, self.name, self.readonly = part, name, readonly

    def __set_name__(self, owner: type, name: str) -> None:
        self.public = name
        self.name = self.name or name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return getattr(getattr(obj, self.part), self.name)

    def __set__(self, obj: Any, value: Any) -> None:
        if self.readonly:
            raise AttributeError(f"BlackBox.{self.public} is a counter; read it only.")
        setattr(getattr(obj, self.part), self.name, value)


class BlackBox:
    r"""
    Turns any batch function into a forward function for the LR attribution
    classes (``LRIntegratedGradients(BlackBox(api)).attribute(...)``).

    The wrapper is called like a model, with Captum's positional tensors (the
    inputs, then ``additional_forward_args``) and returns a tensor with one row
    per input row, on the first input's device: floating for real answers,
    int64 or bool for integer or boolean ones (hard labels are handed on as
    they are; the estimator refuses them and points to
    :class:`~captum_lr.remote.outputs.LabelIndicator`). In between it:

    - converts each tensor with one row per input row to ``input_format`` and
      sends it in batches of at most ``batch_size`` rows (other arguments pass
      unchanged), ``max_concurrency`` batches at a time, at most
      ``requests_per_second`` batches started per second;
    - answers rows it has answered before from its cache (in memory, or in a
      directory that survives the process), keyed by the exact bytes of the
      query, and sends identical rows of one call once;
    - retries transient failures (:class:`TransientError`, timeouts, connection
      errors, ``httpx.TransportError``) with exponential backoff; any other
      exception, or a batch still failing after ``retries`` retries, raises a
      :class:`PermanentError` naming the batch. Batches that succeeded are cached
      first, so nothing paid is lost;
    - checks each answer: the wrong number of rows, a wrong type, NaN or Inf
      raise :class:`MalformedResponseError` naming the batch, and such an answer
      is neither used nor cached;
    - refuses, with :class:`QueryBudgetExceeded`, a call whose new rows would take
      ``queries`` past ``max_queries``, before sending any of them. A call
      reserves its new rows first, so calls made at the same time from several
      threads never send more than ``max_queries`` rows together; a failed batch
      gives its rows back.

    Each new row is converted to numbers by ``output`` once, when its batch
    arrives (and again only when a later call finds it in the cache).

    Raw answers are cached, and ``output`` turns them into numbers when a call
    returns, so labels or text (see :mod:`captum_lr.remote.outputs`) can be re-scored
    against another target without paying again.

    Args:

        fn (Callable): The batch function. Called as ``fn(*batch_args)`` with one
                    argument per positional argument of the call; returns one
                    value or row per input row (tensor, NumPy array, list, tuple;
                    a Python scalar for a one-row batch).
        batch_size (int, optional): The most rows per call of ``fn``. None sends
                    each call's new rows in one batch.
                    Default: None
        max_concurrency (int, optional): Batches in flight at once (threads;
                    useful when ``fn`` waits on I/O).
                    Default: 1
        max_queries (int, optional): The most rows ``fn`` may answer over the
                    wrapper's life (cache hits are free; failed attempts are not
                    counted, answers rejected as malformed are). None: no cap.
                    It can be changed later (``api.max_queries = 1000``).
                    Default: None
        cache (str or PathLike, optional): None or ``"memory"``: an in-memory
                    cache for the wrapper's life (None is the in-memory default;
                    use ``cache=False`` to keep nothing). A directory path: a
                    SQLite file in it also keeps every answer across processes.
                    Cached values are pickled: only point this at a directory
                    you trust.
                    Default: None
        input_format (str, optional): What ``fn`` receives: ``"tensor"`` (CPU
                    tensors), ``"numpy"`` or ``"list"`` (nested Python lists).
                    Default: ``"numpy"``
        output (Callable, optional): Turns the list of per-row answers into an
                    array-like of real numbers, ``(rows,)`` or ``(rows, ...)``;
                    e.g. :class:`captum_lr.remote.outputs.LabelIndicator`. None:
                    :func:`numeric_output`.
                    Default: None
        requests_per_second (float, optional): The most batches started per
                    second, across threads. None: no limit.
                    Default: None
        retries (int, optional): Retries of a batch after a transient failure.
                    Default: 5
        backoff (float, optional): The first backoff in seconds; it doubles at
                    each retry, up to ``max_backoff``.
                    Default: 0.1
        max_backoff (float, optional): The longest wait between retries.
                    Default: 10.0
        transient (tuple[type, ...], optional): Exception types that are
                    retried. None: :class:`TransientError`, ``TimeoutError``,
                    ``ConnectionError`` and ``httpx.TransportError``.
                    Default: None
        namespace (str, optional): Mixed into every cache key, so that one
                    cache directory can hold several models. None: the
                    function's ``cache_namespace`` attribute if it has one, else
                    its qualified name.
                    Default: None
        dtype (torch.dtype, optional): The floating dtype of real outputs
                    (integer and boolean outputs stay int64 and bool). None:
                    the first input's dtype if floating, else float32.
                    Default: None

    Attributes:

        queries (int): Rows answered by ``fn`` (the paid queries, answers
                    rejected as malformed included).
        cache_hits (int): Rows served from the cache, or sent once for several
                    identical rows of one call.
        sent_rows (int): Rows sent to ``fn``, failed attempts included.
        requests (int): Calls of ``fn``, failed attempts included.
        retried (int): Calls of ``fn`` that were retries.

    Examples::

        >>> from captum_lr import BlackBox, LRIntegratedGradients, LREstimator
        >>> api = BlackBox(sklearn_model.predict_proba, batch_size=256)
        >>> ig = LRIntegratedGradients(api, estimator=LREstimator(seed=0))
        >>> attr = ig.attribute(torch.tensor(X[:4]).float(), target=1)
        >>> api.queries, api.cache_hits
    """

    fn = _Part("_transport")
    batch_size = _Part("_transport")
    max_concurrency = _Part("_transport")
    retries = _Part("_transport")
    backoff = _Part("_transport")
    max_backoff = _Part("_transport")
    transient = _Part("_transport")
    requests = _Part("_transport", readonly=True)
    sent_rows = _Part("_transport", readonly=True)
    retried = _Part("_transport", readonly=True)
    max_queries = _Part("_budget")
    queries = _Part("_budget", "spent", readonly=True)
    cache_hits = _Part("_cache", "hits", readonly=True)
    output = _Part("_decoder")
    dtype = _Part("_decoder")
    input_format = _Part("_encoder")
    namespace = _Part("_encoder")

    def __init__(
        self,
        fn: Callable[..., Any],
        batch_size: int | None = None,
        max_concurrency: int = 1,
        max_queries: int | None = None,
        cache: str | os.PathLike | bool | None = None,
        *,
        input_format: str = "numpy",
        output: Callable[[list[Any]], Any] | None = None,
        requests_per_second: float | None = None,
        retries: int = 5,
        backoff: float = 0.1,
        max_backoff: float = 10.0,
        transient: tuple[type[BaseException], ...] | None = None,
        namespace: str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        self._transport = Transport(
            fn,
            batch_size,
            max_concurrency,
            requests_per_second=requests_per_second,
            retries=retries,
            backoff=backoff,
            max_backoff=max_backoff,
            transient=transient,
        )
        self._budget = QueryBudget(max_queries)
        self._decoder = Decoder(output, dtype)
        if namespace is None:
            namespace = getattr(fn, "cache_namespace", None) or getattr(
                fn, "__qualname__", type(fn).__qualname__
            )
        self._encoder = Encoder(str(namespace), input_format)
        self._cache = AnswerCache(cache)

    def __repr__(self) -> str:
        return (
            f"BlackBox({getattr(self.fn, '__qualname__', self.fn)!r}, "
            f"batch_size={self.batch_size}, max_concurrency={self.max_concurrency}, "
            f"max_queries={self.max_queries}, queries={self.queries}, "
            f"cache_hits={self.cache_hits})"
        )

    @property
    def stats(self) -> dict[str, int]:
        r"""The counters as a dict (``queries``, ``cache_hits``, ``sent_rows``,
        ``requests``, ``retried``, ``cached``: rows held in the cache)."""
        names = ("queries", "cache_hits", "sent_rows", "requests", "retried")
        return {**{k: getattr(self, k) for k in names}, "cached": len(self._cache)}

    def close(self) -> None:
        r"""Closes the disk cache (answers already written stay on disk)."""
        self._cache.close()

    def share_with(
        self,
        budget: Any,
        limiter: Callable[[float], Any] | None = None,
        cache: Callable[[], Any] | None = None,
    ) -> None:
        r"""
        From now on reserves and pays through ``budget``, and, where given,
        starts requests through ``limiter``'s and keeps answers in ``cache``'s
        result: how :mod:`captum_lr.scale` shares one budget, rate limit and
        in-memory cache among the copies of a wrapper in its workers.

        Args:

            budget (QueryBudget): Replaces the wrapper's budget (anything with
                        ``reserve``, ``spent``, ``reserved`` and ``max_queries``
                        as :class:`~captum_lr.remote.budget.QueryBudget`).
            limiter (Callable[[float], Any], optional): Called with the seconds
                        between request starts when the wrapper has a rate
                        limit (``requests_per_second``); what it returns
                        (anything with ``wait()``) replaces that limit. None:
                        the rate limit stays.
                        Default: None
            cache (Callable[[], Any], optional): Called when the wrapper's
                        cache is in memory (not off, not a directory); what it
                        returns (anything with the methods of
                        :class:`~captum_lr.remote.cache.AnswerCache` that
                        BlackBox calls) replaces it. None: the cache stays.
                        Default: None
        """
        self._budget = budget
        own_limiter = self._transport.limiter
        if limiter is not None and own_limiter is not None:
            self._transport.limiter = limiter(own_limiter.interval)
        own_cache = self._cache
        if cache is not None and own_cache.enabled and own_cache.path is None:
            self._cache = cache()

    def __call__(self, *args: Any) -> Tensor:
        r"""
        Answers one row per input row.

        Args:

            *args: The input tensor(s) first, with the batch dimension first,
                        then any other arguments of ``fn``. Every tensor or array
                        whose first dimension equals the first input's is split
                        into rows; other arguments go to every batch unchanged.

        Returns:
            *Tensor* of shape ``(rows,)`` or ``(rows, ...)`` on the first input's
            device: floating, or int64/bool for integer/boolean answers
            (``(0,)`` floating for zero rows: nothing is sent).
        """
        call = self._encoder.encode(args)
        if call.n == 0:
            dtype = self._decoder.output_dtype(call.dtype)
            return torch.zeros(0, device=call.device, dtype=dtype)
        found = self._cache.get_many(call.unique)
        cached = np.array([u for u, k in enumerate(call.unique) if k in found], int)
        new = np.array([u for u, k in enumerate(call.unique) if k not in found], int)
        with self._budget.reserve(len(new)) as reservation:
            self._cache.count_hits(call.n - len(new))
            parts = []
            if len(cached):
                answers = [found[call.unique[u]] for u in cached]
                where = "the rows answered from the cache"
                parts.append((cached, self._decoder.decode(answers, where)))
            if len(new):
                parts += self._fetch(call, new, reservation)
        return self._decoder.assemble(parts, call.inverse, call.device, call.dtype)

    def _fetch(
        self, call: EncodedCall, new: np.ndarray, reservation: Reservation
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Sends the new distinct rows in batches; ``(rows, numbers)`` per batch."""
        spans = self._transport.plan(len(new))
        jobs = []
        for b, (start, stop) in enumerate(spans):
            where = (
                f"batch {b + 1} of {len(spans)} (new rows {start}-{stop - 1} of "
                f"this call's {call.n})"
            )
            jobs.append(partial(self._batch, call, new[start:stop], reservation, where))
        return self._transport.run(jobs)

    def _batch(
        self, call: EncodedCall, rows: np.ndarray, reservation: Reservation, where: str
    ) -> tuple[np.ndarray, np.ndarray]:
        """Sends one batch of distinct rows, pays for and caches its answers."""
        m = len(rows)
        args = call.batch_args(call.first_row[rows], self.input_format)
        try:
            response = self._transport.send(args, m, where)
        except BaseException:
            reservation.release(m)  # not answered: not paid
            raise
        reservation.commit(m)  # answered, so paid, even if the answer is malformed
        answers = split_rows(response, m, where)
        keys = [call.unique[u] for u in rows]
        try:
            numbers = self._decoder.decode(answers, where)
        except MalformedResponseError:
            raise  # a wrong answer is never cached
        except BaseException:
            self._cache.put_many(keys, answers)  # output= failed, not the answer
            raise
        self._cache.put_many(keys, answers)
        return rows, numbers
