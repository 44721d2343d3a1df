r"""Mask designs: orthogonal random signs for feature groups, the masks of
:class:`~captum_lr.LRMaskGradient`.

The signs of a sample are a function of the design's seed and the sample's
index only (a counter-based generator built from integer hashing), computed
on the inputs' device: no host-device copies, the same signs on every device
and for any chunking of the samples.
"""

from __future__ import annotations

import torch
from torch import Tensor

_MASK32 = 0xFFFFFFFF
_ROUNDS = 8  # Feistel rounds of the block permutations
_ROWS, _COLUMNS, _SIGNS = 0, 1, 2  # the random streams of a block


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


def _mix32(x: Tensor) -> Tensor:
    """A 32-bit integer hash of ``x`` in ``[0, 2**32)`` (a two-multiply
    xorshift-multiply hash; multipliers below ``2**31`` keep every product in
    int64, so CPU and CUDA agree bit for bit)."""
    x = x ^ (x >> 16)
    x = (x * 0x21F0AAAD) & _MASK32
    x = x ^ (x >> 15)
    x = (x * 0x735A2D97) & _MASK32
    return x ^ (x >> 15)


def _permute(x: Tensor, key: Tensor, bits: int) -> Tensor:
    """A keyed pseudo-random permutation of ``[0, 2**bits)`` applied to ``x``:
    an unbalanced Feistel network (every round is a bijection whatever the
    split) followed by a keyed xor; ``key`` broadcasts against ``x``."""
    if bits == 0:
        return (x ^ key) & 0  # the one element 0, broadcast against key
    left_bits = bits // 2
    right_bits = bits - left_bits
    right_mask, left_mask = (1 << right_bits) - 1, (1 << left_bits) - 1
    salt = torch.arange(1, _ROUNDS + 2, device=x.device) * 0x9E3779B9 & _MASK32
    salt = salt.view(-1, *([1] * key.dim()))
    round_keys = _mix32(key.unsqueeze(0) ^ salt)  # (rounds + 1, *key.shape)
    for r in range(_ROUNDS):
        left, right = x >> right_bits, x & right_mask
        mixed = _mix32(right ^ round_keys[r]) & left_mask
        x = (right << left_bits) | (left ^ mixed)
    return x ^ (round_keys[_ROUNDS] & ((1 << bits) - 1))


class SignDesign:
    r"""
    Orthogonal random signs for ``k`` feature groups: the masks of
    :class:`~captum_lr.LRMaskGradient`.

    Sample ``s`` is row ``perm_b(s mod N)`` of block ``b = s // N`` of an
    ``N x N`` Sylvester-Hadamard matrix, ``N`` the smallest power of two at
    least ``k``, restricted to ``k`` distinct columns (the constant column
    included) and multiplied by a random sign per column; every block draws its
    own row order, columns and signs. Each group's sign is then +1 or -1 with
    probability 1/2 and any two groups' signs are uncorrelated, whatever the
    number of samples (the masks are unbiased for the Banzhaf value); within a
    complete block of ``N`` samples the columns are exactly orthogonal, and
    with each sign vector's complement (the foldover pair of
    :func:`~captum_lr.estimation.masking.mask_gradient`) every group is kept in
    exactly half the masks, so the estimate of a function linear in the signs
    is exact. No two samples of a block are the same sign vector or each
    other's complement (``k > N / 2`` columns cannot all have odd overlap with
    a nonzero row difference), so a block holds ``N`` distinct mask pairs.

    The row orders, columns and signs come from keyed integer hashes of the
    seed and the block's index (a Feistel permutation of the rows and columns),
    computed on ``device``: the signs of a sample depend on the seed and the
    sample's index only, never on how the samples are chunked or on the
    device.

    Args:

        groups (int): The number of feature groups ``k`` (at least 1).
        generator (torch.Generator): A CPU generator; two 32-bit words drawn
                    from it at construction are the design's seed.
        device (torch.device): Where the signs are built and returned.

    Examples::

        >>> design = SignDesign(5, torch.Generator().manual_seed(0), x.device)
        >>> design.order
        8
        >>> signs = design.signs(0, 16, torch.float64)  # two complete blocks
    """

    def __init__(
        self, groups: int, generator: torch.Generator, device: torch.device
    ) -> None:
        if groups < 1:
            raise ValueError(f"SignDesign needs at least one group, got {groups}.")
        self.groups = groups
        self.order = 1 << (groups - 1).bit_length()
        self.bits = self.order.bit_length() - 1
        self.device = torch.device(device)
        seed = torch.randint(0, 1 << 32, (2,), generator=generator).tolist()
        self._seed = (int(seed[0]), int(seed[1]))
        # the last block built: its index, row order, columns and signs
        self._cached: tuple[int, Tensor, Tensor, Tensor] | None = None

    def _keys(self, blocks: Tensor, stream: int) -> Tensor:
        """One 32-bit key per block and random stream."""
        h = _mix32((blocks & _MASK32) ^ self._seed[0])
        h = _mix32(h ^ ((blocks >> 32) & _MASK32) ^ self._seed[1])
        return _mix32(h ^ stream)

    def _blocks(self, first: int, last: int) -> tuple[Tensor, Tensor, Tensor]:
        """The row orders ``(blocks, N)``, Hadamard columns ``(blocks, k)`` and
        column signs ``(blocks, k)`` of blocks ``first`` to ``last``, built on
        the device; the last block is kept for the next call."""
        start = first
        cached = self._cached
        if cached is not None and cached[0] == first:
            if last == first:
                return cached[1], cached[2], cached[3]
            start = first + 1
        blocks = torch.arange(start, last + 1, device=self.device).view(-1, 1)
        n, k = blocks.shape[0], self.groups
        positions = torch.arange(self.order, device=self.device).expand(n, -1)
        rows = _permute(positions, self._keys(blocks, _ROWS), self.bits)
        group = torch.arange(k, device=self.device).expand(n, -1)
        cols = _permute(group, self._keys(blocks, _COLUMNS), self.bits)
        signs = 1 - 2 * (_mix32(self._keys(blocks, _SIGNS) ^ group) & 1)
        out = (rows, cols, signs)
        if cached is not None and start > first:
            out = tuple(torch.cat([c, t]) for c, t in zip(cached[1:], out))
        self._cached = (last, *(t[-1:] for t in out))
        return out

    def signs(self, start: int, stop: int, dtype: torch.dtype) -> Tensor:
        r"""The signs of samples ``start`` to ``stop - 1``.

        Args:

            start (int): The first sample's index (at least 0).
            stop (int): One past the last sample's index (above ``start``).
            dtype (torch.dtype): The dtype returned.

        Returns:
            *Tensor*: ``(stop - start, k)`` tensor of ``+1`` and ``-1`` on the
            design's device; the same for a sample whatever the range it is
            asked in.
        """
        if start < 0 or stop <= start:
            raise ValueError(
                f"SignDesign.signs needs 0 <= start < stop; got {start}:{stop}."
            )
        n = self.order
        first, last = start // n, (stop - 1) // n
        perm, cols, col_signs = self._blocks(first, last)
        samples = torch.arange(start, stop, device=self.device)
        local = samples // n - first
        rows = perm[local, samples % n]
        out = hadamard_signs(rows, cols[local]) * col_signs[local]
        return out.to(dtype)


