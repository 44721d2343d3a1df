r"""Wrap any batch function (a scikit-learn model, an ONNX session, an HTTP API)
as a forward function for the LR attribution classes.

:class:`BlackBox` converts Captum's tensors to what the function takes (tensors,
NumPy arrays or lists) and its answers back to a float tensor on the inputs'
device; it splits the rows into the function's batch size, runs batches
concurrently, retries transient failures with exponential backoff (tenacity),
checks every answer (length, type, NaN), caps the number of paid queries and
caches every answered row, keyed by the exact bytes of the query, in memory
or on disk, so that re-running an interrupted attribution re-sends nothing
that was already answered.
"""

from __future__ import annotations

import hashlib
import math
import os
import pickle
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

INPUT_FORMATS = ("tensor", "numpy", "list")


class TransientError(RuntimeError):
    r"""A failure worth retrying (server error, timeout, dropped connection,
    unparsable body). Raise it from a wrapped function to ask for a retry."""


class PermanentError(RuntimeError):
    r"""A batch failed for good: not transient, or still failing after every
    retry. The message names the batch; ``__cause__`` is the last error."""


class MalformedResponseError(ValueError):
    r"""The function answered a batch with the wrong number of rows, a value of
    the wrong type, or NaN/Inf. Such an answer is never used nor cached."""


class QueryBudgetExceeded(RuntimeError):
    r"""Sending the next call's queries would cross ``max_queries``. Nothing of
    that call was sent; rows answered before stay in the cache."""


def _default_transient() -> tuple[type[BaseException], ...]:
    kinds: list[type[BaseException]] = [TransientError, TimeoutError, ConnectionError]
    try:  # httpx is an optional dependency (the ``api`` extra)
        import httpx

        kinds.append(httpx.TransportError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(kinds)


class _RateLimiter:
    """Spaces request starts at least ``1 / rps`` seconds apart (thread-safe)."""

    def __init__(self, rps: float) -> None:
        self.interval = 1.0 / rps
        self.lock = threading.Lock()
        self.next = 0.0

    def wait(self) -> None:
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next)
            self.next = start + self.interval
        if start > now:
            time.sleep(start - now)


class _Cache:
    """Answered rows by key; optionally persisted to SQLite in a directory."""

    def __init__(self, spec: Any) -> None:
        self.memory: dict[bytes, Any] = {}
        self.lock = threading.Lock()
        self.db: sqlite3.Connection | None = None
        self.path: Path | None = None
        if spec is None or spec == "memory":
            return
        if not isinstance(spec, (str, os.PathLike)):
            raise TypeError(
                f"cache must be None, 'memory' or a directory path, not {spec!r}."
            )
        self.path = Path(spec)
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"cache={str(spec)!r} exists and is not a directory.")
        self.path.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(
            str(self.path / "blackbox-cache.sqlite"), check_same_thread=False
        )
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS answers (key BLOB PRIMARY KEY, value BLOB)"
        )
        self.db.commit()

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, Any]:
        found: dict[bytes, Any] = {}
        with self.lock:
            missing = []
            for k in keys:
                if k in self.memory:
                    found[k] = self.memory[k]
                else:
                    missing.append(k)
            if self.db is not None and missing:
                for start in range(0, len(missing), 500):
                    part = missing[start : start + 500]
                    marks = ",".join("?" * len(part))
                    rows = self.db.execute(
                        f"SELECT key, value FROM answers WHERE key IN ({marks})", part
                    ).fetchall()
                    for k, v in rows:
                        value = pickle.loads(v)
                        self.memory[bytes(k)] = value
                        found[bytes(k)] = value
        return found

    def put_many(self, keys: Sequence[bytes], values: Sequence[Any]) -> None:
        with self.lock:
            self.memory.update(zip(keys, values))
            if self.db is not None:
                self.db.executemany(
                    "INSERT OR REPLACE INTO answers VALUES (?, ?)",
                    [(k, pickle.dumps(v)) for k, v in zip(keys, values)],
                )
                self.db.commit()

    def __len__(self) -> int:
        with self.lock:
            if self.db is not None:
                row = self.db.execute("SELECT COUNT(*) FROM answers").fetchone()
                return int(row[0])
            return len(self.memory)

    def close(self) -> None:
        with self.lock:
            if self.db is not None:
                self.db.close()
                self.db = None


