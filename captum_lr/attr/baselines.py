r"""Baselines for path attributions, computed from the input itself."""

from __future__ import annotations

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
        *Tensor*: the blurred images, shaped like ``inputs`` (reflect padding).

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
