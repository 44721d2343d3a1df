r"""A neuron selector applied to a batch of layer outputs: one value per row.

Captum's ``neuron_selector`` is an index, a tuple of indices and slices, or a
callable of the layer's output. Captum accepts a callable that returns one
value for the whole batch (its docs: "the sum of the neurons in the layer"):
autograd then differentiates that value with respect to each example. The
estimator needs one value per perturbed row instead, so such a selector is
applied to each row as a batch of one, after checking on the first batch
that its value is the sum of the rows' values (any other aggregate over the
batch, a mean or a max, would give a different gradient per example; the
check reads the values on the host, so it runs once, not per chunk).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from captum._utils.common import _verify_select_neuron
from torch import Tensor

NeuronSelector = int | tuple[Any, ...] | Callable[..., Any]


def select_neurons(
    layer_out: tuple[Tensor, ...], selector: NeuronSelector, check: bool = True
) -> Tensor:
    r"""
    The selected neuron (or aggregate) of each row of ``layer_out``.

    Args:

        layer_out (tuple[Tensor, ...]): The layer's output tensors, rows first.
        selector (int, tuple or Callable): Captum's ``neuron_selector``.
        check (bool, optional): Check that a batch-level selector's value is
                    the sum of its per-row values.
                    Default: True

    Returns:
        *Tensor*: shape ``(rows,)``.
    """
    value = _verify_select_neuron(layer_out, selector)
    rows = layer_out[0].shape[0]
    if not isinstance(value, Tensor):
        raise ValueError(
            "neuron_selector must give one value per example (a tensor of "
            f"shape ({rows},)), not {type(value).__name__}."
        )
    if value.numel() == 1 and rows > 1 and callable(selector):
        return _per_row(layer_out, selector, value.reshape(()), check)
    if value.numel() != rows:
        raise ValueError(
            f"neuron_selector gave shape {tuple(value.shape)} for {rows} "
            "examples; a callable selector must return one value per example "
            "(sum or select the neurons it aggregates)."
        )
    return value.reshape(rows)


def _per_row(
    layer_out: tuple[Tensor, ...],
    selector: Callable[..., Any],
    whole: Tensor,
    check: bool,
) -> Tensor:
    """A batch-level selector applied to each row as a batch of one (vmapped
    where the selector allows it), checked to add up to its batch value."""
    single = len(layer_out) == 1

    def one(*ys: Tensor) -> Tensor:
        batch = tuple(y.unsqueeze(0) for y in ys)
        return torch.as_tensor(selector(batch[0] if single else batch)).reshape(())

    try:
        per = torch.func.vmap(one)(*layer_out)
    except Exception:  # data-dependent selectors: one row at a time
        rows = layer_out[0].shape[0]
        per = torch.stack([one(*(y[i] for y in layer_out)) for i in range(rows)])
    if not check:
        return per.to(whole.dtype)
    total = per.sum()
    scale = per.abs().sum() + whole.abs()
    tol = 1e-3 * float(scale) + 1e-6
    if not bool(torch.isfinite(total)) or abs(float(total - whole)) > tol:
        raise ValueError(
            f"neuron_selector returned one value for a batch of "
            f"{layer_out[0].shape[0]} rows ({float(whole):.6g}) that is not the "
            f"sum of its values on each row ({float(total):.6g}): the estimator "
            "needs each example's own value. Return one value per example (a "
            "tensor of shape (batch,), e.g. x.flatten(1).sum(1)), or a sum over "
            "the batch such as torch.sum(x)."
        )
    return per.to(whole.dtype)
