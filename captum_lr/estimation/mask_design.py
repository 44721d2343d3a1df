r"""Mask designs: orthogonal random signs for feature groups, the masks of
:class:`~captum_lr.LRMaskGradient`."""

from __future__ import annotations

import torch
from torch import Tensor


def hadamard_signs(rows: Tensor, cols: Tensor) -> Tensor:
    r"""Entries of the Sylvester-Hadamard matrix, ``(-1) ** popcount(r & c)``.

    Args:

        rows (Tensor): ``(m,)`` non-negative row indices.
        cols (Tensor): ``(m, k)`` non-negative column indices, per row.

    Returns:
        *Tensor*: ``(m, k)`` long tensor of ``+1`` and ``-1``.
    """
    v = rows.view(-1, 1) & cols
    for shift in (32, 16, 8, 4, 2, 1):  # fold the bits: bit 0 is the parity
        v = v ^ (v >> shift)
    return 1 - 2 * (v & 1)


class SignDesign:
    r"""
    Orthogonal random signs for ``k`` feature groups: the masks of
    :class:`~captum_lr.LRMaskGradient`.

    Sample ``s`` is row ``perm_b[s mod N]`` of block ``b = s // N`` of an
    ``N x N`` Sylvester-Hadamard matrix (``N``, the smallest power of two above
    ``k``), restricted to ``k`` of its columns other than the constant one and
    multiplied by a random sign per column; every block draws its own row
    order, columns and signs. Each group's sign is then +1 or -1 with
    probability 1/2 and any two groups' signs are uncorrelated, whatever the
    number of samples (the masks are unbiased for the Banzhaf value); within a
    complete block of ``N`` samples the columns are exactly balanced and
    orthogonal (the estimate of a function linear in the signs is exact).
    Blocks are drawn in order from ``generator`` as samples ask for them, so
    the signs of a sample do not depend on how the samples are chunked.

    Args:

        groups (int): The number of feature groups ``k``.
        generator (torch.Generator): A CPU generator.
        device (torch.device): Where the signs are returned.
    """

    def __init__(
        self, groups: int, generator: torch.Generator, device: torch.device
    ) -> None:
        self.groups = groups
        self.order = 1 << groups.bit_length()
        self.generator = generator
        self.device = device
        self._first = 0  # the block at self._blocks[0]
        self._blocks: list[tuple[Tensor, Tensor, Tensor]] = []
        self._stop = 0  # the end of the last range returned

    def _new_block(self) -> tuple[Tensor, Tensor, Tensor]:
        g = self.generator
        perm = torch.randperm(self.order, generator=g)
        cols = torch.randperm(self.order - 1, generator=g)[: self.groups] + 1
        signs = torch.randint(0, 2, (self.groups,), generator=g) * 2 - 1
        return perm.to(self.device), cols.to(self.device), signs.to(self.device)

    def signs(self, start: int, stop: int, dtype: torch.dtype) -> Tensor:
        r"""The ``(stop - start, k)`` signs of samples ``start`` to ``stop - 1``
        (called with increasing, non-overlapping ranges)."""
        if start < self._stop or stop <= start:
            raise ValueError(
                "SignDesign.signs must be called with non-empty, increasing, "
                f"non-overlapping ranges; got {start}:{stop} after ...:{self._stop}."
            )
        self._stop = stop
        first, last = start // self.order, (stop - 1) // self.order
        while self._first + len(self._blocks) <= last:
            self._blocks.append(self._new_block())
        del self._blocks[: first - self._first]
        self._first = first
        perms, cols, signs = (torch.stack(t) for t in zip(*self._blocks))
        samples = torch.arange(start, stop, device=self.device)
        block = samples // self.order - first
        rows = perms[block, samples % self.order]
        out = hadamard_signs(rows, cols[block]) * signs[block]
        return out.to(dtype)
