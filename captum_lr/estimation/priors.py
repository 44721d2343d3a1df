r"""Structure priors: sample directions in a subspace of group-constant inputs.

With a prior, each noise sample gives every coordinate of a group the same
value (scaled so that the group's basis vector has unit norm), so a sample
costs one query however many coordinates the group has. The estimator then
returns the **projection of the gradient onto that subspace**: every
coordinate gets the mean partial derivative of its group,
``P g_j = mean_{i in G(j)} g_i``. That is the bias a prior buys: exact (up to
the design's noise) for the projected gradient, blind to variation inside a
group. :meth:`BoundPrior.project` computes the projection of any gradient, so a
user can see what the estimate targets.

- :class:`SharedChannels`: one group per pixel across the channels of
  ``(C, H, W)`` rows: a third of the coordinates of an RGB image.
- :class:`Grid`: one group per cell of a ``cells`` grid over the last two
  dimensions (shared across channels by default): coarse region maps from few
  queries (a 14 x 14 grid has 196 groups: a coordinate sweep of 196 samples is
  the exact projected gradient).
- :class:`GroupPrior`: any Captum-style feature mask.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from captum_lr.estimation.layout import InputLayout, Space


def flat_group_ids(
    feature_mask: Tensor | Sequence[Tensor], layout: InputLayout
) -> Tensor:
    r"""The group id of every flat coordinate, from a Captum-style feature mask.

    Args:

        feature_mask (Tensor or tuple[Tensor, ...]): One integer tensor per input,
                    shaped like one row (optionally with a leading 1);
                    coordinates with equal values form a group, across tensors.
        layout (InputLayout): The inputs' shapes.

    Returns:
        *Tensor*: ``(d,)`` long tensor of group ids on the inputs' device.
    """
    masks = (feature_mask,) if isinstance(feature_mask, Tensor) else feature_mask
    if len(masks) != len(layout.shapes):
        raise ValueError(
            f"the feature mask has {len(masks)} tensors but the inputs have "
            f"{len(layout.shapes)}; give one mask per input tensor."
        )
    flat = []
    for i, (fm, shape) in enumerate(zip(masks, layout.shapes)):
        if not isinstance(fm, Tensor) or fm.dtype.is_floating_point:
            raise ValueError(
                f"feature mask {i} must be an integer tensor of group ids."
            )
        if fm.dim() == len(shape) + 1:
            if fm.shape[0] != 1:
                raise ValueError(
                    f"feature mask {i} has first dimension {fm.shape[0]}; use one "
                    "mask shared by all rows (first dimension 1)."
                )
            fm = fm[0]
        try:
            fm = fm.expand(shape)
        except RuntimeError as exc:
            raise ValueError(
                f"feature mask {i} has shape {tuple(fm.shape)}, which does not "
                f"broadcast to input {i}'s row shape {tuple(shape)}."
            ) from exc
        flat.append(fm.reshape(-1).to(layout.device, torch.long))
    return torch.cat(flat)


class BoundPrior:
    r"""A prior's subspace for one layout of inputs.

    Args:

        ids (Tensor): ``(d,)`` group id of every flat coordinate.
        layout (InputLayout): The inputs' shapes.
    """

    def __init__(self, ids: Tensor, layout: InputLayout) -> None:
        _, index = torch.unique(ids, return_inverse=True)
        self.index = index
        k = int(index.max().item()) + 1
        sizes = torch.zeros(k, device=layout.device, dtype=layout.dtype)
        sizes.index_add_(0, index, torch.ones_like(index, dtype=layout.dtype))
        self.sizes = sizes
        self.inv_sqrt = sizes.rsqrt()[index]
        self.space = Space(k, layout.batch_size, layout.device, layout.dtype)

    def gather(self, z: Tensor) -> Tensor:
        r"""Copies each group's value to its coordinates: ``(m, k) -> (m, d)``."""
        return z.index_select(1, self.index)

    def expand(self, z: Tensor) -> Tensor:
        r"""Maps subspace coordinates to inputs with the unit-norm basis."""
        return self.gather(z) * self.inv_sqrt

    def reduce(self, v: Tensor) -> Tensor:
        r"""The transpose of :meth:`expand`: ``(m, d) -> (m, k)``."""
        out = torch.zeros(
            (v.shape[0], self.space.dim), device=v.device, dtype=self.sizes.dtype
        )
        return out.index_add_(1, self.index, v.to(out.dtype) * self.inv_sqrt)

    def group_mean(self, v: Tensor) -> Tensor:
        r"""The mean of a ``(d,)`` vector over each group: ``(k,)``."""
        out = torch.zeros(self.space.dim, device=v.device, dtype=self.sizes.dtype)
        return out.index_add_(0, self.index, v.to(out.dtype)) / self.sizes

    def project(self, v: Tensor) -> Tensor:
        r"""The orthogonal projection of ``(m, d)`` rows onto the subspace."""
        return self.expand(self.reduce(v))


