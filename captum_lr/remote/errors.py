r"""The errors :class:`~captum_lr.remote.blackbox.BlackBox` raises, and the
exception types it retries by default."""

from __future__ import annotations


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


def default_transient() -> tuple[type[BaseException], ...]:
    r"""The exception types retried by default: :class:`TransientError`,
    ``TimeoutError``, ``ConnectionError`` and, if httpx is installed,
    ``httpx.TransportError``."""
    kinds: list[type[BaseException]] = [TransientError, TimeoutError, ConnectionError]
    try:  # httpx is an optional dependency (the ``api`` extra)
        import httpx

        kinds.append(httpx.TransportError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(kinds)
