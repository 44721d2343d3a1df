r"""The answers :class:`~captum_lr.remote.blackbox.BlackBox` has paid for, by
row key: in memory, optionally persisted to SQLite in a directory."""

from __future__ import annotations

import os
import pickle
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any


class AnswerCache:
    r"""
    Raw answers by row key (thread-safe).

    Args:

        spec (None, str, PathLike or False): None or ``"memory"``: in memory for
                    the object's life. A directory: also in a SQLite file there,
                    across processes (values are pickled: only use a directory
                    you trust). False: keep nothing.

    Attributes:

        hits (int): Rows answered without sending them (see :meth:`count_hits`).
    """

    FILENAME = "blackbox-cache.sqlite"

    def __init__(self, spec: Any = None) -> None:
        self.enabled = spec is not False
        self.memory: dict[bytes, Any] = {}
        self.lock = threading.Lock()
        self.db: sqlite3.Connection | None = None
        self.path: Path | None = None
        self.hits = 0
        if spec is None or spec is False or spec == "memory":
            return
        if not isinstance(spec, (str, os.PathLike)):
            raise TypeError(
                f"cache must be None, 'memory', False or a directory path, not "
                f"{spec!r}."
            )
        self.path = Path(spec)
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(
                f"cache={str(spec)!r} exists and is not a directory; pass a "
                "directory (it is created if missing)."
            )
        self.path.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(
            str(self.path / self.FILENAME), check_same_thread=False
        )
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS answers (key BLOB PRIMARY KEY, value BLOB)"
        )
        self.db.commit()

    def count_hits(self, rows: int) -> None:
        r"""Adds ``rows`` to :attr:`hits`."""
        with self.lock:
            self.hits += rows

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, Any]:
        r"""The cached answers among ``keys`` (missing keys are left out)."""
        if not self.enabled:
            return {}
        found: dict[bytes, Any] = {}
        with self.lock:
            missing = []
            for k in keys:
                if k in self.memory:
                    found[k] = self.memory[k]
                else:
                    missing.append(k)
            if self.db is not None and missing:
                found.update(self._load(missing))
        return found

    def _load(self, keys: list[bytes]) -> dict[bytes, Any]:
        found = {}
        for start in range(0, len(keys), 500):
            part = keys[start : start + 500]
            marks = ",".join("?" * len(part))
            rows = self.db.execute(
                f"SELECT key, value FROM answers WHERE key IN ({marks})", part
            ).fetchall()
            for k, v in rows:
                found[bytes(k)] = self.memory[bytes(k)] = pickle.loads(v)
        return found

    def put_many(self, keys: Sequence[bytes], values: Sequence[Any]) -> None:
        r"""Stores one answer per key (written to disk before returning)."""
        if not self.enabled:
            return
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
        r"""Closes the SQLite file (what was written stays on disk)."""
        with self.lock:
            if self.db is not None:
                self.db.close()
                self.db = None