class GroupPrior:
    r"""
    Shares each noise sample within the groups of a Captum-style feature mask.

    Args:

        feature_mask (Tensor or tuple[Tensor, ...]): One integer tensor per input
                    tensor, shaped like a row (optionally with a leading 1);
                    equal values form a group.

    Examples::

        >>> mask = torch.arange(12).view(1, 12) // 3   # 4 groups of 3 features
        >>> est = LREstimator(prior=GroupPrior(mask))
    """

    def __init__(self, feature_mask: Tensor | tuple[Tensor, ...] | None = None) -> None:
        self.feature_mask = feature_mask

    def mask(self, layout: InputLayout) -> Tensor | tuple[Tensor, ...]:
        r"""The feature mask for inputs of this layout."""
        if self.feature_mask is None:
            raise ValueError("GroupPrior needs a feature_mask.")
        return self.feature_mask

    def bind(self, layout: InputLayout) -> BoundPrior:
        r"""The subspace for inputs of this layout."""
        return BoundPrior(flat_group_ids(self.mask(layout), layout), layout)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Grid(GroupPrior):
    r"""
    One group per cell of a grid over the last two dimensions of each input
    (``(C, H, W)`` images; 1-D rows are cut into ``cells`` runs).

    Args:

        cells (int or tuple[int, int]): Cells along the two last dimensions
                    (an int: the same along both). Cells split a dimension as
                    evenly as possible.
        share_channels (bool, optional): One group across all channels of a
                    cell (True) or one group per channel and cell (False).
                    Default: True

    Examples::

        >>> est = LREstimator(prior=Grid(14), n_samples=196)  # exact 14x14 map
    """

    def __init__(
        self, cells: int | tuple[int, int], share_channels: bool = True
    ) -> None:
        cells = (cells, cells) if isinstance(cells, int) else tuple(cells)
        if len(cells) != 2 or any(
            isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in cells
        ):
            raise ValueError(f"cells must be a positive int or a pair, not {cells!r}.")
        super().__init__()
        self.cells = cells
        self.share_channels = share_channels

    def __repr__(self) -> str:
        return f"Grid(cells={self.cells}, share_channels={self.share_channels})"

    def mask(self, layout: InputLayout) -> tuple[Tensor, ...]:
        masks, offset = [], 0
        for shape in layout.shapes:
            m = self._cell_ids(shape, layout.device)
            masks.append(m + offset)
            offset += int(m.max().item()) + 1
        return tuple(masks)

    def _cell_ids(self, shape: torch.Size, device: torch.device) -> Tensor:
        if len(shape) == 1:
            n = shape[0]
            if self.cells[0] > n:
                raise ValueError(f"Grid has {self.cells[0]} cells for {n} features.")
            return torch.arange(n, device=device) * self.cells[0] // n
        h, w = shape[-2], shape[-1]
        ch, cw = self.cells
        if ch > h or cw > w:
            raise ValueError(
                f"Grid cells {self.cells} exceed the input's last dimensions {(h, w)}."
            )
        rows = torch.arange(h, device=device) * ch // h
        cols = torch.arange(w, device=device) * cw // w
        cell = (rows.unsqueeze(1) * cw + cols.unsqueeze(0)).expand(shape)
        if not self.share_channels and len(shape) > 2:
            lead = torch.arange(
                int(torch.tensor(shape[:-2]).prod().item()), device=device
            ).reshape(*shape[:-2], 1, 1)
            cell = cell + lead * ch * cw
        return cell


class SharedChannels(Grid):
    r"""
    One group per pixel across the channels of ``(C, H, W)`` rows: the estimate
    is the channel-mean gradient, from a third of the queries of an RGB image.

    Examples::

        >>> est = LREstimator(prior=SharedChannels())
    """

    def __init__(self) -> None:
        super().__init__(1)

    def __repr__(self) -> str:
        return "SharedChannels()"

    def _cell_ids(self, shape: torch.Size, device: torch.device) -> Tensor:
        if len(shape) < 3:
            raise ValueError(
                f"SharedChannels needs (C, H, W) rows; got row shape {tuple(shape)}."
            )
        h, w = shape[-2], shape[-1]
        return torch.arange(h * w, device=device).reshape(h, w).expand(shape)
