r"""The Parquet output of a dataset job: one part file per finished batch of
examples, a manifest naming the job, and readers for both.

Each row of a part file is one example: its ``id``, the attribution as raw
bytes with its ``shape`` and ``dtype`` (an explainer that returns several
tensors, a list of layers or a tuple-valued layer, stores them one after the
other with their nesting in ``structure``), the forward ``rows`` it spent, its
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
    ("structure", "string"),
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


Nested = Tensor | tuple[Any, ...] | list[Any]
r"""One example's attribution: a tensor, or a tuple or list of them (nested
as the explainer returned them: a list of layers of tuple-valued layers)."""


@dataclass
class ExampleResult:
    r"""What one example produced (a row of a part file)."""

    id: Any
    attribution: Nested
    rows: int
    stderr: Nested | None = None
    delta: float | None = None
    seconds: float = 0.0
    worker: str = ""


def _dtype_name(t: Tensor) -> str:
    return str(t.dtype).replace("torch.", "")


def _leaves(value: Nested) -> list[Tensor]:
    if isinstance(value, Tensor):
        return [value.detach().cpu().contiguous()]
    return [leaf for item in value for leaf in _leaves(item)]


def _structure(value: Nested) -> Any:
    """The nesting of ``value`` with each tensor's shape and dtype (JSON)."""
    if isinstance(value, Tensor):
        return {"shape": list(value.shape), "dtype": _dtype_name(value)}
    kind = "list" if isinstance(value, list) else "tuple"
    return {kind: [_structure(item) for item in value]}


def _bytes(value: Nested, like: list[Tensor]) -> bytes:
    """The leaves of ``value`` as raw bytes, each in the dtype of ``like``."""
    leaves = _leaves(value)
    return b"".join(t.to(ref.dtype).numpy().tobytes() for t, ref in zip(leaves, like))


def _record(r: ExampleResult) -> dict[str, Any]:
    leaves = _leaves(r.attribution)
    nested = not isinstance(r.attribution, Tensor)
    first = leaves[0]
    return {
        "id": str(r.id),
        "id_is_int": isinstance(r.id, (int, np.integer)),
        "attribution": _bytes(r.attribution, leaves),
        "shape": list(first.shape),
        "dtype": _dtype_name(first),
        "rows": int(r.rows),
        "stderr": None if r.stderr is None else _bytes(r.stderr, leaves),
        "delta": None if r.delta is None else float(r.delta),
        "seconds": float(r.seconds),
        "worker": r.worker,
        "structure": json.dumps(_structure(r.attribution)) if nested else None,
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


def _tensor(buf: bytes, shape: list[int], dtype: str, offset: int = 0) -> Tensor:
    np_dtype = torch.empty(0, dtype=getattr(torch, dtype)).numpy().dtype
    count = int(np.prod(shape, dtype=np.int64))
    arr = np.frombuffer(buf, dtype=np_dtype, count=count, offset=offset)
    return torch.from_numpy(arr.reshape(shape).copy())


def _rebuild(buf: bytes, structure: Any, offset: int = 0) -> tuple[Nested, int]:
    """The nested tensors of ``structure`` read from ``buf`` at ``offset``,
    and the offset after them."""
    if "shape" in structure:
        t = _tensor(buf, structure["shape"], structure["dtype"], offset)
        return t, offset + t.numel() * t.element_size()
    kind = "list" if "list" in structure else "tuple"
    items = []
    for item in structure[kind]:
        value, offset = _rebuild(buf, item, offset)
        items.append(value)
    return (items if kind == "list" else tuple(items)), offset


def _decode(buf: bytes, r: dict[str, Any]) -> Nested:
    if r.get("structure"):
        return _rebuild(buf, json.loads(r["structure"]))[0]
    return _tensor(buf, r["shape"], r["dtype"])


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
        example, without the batch dimension); a tuple or list of them,
        nested as the explainer returned them, for a list of layers or a
        tuple-valued layer.

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
            a = _decode(r["attribution"], r)
            key = _id_of(r["id"], r["id_is_int"])
            if with_stderr:
                se = r["stderr"]
                se = None if se is None else _decode(se, r)
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
