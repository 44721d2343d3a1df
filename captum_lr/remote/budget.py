r"""The cap on paid queries of :class:`~captum_lr.remote.blackbox.BlackBox`:
a call reserves its new rows before sending any, and each batch commits its
rows once the function has answered them, or releases them if it failed.

Reserving and checking happen under one lock, so calls made at the same time
from several threads can never together send more rows than the cap."""

from __future__ import annotations

import threading
from typing import Any

from captum_lr.remote.errors import QueryBudgetExceeded
from captum_lr.remote.validation import check_count


class QueryBudget:
    r"""
    Counts paid rows against an optional cap (thread-safe).

    Args:

        max_queries (int, optional): The most rows that may be paid for; None
                    for no cap. It can be raised or lowered later.

    Attributes:

        spent (int): Rows paid for (committed).
        reserved (int): Rows reserved by calls still in flight.

    Examples::

        >>> budget = QueryBudget(10)
        >>> with budget.reserve(4) as reservation:
        ...     reservation.commit(3)  # 3 answered; the 4th is released on exit
        >>> budget.spent, budget.reserved
        (3, 0)
    """

    def __init__(self, max_queries: int | None = None) -> None:
        self.lock = threading.Lock()
        self.max_queries = max_queries
        self.spent = 0
        self.reserved = 0

    @property
    def max_queries(self) -> int | None:
        r"""The cap (None: no cap)."""
        return self._max_queries

    @max_queries.setter
    def max_queries(self, value: int | None) -> None:
        check_count("max_queries", value, allow_none=True, minimum=0)
        with self.lock:
            self._max_queries = value

    def reserve(self, rows: int) -> Reservation:
        r"""Reserves ``rows`` new rows, or raises :class:`QueryBudgetExceeded`
        (reserving nothing) if they would take spent and reserved rows past the
        cap. Use the result as a context manager: on exit it releases what was
        neither committed nor released."""
        with self.lock:
            cap = self._max_queries
            used = self.spent + self.reserved
            if rows and cap is not None and used + rows > cap:
                in_flight = (
                    f" ({self.reserved} of them reserved by calls still in flight)"
                    if self.reserved
                    else ""
                )
                raise QueryBudgetExceeded(
                    f"this call needs {rows} new queries but {used} of "
                    f"max_queries={cap} are spent{in_flight}, so only "
                    f"{max(cap - used, 0)} more fit; nothing of this call was "
                    "sent. Raise max_queries (answered rows stay cached and are "
                    "not paid again) or lower the attribution's cost (see "
                    "captum_lr.estimate_queries)."
                )
            self.reserved += rows
        return Reservation(self, rows)

    def settle(self, rows: int, paid: bool) -> None:
        r"""
        Ends the reservation of ``rows`` reserved rows: counts them as spent
        (``paid``) or gives them back (what :class:`Reservation` calls).

        Args:

            rows (int): Rows reserved before.
            paid (bool): Whether the function answered them.
        """
        with self.lock:
            self.reserved -= rows
            if paid:
                self.spent += rows


class Reservation:
    r"""Rows reserved by one call: :meth:`commit` the rows the function answered,
    :meth:`release` those it did not (thread-safe; leaving the ``with`` block
    releases the rest)."""

    def __init__(self, budget: QueryBudget, rows: int) -> None:
        self.budget = budget
        self.left = rows
        self.lock = threading.Lock()

    def _take(self, rows: int | None) -> int:
        with self.lock:
            rows = self.left if rows is None else rows
            if rows > self.left:
                raise RuntimeError(
                    f"settling {rows} rows but only {self.left} are still reserved."
                )
            self.left -= rows
        return rows

    def commit(self, rows: int) -> None:
        r"""Counts ``rows`` reserved rows as paid."""
        self.budget.settle(self._take(rows), paid=True)

    def release(self, rows: int | None = None) -> None:
        r"""Gives ``rows`` reserved rows (None: all that are left) back."""
        self.budget.settle(self._take(rows), paid=False)

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()
