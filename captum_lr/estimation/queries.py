r"""Batched forward queries: the only place that calls the user's forward function.

:class:`QueryRunner` sends perturbed rows to the forward function in calls of at
most ``max_batch_size`` rows, selects each row's target output the way Captum
does, expands ``additional_forward_args`` to the rows it sends, and checks
what comes back. A forward function that can have several calls in flight
(:class:`AsyncForward`, e.g. :class:`~captum_lr.scale.RayForward`) gets its
calls through ``submit``, so that the query loop can build the next chunk
while earlier ones are evaluated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import torch
from captum._utils.common import _select_targets
from captum._utils.typing import TargetType
from torch import Tensor

from captum_lr.estimation.layout import InputLayout

MULTIPLE_OUTPUTS_MESSAGE = (
    "Target not provided when necessary, cannot take gradient with respect to "
    "multiple outputs."
)


def normalise_target(target: TargetType, batch_size: int) -> TargetType:
    r"""
    Checks ``target`` against the batch and turns scalar tensors into ints.

    Args:

        target (int, tuple, Tensor or list, optional): A Captum-style target.
        batch_size (int): The rows of the inputs.

    Returns:
        The target, with a one-element tensor as an int; a ``ValueError`` or
        ``TypeError`` where it does not fit the batch.
    """
    if target is None or isinstance(target, (int, tuple)):
        return target
    if isinstance(target, Tensor):
        if target.numel() == 1:
            return int(target.item())
        if target.dim() == 1 and target.numel() == batch_size:
            if target.dtype.is_floating_point:
                raise ValueError(
                    f"target has dtype {target.dtype}; class indices must be "
                    "integers (use target.long())."
                )
            return target
        raise ValueError(
            f"target has shape {tuple(target.shape)}; a tensor target must be a "
            f"scalar or 1-D with one index per input row ({batch_size})."
        )
    if isinstance(target, list):
        if len(target) != batch_size:
            raise ValueError(
                f"target is a list of length {len(target)} but the inputs have "
                f"{batch_size} rows; give one target per row."
            )
        return target
    raise TypeError(
        f"target has type {type(target).__name__}; use None, an int, a tuple, a "
        "tensor or a list, as in Captum."
    )


def _describe(target: Any) -> str:
    if isinstance(target, Tensor):
        return f"tensor of shape {tuple(target.shape)} (max {int(target.max())})"
    if isinstance(target, list) and len(target) > 4:
        return f"list {target[:4]}..."
    return repr(target)


def rows_of(value: Any, batch_size: int, rows: Tensor) -> Any:
    r"""
    Selects ``rows`` of a per-row target or forward argument (a host copy of
    ``rows`` only for lists, and for tensors on another device).

    Args:

        value (Any): A target or forward argument; a tensor or list with
                    ``batch_size`` entries is per row, anything else is the
                    same for every row.
        batch_size (int): The rows of the inputs.
        rows (Tensor): The indices of the rows to select.

    Returns:
        The selected rows of a per-row ``value``, else ``value`` itself.
    """
    if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == batch_size:
        return value.index_select(0, rows.to(value.device))
    if isinstance(value, list) and len(value) == batch_size:
        return [value[i] for i in rows.tolist()]
    return value


LABEL_OUTPUT_MESSAGE = (
    "the forward function returned {dtype} outputs; an attribution of integer "
    "or boolean outputs (class indices from argmax or a classifier's predict, "
    "hard labels) is a map of the label's number, not of a score. Return "
    "scores (logits or probabilities, e.g. predict_proba), or for a model "
    "that only gives labels wrap it as "
    "BlackBox(predict, output=captum_lr.remote.outputs.LabelIndicator("
    "num_classes)), which turns each label into a one-hot row so that "
    "target= selects one class's indicator (use a large sigma)."
)


class Pending(Protocol):
    """A forward call on its way (as ``concurrent.futures.Future``)."""

    def result(self) -> Any:
        """Waits for the call and returns its output (or raises its error)."""
        ...


@runtime_checkable
class AsyncForward(Protocol):
    r"""
    A forward function that can have several calls in flight.

    ``submit(*args)`` starts the call ``forward(*args)`` and returns at once,
    with a :class:`Pending` whose ``result()`` is the call's output. The
    query loop keeps up to ``max_in_flight`` calls submitted, waiting for
    them in order, and waits for all of them wherever the design or the noise
    scale adapts; the results are those of calling the function in turn.
    """

    max_in_flight: int

    def __call__(self, *args: Any) -> Any: ...

    def submit(self, *args: Any) -> Pending: ...


class PendingScores:
    r"""
    The scores of rows sent with :meth:`QueryRunner.submit`; ``result()``
    waits for their forward calls (checking each output) and returns one
    score per row, in order.

    Args:

        parts (list[Callable[[], Tensor]]): Per forward call, a function that
                    waits for it and returns its rows' scores.
    """

    def __init__(self, parts: list[Callable[[], Tensor]]) -> None:
        self.parts = parts

    def result(self) -> Tensor:
        r"""Returns the ``(m,)`` scores of the rows."""
        scores = [part() for part in self.parts]
        return torch.cat(scores) if len(scores) > 1 else scores[0]


class CountingForward:
    r"""
    A forward function that counts the rows it is called with.

    The LR attribution classes wrap their ``forward_func`` in it, so that the
    rows Captum sends directly (convergence delta, baselines) are counted with
    the estimator's; the estimator calls the wrapped function itself and counts
    its own rows once.

    Args:

        forward_fn (Callable): The forward function.
        on_rows (Callable[[int], None]): Called with the rows of each call.
    """

    def __init__(
        self, forward_fn: Callable[..., Any], on_rows: Callable[[int], None]
    ) -> None:
        self.forward_fn = forward_fn
        self.on_rows = on_rows

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if args and isinstance(args[0], Tensor) and args[0].dim() > 0:
            self.on_rows(args[0].shape[0])
        return self.forward_fn(*args, **kwargs)


class QueryRunner:
    r"""Evaluates the selected output of ``forward_fn`` on rows of perturbed inputs.

    Args:

        forward_fn (Callable): The model's forward function.
        layout (InputLayout): How flat rows map to the input tensors.
        input_dtypes (list[torch.dtype]): The dtypes the forward function gets.
        target (TargetType): Captum-style target for the original rows.
        additional_forward_args (Any): Captum-style extra arguments for the
                    original rows; tensors whose first dimension is the batch
                    size are expanded to the perturbed rows, others pass as is.
        max_batch_size (int): The most rows sent in one call.
        on_rows (Callable[[int], None]): Called with the number of rows of each
                    forward call, before the call (the query counter).

    Attributes:

        max_in_flight (int): The most calls the forward function may have
                    in flight (1 unless it is an :class:`AsyncForward`).
    """

    def __init__(
        self,
        forward_fn: Callable[..., Any],
        layout: InputLayout,
        input_dtypes: list[torch.dtype],
        target: TargetType,
        additional_forward_args: Any,
        max_batch_size: int,
        on_rows: Callable[[int], None],
    ) -> None:
        while isinstance(forward_fn, CountingForward):
            forward_fn = forward_fn.forward_fn
        self.forward_fn = forward_fn
        self.layout = layout
        self.input_dtypes = input_dtypes
        self.batch_size = layout.batch_size
        self.target = normalise_target(target, layout.batch_size)
        if additional_forward_args is None:
            args: tuple[Any, ...] = ()
        elif isinstance(additional_forward_args, tuple):
            args = additional_forward_args
        else:
            args = (additional_forward_args,)
        for j, a in enumerate(args):
            if (
                isinstance(a, Tensor)
                and a.dim() > 0
                and a.shape[0] != layout.batch_size
            ):
                raise ValueError(
                    f"additional_forward_args[{j}] is a tensor with "
                    f"{a.shape[0]} rows but the inputs have {layout.batch_size}; "
                    "Captum expands tensor arguments along their first dimension, "
                    "so it must match the batch (pass other data as a non-tensor)."
                )
        self.args = args
        self.max_batch_size = max_batch_size
        self.on_rows = on_rows
        self.asynchronous = isinstance(forward_fn, AsyncForward)
        self.max_in_flight = (
            max(1, int(forward_fn.max_in_flight)) if self.asynchronous else 1
        )
        self.bad = torch.zeros((), dtype=torch.long, device=layout.device)
        self.output_eps = 0.0
        r"""The largest machine epsilon of the outputs seen so far."""

    def __call__(self, flat: Tensor, rows: Tensor) -> Tensor:
        r"""Returns one score per row of ``flat`` (shape ``(m,)``).

        Args:

            flat (Tensor): ``(m, d)`` perturbed rows.
            rows (Tensor): ``(m,)`` long tensor, the original row of each (on
                        the inputs' device).
        """
        return self.submit(flat, rows).result()

    def submit(self, flat: Tensor, rows: Tensor) -> PendingScores:
        r"""
        Sends the rows of ``flat`` to the forward function and returns their
        scores on their way: at once for an :class:`AsyncForward`, after the
        forward calls for other functions. Arguments as for ``__call__``.
        """
        parts = []
        for start in range(0, flat.shape[0], self.max_batch_size):
            stop = min(start + self.max_batch_size, flat.shape[0])
            parts.append(self._send(flat[start:stop], rows[start:stop]))
        return PendingScores(parts)

    def _send(self, flat: Tensor, rows: Tensor) -> Callable[[], Tensor]:
        """Starts one forward call; returns a function that waits for it and
        returns its ``(m,)`` scores."""
        m = flat.shape[0]
        inputs = self.layout.split(flat, self.input_dtypes)
        args = tuple(rows_of(a, self.batch_size, rows) for a in self.args)
        target = rows_of(self.target, self.batch_size, rows)
        self.on_rows(m)
        with torch.no_grad():
            if self.asynchronous:
                pending = self.forward_fn.submit(*inputs, *args)
                return lambda: self._wait(pending, m, target)
            score = self._score(self.forward_fn(*inputs, *args), m, target)
        return lambda: score

    @torch.no_grad()
    def _wait(self, pending: Pending, m: int, target: Any) -> Tensor:
        """Waits for an asynchronous call and returns its ``(m,)`` scores."""
        return self._score(pending.result(), m, target)

    def _score(self, out: Any, m: int, target: Any) -> Tensor:
        """Checks one call's output and selects its ``(m,)`` scores."""
        if not isinstance(out, Tensor):
            try:
                out = torch.as_tensor(out)
            except (TypeError, ValueError, RuntimeError) as exc:
                raise TypeError(
                    f"the forward function returned a {type(out).__name__}; it "
                    "must return a tensor (wrap other functions in "
                    "captum_lr.BlackBox)."
                ) from exc
        if out.dim() == 0 or out.shape[0] != m:
            got = "a scalar" if out.dim() == 0 else f"{out.shape[0]} rows"
            raise ValueError(
                f"the forward function returned {got} for a batch of {m} rows; "
                "it must return one output row per input row."
            )
        if not (out.dtype.is_floating_point or out.dtype.is_complex):
            raise TypeError(LABEL_OUTPUT_MESSAGE.format(dtype=out.dtype))
        self.output_eps = max(self.output_eps, torch.finfo(out.dtype).eps)
        try:
            selected = _select_targets(out, target)
        except (IndexError, RuntimeError) as exc:
            raise ValueError(
                f"target {_describe(target)} does not index the forward output of "
                f"shape {tuple(out.shape)} (one row per input row); pick class "
                "indices within the output's width."
            ) from exc
        selected = selected.reshape(m, -1)
        assert selected.shape[1] == 1, MULTIPLE_OUTPUTS_MESSAGE
        score = selected[:, 0].to(self.layout.device, self.layout.dtype)
        self.bad += (~torch.isfinite(score)).sum()
        return score

    def check_finite(
        self,
        advice: str = "check the model on noisy inputs, or lower sigma so the "
        "perturbed inputs stay in its valid range",
    ) -> None:
        r"""Raises if any forward output so far was NaN or infinite.

        Args:

            advice (str, optional): What the error tells the user to do.
                        Default: check the model on noisy inputs or lower sigma
        """
        n_bad = int(self.bad.item())
        if n_bad:
            raise ValueError(
                f"the forward function returned NaN or Inf for {n_bad} queried "
                f"rows; {advice}."
            )
