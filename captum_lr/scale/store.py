r"""The Parquet output of a dataset job: one part file per finished batch of
examples, a manifest naming the job, and readers for both.

Each row of a part file is one example: its ``id``, the attribution as raw
bytes with its ``shape`` and ``dtype``, the forward ``rows`` it spent, its
standard error (same layout, or null) and convergence delta (or null), the
seconds it took and the worker that computed it. A part file is written to a
temporary name and renamed, so a file either holds whole rows or does not
exist; its name is a digest of the ids in it, so a batch that Ray retries
rewrites the same file instead of adding a second copy.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

MANIFEST = "_job.json"
PART_GLOB = "part-*.parquet"

SCHEMA_FIELDS = (
    ("id", "string"),
    ("id_is_int", "bool"),
    ("attribution", "binary"),
    ("shape", "list<int64>"),
    ("dtype", "string"),
    ("rows", "int64"),
    ("stderr", "binary"),
    ("delta", "float64"),
    ("seconds", "float64"),
    ("worker", "string"),
)


def _pa() -> Any:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover
        raise ImportError(
            "captum_lr.scale writes Parquet with pyarrow: pip install "
            "'captum-lr[scale]'."
        ) from exc
    return pa, pq


def schema() -> Any:
    r"""The pyarrow schema of a part file."""
    pa, _ = _pa()
    types = {
        "string": pa.string(),
        "bool": pa.bool_(),
        "binary": pa.binary(),
        "list<int64>": pa.list_(pa.int64()),
        "int64": pa.int64(),
        "float64": pa.float64(),
    }
    return pa.schema([(name, types[kind]) for name, kind in SCHEMA_FIELDS])


@dataclass
class ExampleResult:
    r"""What one example produced (a row of a part file)."""

    id: Any
    attribution: Tensor
    rows: int
    stderr: Tensor | None = None
    delta: float | None = None
    seconds: float = 0.0
    worker: str = ""


def _dtype_name(t: Tensor) -> str:
    return str(t.dtype).replace("torch.", "")


def _record(r: ExampleResult) -> dict[str, Any]:
    a = r.attribution.detach().cpu().contiguous()
    se = None
    if r.stderr is not None:
        se = r.stderr.detach().cpu().to(a.dtype).contiguous().numpy().tobytes()
    return {
        "id": str(r.id),
        "id_is_int": isinstance(r.id, (int, np.integer)),
        "attribution": a.numpy().tobytes(),
        "shape": list(a.shape),
        "dtype": _dtype_name(a),
        "rows": int(r.rows),
        "stderr": se,
        "delta": None if r.delta is None else float(r.delta),
        "seconds": float(r.seconds),
        "worker": r.worker,
    }


def part_name(ids: Sequence[Any]) -> str:
    r"""The file name for a batch of ids: a digest of them (the same batch
    retried by Ray maps to the same file)."""
    digest = hashlib.sha1("\x1f".join(str(i) for i in ids).encode()).hexdigest()
    return f"part-{digest[:20]}.parquet"


def write_part(output: str | os.PathLike, results: Sequence[ExampleResult]) -> Path:
    r"""Writes ``results`` as one part file under ``output`` (atomically: a
    temporary file renamed into place) and returns its path."""
    pa, pq = _pa()
    out = Path(output)
    records = [_record(r) for r in results]
    table = pa.Table.from_pylist(records, schema=schema())
    path = out / part_name([r.id for r in results])
    tmp = out / f".{path.name}.{os.getpid()}.tmp"
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


def part_files(output: str | os.PathLike) -> list[Path]:
    r"""The part files under ``output``, in name order."""
    out = Path(output)
    return sorted(out.glob(PART_GLOB)) if out.is_dir() else []


def _id_of(value: str, is_int: bool) -> Any:
    return int(value) if is_int else value


def written_ids(output: str | os.PathLike) -> set[Any]:
    r"""The ids already written under ``output`` (reads only the id columns)."""
    _, pq = _pa()
    done: set[Any] = set()
    for path in part_files(output):
        t = pq.read_table(path, columns=["id", "id_is_int"])
        done.update(
            _id_of(i, b)
            for i, b in zip(t.column("id").to_pylist(), t.column("id_is_int"))
        )
    return done


def _tensor(buf: bytes, shape: list[int], dtype: str) -> Tensor:
    np_dtype = torch.empty(0, dtype=getattr(torch, dtype)).numpy().dtype
    arr = np.frombuffer(buf, dtype=np_dtype).reshape(shape).copy()
    return torch.from_numpy(arr)


def load_attributions(
    output: str | os.PathLike, with_stderr: bool = False
) -> dict[Any, Any]:
    r"""
    Reads a dataset job's output: each example's attribution by id.

    Args:

        output (str or PathLike): The ``output`` directory of
                    :func:`~captum_lr.scale.attribute_dataset`.
        with_stderr (bool, optional): Map each id to ``(attribution, stderr)``
                    (stderr None where the job did not compute it) instead.
                    Default: False

    Returns:
        *dict*: id (int or str, as given to the job) -> attribution tensor
        (CPU, with the shape and dtype the explainer returned for one
        example, without the batch dimension).

    Examples::

        >>> attributions = load_attributions("attr-out")
        >>> attributions[17].shape
        torch.Size([3, 32, 32])
    """
    _, pq = _pa()
    if not Path(output).is_dir():
        raise FileNotFoundError(f"{str(output)!r} is not a job's output directory.")
    found: dict[Any, Any] = {}
    for path in part_files(output):
        for r in pq.read_table(path).to_pylist():
            a = _tensor(r["attribution"], r["shape"], r["dtype"])
            key = _id_of(r["id"], r["id_is_int"])
            if with_stderr:
                se = r["stderr"]
                se = None if se is None else _tensor(se, r["shape"], r["dtype"])
                found[key] = (a, se)
            else:
                found[key] = a
    return found


def read_table(output: str | os.PathLike) -> Any:
    r"""Every written row as one pyarrow Table (for the counters: ``rows``,
    ``seconds``, ``delta``; ids as stored, strings)."""
    pa, pq = _pa()
    tables = [pq.read_table(p) for p in part_files(output)]
    return pa.concat_tables(tables) if tables else schema().empty_table()


def check_manifest(output: str | os.PathLike, job: dict[str, Any]) -> bool:
    r"""Checks that ``output`` is empty or holds results of the same ``job``
    (the manifest written by :func:`write_manifest`); raises a ``ValueError``
    naming both jobs otherwise. Returns whether results are already there."""
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output={str(output)!r} exists and is not a directory.")
    parts = part_files(out)
    path = out / MANIFEST
    if not path.exists():
        if parts:
            raise ValueError(
                f"output={str(output)!r} holds {len(parts)} part files but no "
                f"{MANIFEST}: not a captum_lr.scale job's output; pass a new "
                "directory."
            )
        return False
    theirs = json.loads(path.read_text())
    diff = sorted(k for k in set(job) | set(theirs) if job.get(k) != theirs.get(k))
    if diff:
        shown = "; ".join(
            f"{k}: theirs {theirs.get(k)!r}, this job {job.get(k)!r}" for k in diff
        )
        raise ValueError(
            f"output={str(output)!r} holds the results of another job ({shown}). "
            "Pass a new output directory (or delete that one); nothing was run."
        )
    return bool(parts)


def write_manifest(output: str | os.PathLike, job: dict[str, Any]) -> None:
    r"""Creates ``output`` and writes the job's manifest into it."""
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(job, indent=1, sort_keys=True))
    os.replace(tmp, out / MANIFEST)


def clear_parts(output: str | os.PathLike) -> int:
    r"""Removes the part files of ``output`` (a ``resume=False`` re-run of the
    same job); returns how many."""
    parts = part_files(output)
    for p in parts:
        p.unlink()
    return len(parts)
