r"""Evaluation metrics for saliency maps: deletion / insertion and MuFidelity.

- :func:`deletion_insertion`: the RISE protocol (Petsiuk et al. 2018). Pixels
  are ranked by the attribution summed over channels; each step changes a
  fixed number of pixels; deletion replaces them with a ``deleted`` image
  (black), insertion starts from a ``start`` image (a Gaussian-blurred copy)
  and restores the originals; the score is the model's probability of the
  explained class; the area under each curve is the trapezoid rule on [0, 1].
  Lower deletion and higher insertion are better.
- :func:`mu_fidelity`: Bhatt et al. 2020: the correlation, over random subsets
  of grid cells, between the drop of the score when the subset is set to a
  baseline and the sum of the attributions over the subset.
- :func:`cosine`, :func:`spearman`: agreement of two maps per example.

All curves are evaluated in batches of at most ``batch_size`` images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Curves:
    r"""Deletion and insertion curves of one example.

    Attributes:

        fraction (Tensor): Fraction of pixels changed at each step, from 0 to 1.
        deletion (Tensor): Score after deleting that fraction.
        insertion (Tensor): Score after inserting that fraction.
        deletion_auc (float): Area under the deletion curve (lower is better).
        insertion_auc (float): Area under the insertion curve (higher is better).
    """

    fraction: Tensor
    deletion: Tensor
    insertion: Tensor
    deletion_auc: float
    insertion_auc: float


def _check_map(attribution: Tensor, image: Tensor) -> Tensor:
    if attribution.shape != image.shape:
        raise ValueError(
            f"attribution shape {tuple(attribution.shape)} differs from the image's "
            f"{tuple(image.shape)}."
        )
    if not torch.isfinite(attribution).all():
        raise ValueError("the attribution contains NaN or Inf.")
    saliency = attribution.sum(0) if attribution.dim() == 3 else attribution
    if saliency.max() == saliency.min():
        raise ValueError(
            "the attribution is constant: it ranks no pixel above another (an "
            "all-zero map?); check the method before scoring it."
        )
    return saliency


def deletion_insertion(
    score_fn: Callable[[Tensor], Tensor],
    image: Tensor,
    attribution: Tensor,
    deleted: Tensor,
    start: Tensor,
    pixels_per_step: int,
    batch_size: int = 64,
) -> Curves:
    r"""
    Deletion and insertion curves of one saliency map (RISE protocol).

    Args:

        score_fn (Callable): Maps a ``(n, C, H, W)`` batch to ``(n,)`` scores
                    (e.g. the softmax probability of the explained class).
        image (Tensor): ``(C, H, W)`` the explained image.
        attribution (Tensor): ``(C, H, W)`` or ``(H, W)`` map; pixels are ranked
                    by its sum over channels, highest first (ties in index
                    order). A constant map raises: it ranks nothing.
        deleted (Tensor): ``(C, H, W)`` what deleted pixels become (black).
        start (Tensor): ``(C, H, W)`` the insertion's start (a blurred copy).
        pixels_per_step (int): Pixels changed per step.
        batch_size (int, optional): Most images per ``score_fn`` call.
                    Default: 64

    Returns:
        *Curves*: both curves and their areas.

    Examples::

        >>> c = deletion_insertion(prob_of(t), x[0], attr[0], black, blur(x)[0], 112)
        >>> c.insertion_auc - c.deletion_auc
    """
    saliency = _check_map(attribution, image)
    if pixels_per_step < 1:
        raise ValueError(f"pixels_per_step must be positive, got {pixels_per_step}.")
    h, w = image.shape[-2:]
    n_pixels = h * w
    order = torch.argsort(saliency.flatten(), descending=True, stable=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(n_pixels, device=order.device)
    steps = -(-n_pixels // pixels_per_step)
    changed = torch.arange(steps + 1, device=image.device) * pixels_per_step
    fraction = changed.clamp(max=n_pixels).to(image.dtype) / n_pixels
    deletion, insertion = [], []
    for lo in range(0, steps + 1, batch_size):
        k = changed[lo : lo + batch_size].view(-1, 1)
        mask = (rank.view(1, -1) < k).view(-1, 1, h, w).to(image.dtype)
        deletion.append(score_fn(image * (1 - mask) + deleted * mask))
        insertion.append(score_fn(start * (1 - mask) + image * mask))
    d = torch.cat(deletion).detach().float().cpu()
    i = torch.cat(insertion).detach().float().cpu()
    frac = fraction.float().cpu()
    return Curves(
        frac,
        d,
        i,
        float(torch.trapezoid(d, frac)),
        float(torch.trapezoid(i, frac)),
    )


def mu_fidelity(
    score_fn: Callable[[Tensor], Tensor],
    image: Tensor,
    attribution: Tensor,
    baseline: Tensor,
    grid: int = 9,
    subset_fraction: float = 0.2,
    n_subsets: int = 200,
    generator: torch.Generator | None = None,
    batch_size: int = 64,
) -> float:
    r"""
    MuFidelity (Bhatt et al. 2020): the Pearson correlation, over random
    subsets of cells of a ``grid x grid`` partition, between
    ``f(x) - f(x with the subset set to baseline)`` and the attribution summed
    over the subset.

    Args:

        score_fn (Callable): Maps ``(n, C, H, W)`` to ``(n,)`` scores.
        image (Tensor): ``(C, H, W)``.
        attribution (Tensor): ``(C, H, W)`` or ``(H, W)``.
        baseline (Tensor): ``(C, H, W)`` the values of removed cells.
        grid (int, optional): Cells per side. Default: 9
        subset_fraction (float, optional): Fraction of cells per subset.
                    Default: 0.2
        n_subsets (int, optional): Random subsets. Default: 200
        generator (torch.Generator, optional): Random source for the subsets.
        batch_size (int, optional): Most images per call. Default: 64

    Returns:
        *float*: the correlation, in [-1, 1] (higher is better). A constant
        attribution raises ``ValueError`` (its correlation is undefined).

    Examples::

        >>> mu_fidelity(prob_of(t), x[0], attr[0], black, generator=gen)
    """
    saliency = _check_map(attribution, image)
    h, w = image.shape[-2:]
    cell = (
        (torch.arange(h, device=image.device) * grid // h).view(-1, 1) * grid
        + (torch.arange(w, device=image.device) * grid // w).view(1, -1)
    ).flatten()
    n_cells = grid * grid
    k = max(1, round(subset_fraction * n_cells))
    keys = torch.rand((n_subsets, n_cells), generator=generator).to(image.device)
    chosen = torch.zeros_like(keys, dtype=torch.bool)
    chosen.scatter_(1, keys.argsort(1)[:, :k], True)
    removed = chosen[:, cell].view(n_subsets, 1, h, w).to(image.dtype)
    attr_sum = (removed.view(n_subsets, -1) * saliency.flatten()).sum(1)
    full = score_fn(image.unsqueeze(0)).reshape(())
    drops = []
    for lo in range(0, n_subsets, batch_size):
        mask = removed[lo : lo + batch_size]
        drops.append(full - score_fn(image * (1 - mask) + baseline * mask))
    drop = torch.cat(drops).detach().double().cpu()
    attr_sum = attr_sum.detach().double().cpu()
    return float(torch.corrcoef(torch.stack([drop, attr_sum]))[0, 1])


def cosine(a: Tensor, b: Tensor) -> Tensor:
    r"""Per-example cosine similarity of two batches of maps (``(N, ...)``)."""
    return torch.nn.functional.cosine_similarity(
        a.flatten(1).double(), b.flatten(1).double(), dim=1
    )


def spearman(a: Tensor, b: Tensor) -> Tensor:
    r"""Per-example Spearman rank correlation of two batches of maps."""

    def ranks(v: Tensor) -> Tensor:
        v = v.flatten(1).double()
        r = torch.empty_like(v)
        r.scatter_(
            1,
            v.argsort(1),
            torch.arange(v.shape[1], dtype=v.dtype, device=v.device).expand_as(v),
        )
        return r

    return cosine(
        ranks(a) - ranks(a).mean(1, keepdim=True),
        ranks(b) - ranks(b).mean(1, keepdim=True),
    )