class BernoulliDesign:
    r"""
    Independent keep masks for ``k`` feature groups: every group of every
    sample is kept with probability ``keep_prob``, the masks of
    :class:`~captum_lr.LRMaskGradient` at a keep probability other than 1/2
    (:func:`~captum_lr.estimation.masking.mask_regression`).

    A group of a sample is kept when a 32-bit hash of the design's seed, the
    sample's index and the group's index falls below ``keep_prob * 2**32``
    (so the probability is ``keep_prob`` to within ``2**-32``; the exact value
    is :attr:`keep_prob`). Like :class:`SignDesign` the masks are built on
    ``device`` and depend on the seed and the sample's index only, never on
    how the samples are chunked or on the device.

    Args:

        groups (int): The number of feature groups ``k`` (at least 1).
        keep_prob (float): The probability that a group is kept, in (0, 1).
        generator (torch.Generator): A CPU generator; two 32-bit words drawn
                    from it at construction are the design's seed.
        device (torch.device): Where the masks are built and returned.

    Examples::

        >>> design = BernoulliDesign(5, 0.7, torch.Generator().manual_seed(0), "cpu")
        >>> design.masks(0, 4)  # (4, 5) bool, each True with probability 0.7
    """

    def __init__(
        self,
        groups: int,
        keep_prob: float,
        generator: torch.Generator,
        device: torch.device | str,
    ) -> None:
        if groups < 1:
            raise ValueError(f"BernoulliDesign needs at least one group, got {groups}.")
        if not 0.0 < keep_prob < 1.0:
            raise ValueError(f"keep_prob must be in (0, 1), got {keep_prob}.")
        self.groups = groups
        self.threshold = min(max(round(keep_prob * 2**32), 1), 2**32 - 1)
        self.keep_prob = self.threshold / 2**32
        self.device = torch.device(device)
        seed = torch.randint(0, 1 << 32, (2,), generator=generator).tolist()
        self._seed = (int(seed[0]), int(seed[1]))

    def masks(self, start: int, stop: int) -> Tensor:
        r"""The keep masks of samples ``start`` to ``stop - 1``.

        Args:

            start (int): The first sample's index (at least 0).
            stop (int): One past the last sample's index (above ``start``).

        Returns:
            *Tensor*: ``(stop - start, k)`` bool on the design's device; the
            same for a sample whatever the range it is asked in.
        """
        if start < 0 or stop <= start:
            raise ValueError(
                f"BernoulliDesign.masks needs 0 <= start < stop; got {start}:{stop}."
            )
        samples = torch.arange(start, stop, device=self.device).view(-1, 1)
        h = _mix32((samples & _MASK32) ^ self._seed[0])
        h = _mix32(h ^ ((samples >> 32) & _MASK32) ^ self._seed[1])
        group = torch.arange(self.groups, device=self.device)
        h = _mix32(h ^ _mix32(group * 0x9E3779B9 & _MASK32))
        return h < self.threshold