def _to_rows(response: Any, m: int, where: str) -> list[Any]:
    """Splits a batch answer into ``m`` per-row values (NumPy rows, or objects)."""
    if isinstance(response, Tensor):
        response = response.detach().cpu().numpy()
    if isinstance(response, np.ndarray):
        if response.ndim == 0:
            if m != 1:
                raise MalformedResponseError(
                    f"{where}: the function returned one scalar for {m} rows; it "
                    "must return one value (or one row of values) per input row."
                )
            return [response.reshape(())]
        if response.shape[0] != m:
            raise MalformedResponseError(
                f"{where}: the function returned {response.shape[0]} rows for "
                f"{m} input rows; it must return one per input row."
            )
        return list(response)
    if isinstance(response, (list, tuple)):
        if len(response) != m:
            raise MalformedResponseError(
                f"{where}: the function returned {len(response)} values for {m} "
                "input rows; it must return one per input row."
            )
        return list(response)
    if isinstance(response, (bool, int, float, str, np.generic)):
        if m != 1:
            raise MalformedResponseError(
                f"{where}: the function returned a single "
                f"{type(response).__name__} for {m} rows; return a sequence with "
                "one value per row."
            )
        return [response]
    raise MalformedResponseError(
        f"{where}: the function returned a {type(response).__name__}; return a "
        "tensor, a NumPy array, a list or a Python scalar (and pass output= to "
        "turn labels or text into numbers, see captum_lr.remote.outputs)."
    )


def numeric_output(rows: Sequence[Any]) -> np.ndarray:
    r"""The default ``output``: stacks per-row numbers into a float array.

    Args:

        rows (Sequence): One value (a number or an equally shaped array) per row.

    Returns:
        *np.ndarray* of shape ``(len(rows), ...)``, float64.
    """
    try:
        out = np.asarray([np.asarray(r) for r in rows])
    except (ValueError, TypeError) as exc:
        raise MalformedResponseError(
            f"the rows do not stack into an array ({exc}); every row must have the "
            "same shape."
        ) from exc
    if out.dtype.kind not in "biuf":
        raise MalformedResponseError(
            f"the function returned values of dtype {out.dtype} ({type(rows[0])}); "
            "scores must be real numbers. For labels or text pass output= (see "
            "captum_lr.remote.outputs.LabelIndicator and TextScore)."
        )
    return out.astype(np.float64)


