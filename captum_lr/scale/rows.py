r"""A dataset job's input rows: any supported dataset turned into a Ray Dataset
with the columns ``id``, ``input`` and ``target`` (null where a row has none),
and the checks made before any query (ids, shapes)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor


@dataclass
class JobRows:
    r"""The rows of a job: ``dataset`` (a Ray Dataset), their ids in order,
    and the input shape of one row."""

    dataset: Any
    ids: list[Any]
    shape: tuple[int, ...]
    items: list[dict[str, Any]] | None = None  # rows built on the driver

    def only(self, todo: set[Any], batch_size: int) -> Any:
        r"""The Ray Dataset restricted to the ids in ``todo``, in blocks of
        ``batch_size`` rows (a block goes to one worker: one block per batch
        spreads the examples over the pool)."""
        import ray.data

        if self.items is not None:
            items = [r for r in self.items if r["id"] in todo]
            blocks = -(-len(items) // batch_size)
            return ray.data.from_items(items, override_num_blocks=blocks)
        keep = sorted(todo, key=str)
        kept = self.dataset.map_batches(
            _keep_ids, fn_args=(keep,), batch_format="numpy", zero_copy_batch=True
        )
        return kept.repartition(target_num_rows_per_block=batch_size)


def _keep_ids(batch: dict[str, np.ndarray], keep: list[Any]) -> dict[str, np.ndarray]:
    wanted = set(keep)
    mask = np.array([_plain_id(i) in wanted for i in batch["id"]], dtype=bool)
    return {k: v[mask] for k, v in batch.items()}


def _plain_id(value: Any) -> Any:
    """An id as a Python int or str (NumPy scalars and 0-dim tensors unwrapped)."""
    if isinstance(value, Tensor):
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(
            f"a dataset id must be an int or a str, not {type(value).__name__} "
            f"({value!r})."
        )
    return value


def _plain_target(value: Any, rid: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(
                f"dataset row id={rid!r} has a target of shape "
                f"{tuple(value.shape)}; give one int class index per row."
            )
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"dataset row id={rid!r} has target {value!r}; give an int class "
            "index (or no target, and target= in attribute_kwargs)."
        )
    return value


def _as_array(x: Any, rid: Any) -> np.ndarray:
    if isinstance(x, (tuple, list)) and x and isinstance(x[0], Tensor):
        raise TypeError(
            f"dataset row id={rid!r} has a tuple of input tensors; "
            "attribute_dataset explains one input tensor per example."
        )
    if isinstance(x, Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(
            f"dataset row id={rid!r} has input dtype {arr.dtype}; the estimator "
            "needs floating-point inputs (pass .float())."
        )
    return arr


def _iter_rows(dataset: Any) -> Iterator[tuple[Any, Any, Any]]:
    """(id, input, target) from a torch Dataset, a DataLoader or an iterable."""
    if isinstance(dataset, torch.utils.data.DataLoader):
        i = 0
        for batch in dataset:
            xs, ys = (
                (batch[0], batch[1])
                if isinstance(batch, (tuple, list))
                else (
                    batch,
                    None,
                )
            )
            for j in range(len(xs)):
                yield i, xs[j], None if ys is None else ys[j]
                i += 1
        return
    if isinstance(dataset, torch.utils.data.Dataset) and hasattr(dataset, "__len__"):
        for i in range(len(dataset)):
            item = dataset[i]
            if isinstance(item, (tuple, list)):
                yield i, item[0], item[1] if len(item) > 1 else None
            else:
                yield i, item, None
        return
    for item in dataset:
        if isinstance(item, dict):
            yield item["id"], item["input"], item.get("target")
        elif isinstance(item, (tuple, list)) and len(item) in (2, 3):
            yield item[0], item[1], item[2] if len(item) == 3 else None
        else:
            raise TypeError(
                "an iterable dataset yields (id, input) or (id, input, target) "
                f"rows (or dicts with those keys), not {type(item).__name__}."
            )


def _shape_error(rid: Any, shape: tuple, first: Any, want: tuple, given: bool) -> str:
    origin = "input_shape" if given else f"the first row (id={first!r})"
    return (
        f"dataset row id={rid!r} has input shape {shape} but {origin} has "
        f"{want}: every example is one input row of the same shape (without "
        "the batch dimension). Fix or drop that row (nothing was run)."
    )


def _check_rows(
    described: Iterable[tuple[Any, tuple[int, ...]]], input_shape: Any
) -> tuple[list[Any], tuple[int, ...]]:
    """Ids in order and the common shape; raises on duplicates or a row of
    another shape."""
    ids: list[Any] = []
    seen: set[Any] = set()
    want = None if input_shape in (None, "first") else tuple(input_shape)
    first = None
    for rid, shape in described:
        if rid in seen:
            raise ValueError(
                f"dataset id {rid!r} occurs twice: ids must be unique (they "
                "key the output and resume)."
            )
        seen.add(rid)
        ids.append(rid)
        if want is None:
            want, first = shape, rid
        elif shape != want:
            raise ValueError(
                _shape_error(rid, shape, first, want, input_shape != "first")
            )
    if not ids:
        raise ValueError("the dataset is empty: nothing to explain.")
    return ids, tuple(want)


def _describe(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    xs = batch["input"]
    shapes = [",".join(map(str, np.asarray(x).shape)) for x in xs]
    return {"id": batch["id"], "shape": np.array(shapes, dtype=object)}


def job_rows(dataset: Any, input_shape: Any = "first") -> JobRows:
    r"""Turns ``dataset`` (a Ray Dataset with columns ``id``, ``input`` and
    optionally ``target``; a torch ``Dataset`` or ``DataLoader`` of ``x`` or
    ``(x, target)`` items, ids being their positions; or an iterable of
    ``(id, input[, target])`` rows) into :class:`JobRows`, after checking every
    row's id and shape."""
    import ray.data

    if isinstance(dataset, ray.data.Dataset):
        columns = set(dataset.columns())
        if not {"id", "input"} <= columns:
            raise ValueError(
                "a Ray Dataset for attribute_dataset needs the columns 'id' and "
                f"'input' (and optionally 'target'); it has {sorted(columns)}."
            )
        described = dataset.map_batches(_describe, batch_format="numpy").take_all()
        pairs = (
            (_plain_id(r["id"]), tuple(int(s) for s in r["shape"].split(",") if s))
            for r in described
        )
        ids, shape = _check_rows(pairs, input_shape)
        return JobRows(dataset, ids, shape)
    items = []
    for rid, x, target in _iter_rows(dataset):
        rid = _plain_id(rid)
        x, target = _as_array(x, rid), _plain_target(target, rid)
        items.append({"id": rid, "input": x, "target": target})
    ids, shape = _check_rows(((r["id"], r["input"].shape) for r in items), input_shape)
    return JobRows(None, ids, shape, items)
