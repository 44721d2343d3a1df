r"""Baselines: a blurred copy of images (:func:`blur_baseline`), and the
checks that turn Captum-style ``baselines`` arguments into one tensor per
input (:func:`expand_baselines`)."""

from __future__ import annotations

import numbers
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


def blur_baseline(inputs: Tensor, kernel_size: int = 11, sigma: float = 5.0) -> Tensor:
    r"""
    A Gaussian-blurred copy of a batch of images, a baseline for
    IntegratedGradients that removes detail but keeps colour and layout (the
    starting point of the insertion metric, Petsiuk et al. 2018).

    Args:

        inputs (Tensor): ``(N, C, H, W)`` images, in the space the model takes.
        kernel_size (int, optional): Odd kernel width.
                    Default: 11
        sigma (float, optional): The Gaussian's standard deviation in pixels.
                    Default: 5.0

    Returns:
        *Tensor*: the blurred images, shaped like ``inputs`` (reflect padding);
        floating point (float32 for integer images: for
        :class:`~captum_lr.LRMaskGradient` on integer images, which keeps
        their dtype, round it: ``blur_baseline(x).round().to(x.dtype)``).

    Examples::

        >>> ig = LRIntegratedGradients(model, estimator=make_estimator("grid14"))
        >>> attr = ig.attribute(x, baselines=blur_baseline(x), target=t, n_steps=5)
    """
    if inputs.dim() != 4:
        raise ValueError(
            f"blur_baseline needs (N, C, H, W) images, got shape {tuple(inputs.shape)}."
        )
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd int, got {kernel_size}.")
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}.")
    half = kernel_size // 2
    if half >= min(inputs.shape[-2:]):
        raise ValueError(
            f"kernel_size {kernel_size} is too large for {tuple(inputs.shape[-2:])} "
            "images (reflect padding needs half the kernel < the image side)."
        )
    dtype = inputs.dtype if inputs.dtype.is_floating_point else torch.float32
    offsets = torch.arange(kernel_size, device=inputs.device, dtype=dtype) - half
    kernel = torch.exp(-(offsets**2) / (2 * sigma * sigma))
    kernel = kernel / kernel.sum()
    c = inputs.shape[1]
    x = F.pad(inputs.to(dtype), (half, half, half, half), mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def expand_baselines(baselines: Any, inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    r"""
    One baseline tensor per input, in the input's dtype and on its device,
    expanded to the input's shape: what a masked coordinate becomes.

    Args:

        baselines (None, scalar, Tensor or tuple): As in Captum's perturbation
                    methods: None (zeros), a number, or a tensor per input
                    shaped like the input, like one row (one baseline for all
                    examples), or with a leading 1; a tuple gives one per
                    input tensor.
        inputs (tuple[Tensor, ...]): The input tensors.

    Returns:
        *tuple[Tensor, ...]*: expanded (not copied) baselines, one per input.
        Integer and boolean inputs keep their dtype, so their baselines must
        hold whole numbers within the dtype's range.

    Examples::

        >>> expand_baselines((0.5, torch.zeros(4)), (a, b))
    """
    if baselines is None:
        return tuple(torch.zeros_like(x) for x in inputs)
    if isinstance(baselines, list):
        raise TypeError(
            "baselines is a list; pass a tensor, a number, or a tuple with one "
            "baseline (a tensor or a number) per input tensor."
        )
    given = baselines if isinstance(baselines, tuple) else (baselines,)
    if len(given) != len(inputs):
        raise ValueError(
            f"{len(given)} baselines for {len(inputs)} inputs; give one baseline "
            "(a scalar or a tensor) per input tensor."
        )
    return tuple(_expand_one(i, b, x) for i, (b, x) in enumerate(zip(given, inputs)))


def _expand_one(i: int, b: Any, x: Tensor) -> Tensor:
    if isinstance(b, numbers.Number) and not isinstance(b, complex):
        b = torch.tensor(b, dtype=torch.float64 if isinstance(b, float) else None)
    elif not isinstance(b, Tensor):
        hint = (
            "convert it with torch.as_tensor(baseline)"
            if hasattr(b, "__array__") or isinstance(b, (list, tuple))
            else "use a number or a tensor"
        )
        raise TypeError(f"baseline {i} is a {type(b).__name__}; {hint}.")
    if b.dim() == x.dim() - 1:
        b = b.unsqueeze(0)
    shape = tuple(x.shape)
    if not broadcasts_to(b.shape, x.shape):
        raise ValueError(
            f"baseline {i} has shape {tuple(b.shape)}, which does not "
            f"broadcast to input {i}'s shape {shape}; use one row for all "
            f"examples {(1, *shape[1:])} or one per example {shape}."
        )
    b = b.to(x.device)
    if not (x.dtype.is_floating_point or x.dtype.is_complex) and b.dtype != x.dtype:
        cast = b.to(x.dtype)
        if not bool((cast.to(b.dtype) == b).all()):
            raise ValueError(
                f"baseline {i} has values that input {i}'s dtype {x.dtype} "
                "cannot hold (a masked coordinate takes the baseline's value and "
                "keeps the input's dtype); use whole numbers within the dtype's "
                "range, e.g. baseline.round().to(input.dtype)."
            )
        b = cast
    return b.to(x.dtype).expand_as(x)


def broadcasts_to(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    r"""
    Whether a tensor of ``shape`` expands to ``target`` (without
    ``torch.broadcast_shapes``, whose first call imports sympy).

    Args:

        shape (tuple[int, ...]): The shape to expand.
        target (tuple[int, ...]): The shape to reach.

    Returns:
        *bool*

    Examples::

        >>> broadcasts_to((1, 4), (3, 4))
        True
    """
    if len(shape) > len(target):
        return False
    return all(s in (1, t) for s, t in zip(reversed(shape), reversed(target)))