class BlackBox:
    r"""
    Turns any batch function into a forward function for the LR attribution
    classes (``LRIntegratedGradients(BlackBox(api)).attribute(...)``).

    The wrapper is called like a model, with Captum's positional tensors (the
    inputs, then ``additional_forward_args``) and returns a float tensor with one
    row per input row, on the first input's device. In between it:

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
      ``queries`` past ``max_queries``, before sending any of them.

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
                    counted). None: no cap.
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
        dtype (torch.dtype, optional): The floating dtype of the output. None:
                    the first input's dtype if floating, else float32.
                    Default: None

    Attributes:

        queries (int): Rows answered by ``fn`` (the paid queries).
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

    def __init__(
        self,
        fn: Callable[..., Any],
        batch_size: int | None = None,
        max_concurrency: int = 1,
        max_queries: int | None = None,
        cache: str | os.PathLike | None = None,
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
        if not callable(fn):
            raise TypeError(f"fn must be callable, not {type(fn).__name__}.")
        _check_count("batch_size", batch_size, allow_none=True)
        _check_count("max_concurrency", max_concurrency)
        _check_count("max_queries", max_queries, allow_none=True, minimum=0)
        _check_count("retries", retries, minimum=0)
        if input_format not in INPUT_FORMATS:
            raise ValueError(
                f"input_format must be one of {INPUT_FORMATS}, not {input_format!r}."
            )
        if output is not None and not callable(output):
            raise TypeError(f"output must be callable, not {type(output).__name__}.")
        for name, value in (("backoff", backoff), ("max_backoff", max_backoff)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a number, not {value!r}.")
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}.")
        if requests_per_second is not None:
            if isinstance(requests_per_second, bool) or not isinstance(
                requests_per_second, (int, float)
            ):
                raise TypeError(
                    "requests_per_second must be None or a positive number, not "
                    f"{requests_per_second!r}."
                )
            if not (math.isfinite(requests_per_second) and requests_per_second > 0):
                raise ValueError(
                    "requests_per_second must be a positive finite number, got "
                    f"{requests_per_second}."
                )
        if dtype is not None and (
            not isinstance(dtype, torch.dtype) or not dtype.is_floating_point
        ):
            raise TypeError(f"dtype must be a floating torch.dtype, not {dtype!r}.")
        if transient is None:
            transient = _default_transient()
        elif not (
            isinstance(transient, tuple)
            and all(isinstance(t, type) for t in transient)
            and all(issubclass(t, BaseException) for t in transient)
        ):
            raise TypeError("transient must be a tuple of exception types.")
        self.fn = fn
        self.batch_size = batch_size
        self.max_concurrency = max_concurrency
        self.max_queries = max_queries
        self.input_format = input_format
        self.output = output if output is not None else numeric_output
        self.retries = retries
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.transient = transient
        self.dtype = dtype
        if namespace is None:
            namespace = getattr(fn, "cache_namespace", None) or getattr(
                fn, "__qualname__", type(fn).__qualname__
            )
        self.namespace = str(namespace)
        self._use_cache = cache is not False
        self._cache = _Cache(None if cache is False else cache)
        self._limiter = (
            _RateLimiter(float(requests_per_second)) if requests_per_second else None
        )
        self._lock = threading.Lock()
        self.queries = 0
        self.cache_hits = 0
        self.sent_rows = 0
        self.requests = 0
        self.retried = 0

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
        with self._lock:
            out = {
                "queries": self.queries,
                "cache_hits": self.cache_hits,
                "sent_rows": self.sent_rows,
                "requests": self.requests,
                "retried": self.retried,
            }
        out["cached"] = len(self._cache)
        return out

    def close(self) -> None:
        r"""Closes the disk cache (answers already written stay on disk)."""
        self._cache.close()

    def __call__(self, *args: Any) -> Tensor:
        r"""
        Answers one row per input row.

        Args:

            *args: The input tensor(s) first, with the batch dimension first,
                        then any other arguments of ``fn``. Every tensor or array
                        whose first dimension equals the first input's is split
                        into rows; other arguments go to every batch unchanged.

        Returns:
            *Tensor* of shape ``(rows,)`` or ``(rows, ...)``, floating, on the
            first input's device (``(0,)`` for zero rows: nothing is sent).
        """
        if not args:
            raise TypeError("BlackBox needs at least one input tensor.")
        first = _as_input_tensor(args[0], 0)
        if first.dim() == 0:
            raise ValueError(
                "the first input is 0-dimensional; inputs need a batch dimension "
                "first (add one with .unsqueeze(0))."
            )
        n = first.shape[0]
        device = first.device
        dtype = self.dtype or (
            first.dtype if first.dtype.is_floating_point else torch.float32
        )
        batched: list[int] = []
        values: list[Any] = [first]
        for i, a in enumerate(args[1:], start=1):
            if isinstance(a, np.ndarray) and a.dtype != object:
                a = _as_input_tensor(a, i)
            if isinstance(a, Tensor) and a.dim() > 0 and a.shape[0] == n:
                _check_dtype(a, i)
                batched.append(i)
            values.append(a)
        batched = [0, *batched]
        if n == 0:
            return torch.zeros(0, device=device, dtype=dtype)
        keys = self._keys(values, batched, n)
        first_of: dict[bytes, int] = {}
        for row, k in enumerate(keys):
            first_of.setdefault(k, row)
        found = self._cache.get_many(list(first_of)) if self._use_cache else {}
        missing = [k for k in first_of if k not in found]
        with self._lock:
            if self.max_queries is not None and self.queries + len(missing) > (
                self.max_queries
            ):
                raise QueryBudgetExceeded(
                    f"this call needs {len(missing)} new queries but "
                    f"{self.queries} of max_queries={self.max_queries} are spent, "
                    f"so only {self.max_queries - self.queries} more fit; nothing "
                    "of this call was sent. Raise max_queries (answered rows stay "
                    "cached and are not paid again) or lower the attribution's "
                    "cost (see captum_lr.estimate_queries)."
                )
            self.cache_hits += n - len(missing)
        answers = dict(found)
        if missing:
            rows = torch.tensor([first_of[k] for k in missing], dtype=torch.long)
            answers.update(self._send(values, batched, rows, missing, n))
        try:
            out = self.output([answers[k] for k in keys])
            out = _as_float_array(out, n, "the assembled output")
        except MalformedResponseError:
            raise
        except (TypeError, ValueError) as exc:
            raise MalformedResponseError(
                f"output= could not convert the answers: {exc}"
            ) from exc
        return torch.from_numpy(out).to(device=device, dtype=dtype)

    def _keys(self, values: list[Any], batched: list[int], n: int) -> list[bytes]:
        """One key per row: the exact bytes, dtypes and shapes of the row's query."""
        head = hashlib.blake2b(digest_size=16)
        head.update(self.namespace.encode())
        parts = []
        for i, v in enumerate(values):
            if i in batched:
                t = v.detach().cpu().contiguous()
                head.update(f"{i}:{t.dtype}:{tuple(t.shape[1:])};".encode())
                flat = t.reshape(n, t[0].numel() if n else 0)
                parts.append(flat.view(torch.uint8).reshape(n, -1).numpy())
            else:
                try:
                    head.update(pickle.dumps(v))
                except Exception as exc:
                    raise TypeError(
                        f"argument {i} ({type(v).__name__}) cannot be pickled into "
                        "the cache key; pass tensors, arrays or plain values."
                    ) from exc
        prefix = head.digest()
        rows = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
        rows = np.ascontiguousarray(rows)
        return [
            hashlib.blake2b(r.tobytes(), digest_size=20, key=prefix).digest()
            for r in rows
        ]

    def _convert_args(self, values: list[Any], batched: list[int], rows: Tensor):
        out = []
        for i, v in enumerate(values):
            if i not in batched:
                out.append(v)
                continue
            part = v.detach().index_select(0, rows.to(v.device)).cpu()
            if part.dtype == torch.bfloat16 and self.input_format != "tensor":
                part = part.float()  # NumPy has no bfloat16; float32 is exact
            if self.input_format == "numpy":
                out.append(part.numpy())
            elif self.input_format == "list":
                out.append(part.tolist())
            else:
                out.append(part)
        return out

    def _send(
        self,
        values: list[Any],
        batched: list[int],
        rows: Tensor,
        keys: list[bytes],
        n: int,
    ) -> dict[bytes, Any]:
        size = self.batch_size or len(keys)
        starts = list(range(0, len(keys), size))
        n_batches = len(starts)

        def run(b: int) -> dict[bytes, Any]:
            s = starts[b]
            idx, ks = rows[s : s + size], keys[s : s + size]
            where = (
                f"batch {b + 1} of {n_batches} (new rows {s}-{s + len(ks) - 1} of "
                f"this call's {n})"
            )
            answered = self._run_batch(values, batched, idx, where)
            if self._use_cache:
                self._cache.put_many(ks, answered)
            with self._lock:
                self.queries += len(ks)
            return dict(zip(ks, answered))

        results: dict[bytes, Any] = {}
        if self.max_concurrency == 1 or n_batches == 1:
            for b in range(n_batches):
                results.update(run(b))
            return results
        errors: list[tuple[int, BaseException]] = []
        with ThreadPoolExecutor(min(self.max_concurrency, n_batches)) as pool:
            futures = [pool.submit(run, b) for b in range(n_batches)]
            for b, f in enumerate(futures):
                try:
                    results.update(f.result())
                except BaseException as exc:  # collect; the others finish first
                    errors.append((b, exc))
        if errors:
            raise errors[0][1]
        return results

    def _run_batch(
        self, values: list[Any], batched: list[int], idx: Tensor, where: str
    ) -> list[Any]:
        m = idx.shape[0]
        call_args = self._convert_args(values, batched, idx)
        attempts = 0

        def attempt() -> list[Any]:
            nonlocal attempts
            if self._limiter is not None:
                self._limiter.wait()
            with self._lock:
                self.requests += 1
                self.sent_rows += m
                if attempts:
                    self.retried += 1
            attempts += 1
            response = self.fn(*call_args)
            answers = _to_rows(response, m, where)
            try:
                numbers = self.output(answers)
            except MalformedResponseError as exc:
                raise MalformedResponseError(f"{where}: {exc}") from exc
            except (TypeError, ValueError) as exc:
                raise MalformedResponseError(
                    f"{where}: output= could not convert the answer: {exc}"
                ) from exc
            _as_float_array(numbers, m, where)
            return [a.copy() if isinstance(a, np.ndarray) else a for a in answers]

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
        retrying = Retrying(
            stop=stop_after_attempt(self.retries + 1),
            wait=wait_exponential(
                multiplier=self.backoff, min=self.backoff, max=self.max_backoff
            ),
            retry=retry_if_exception_type(self.transient),
            reraise=True,
        )
        try:
            return retrying(attempt)
        except MalformedResponseError:
            raise
        except self.transient as exc:
            raise PermanentError(
                f"{where} still failed after {attempts} attempts "
                f"({type(exc).__name__}: {exc}); the rows answered before are "
                "cached, re-run to resume."
            ) from exc
        except Exception as exc:
            raise PermanentError(
                f"{where} failed with a non-transient {type(exc).__name__}: {exc} "
                "(not retried; the rows answered before are cached, re-run to "
                "resume)."
            ) from exc


def _as_float_array(value: Any, m: int, where: str) -> np.ndarray:
    if isinstance(value, Tensor):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise MalformedResponseError(
            f"{where}: not an array of numbers ({exc})."
        ) from exc
    if arr.dtype.kind not in "biuf":
        raise MalformedResponseError(
            f"{where}: the converted answer has dtype {arr.dtype}; it must be real "
            "numbers."
        )
    if arr.ndim == 0 or arr.shape[0] != m:
        got = "a scalar" if arr.ndim == 0 else f"{arr.shape[0]} rows"
        raise MalformedResponseError(
            f"{where}: the converted answer has {got} for {m} rows."
        )
    arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = np.unique(np.nonzero(bad.reshape(m, -1))[0])
        raise MalformedResponseError(
            f"{where}: the function returned NaN or Inf for rows "
            f"{rows[:10].tolist()}{' ...' if rows.size > 10 else ''} of the batch; "
            "such answers are not used."
        )
    return arr


def _as_input_tensor(value: Any, i: int) -> Tensor:
    if isinstance(value, np.ndarray):
        if value.dtype == object or value.dtype.kind not in "biufc":
            raise TypeError(
                f"input {i} is a NumPy array of dtype {value.dtype}; inputs must "
                "be numeric."
            )
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, Tensor):
        raise TypeError(
            f"input {i} is a {type(value).__name__}; BlackBox takes tensors (as "
            "Captum passes them) or NumPy arrays."
        )
    _check_dtype(value, i)
    return value


def _check_dtype(t: Tensor, i: int) -> None:
    if t.is_complex():
        raise TypeError(f"input {i} has complex dtype {t.dtype}; use real inputs.")
    if t.is_quantized:
        raise TypeError(f"input {i} is quantized ({t.dtype}); dequantize it first.")


def _check_count(
    name: str, value: Any, allow_none: bool = False, minimum: int = 1
) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"{name} must be {'None or ' if allow_none else ''}an int, not {value!r}."
        )
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}.")
