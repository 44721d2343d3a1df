r"""Counter-based random numbers: noise that is a function of its indices.

The estimator's noise must not depend on how its queries are chunked into
forward batches, nor on the other rows of a call, nor on the input values:
a seeded map is then a smooth function of the input (common random numbers),
and the same call re-sends exactly the same rows (a
:class:`~captum_lr.BlackBox` cache answers a re-run). A sequential generator
gives none of that; a hash of the indices gives all of it.

:class:`CounterNoise` hashes ``(key, purpose, stream, sample, column)`` with
the 32-bit MurmurHash3 finaliser, computed exactly in ``int64`` arithmetic on
the inputs' device (no products above 2**48, so nothing overflows), and turns
the hash into uniform or standard normal numbers. Every draw is vectorised
over whatever index tensors it is given.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import torch
from torch import Tensor

_MASK32 = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9

# what a draw is for: each purpose is an independent family of streams
ORDER, SIGNS, NORMAL_1, NORMAL_2, SUPPORT, COARSE_ORDER, FINE_ORDER = range(7)


def _mul32(h: Tensor, c: int) -> Tensor:
    """``(h * c) mod 2**32`` for ``0 <= h < 2**32`` without int64 overflow."""
    low = (h & 0xFFFF) * c
    high = ((h >> 16) * c) & 0xFFFF
    return (low + (high << 16)) & _MASK32


def _fmix(h: Tensor) -> Tensor:
    """MurmurHash3's 32-bit finaliser (a bijection with full avalanche)."""
    h = h ^ (h >> 16)
    h = _mul32(h, 0x85EBCA6B)
    h = h ^ (h >> 13)
    h = _mul32(h, 0xC2B2AE35)
    return h ^ (h >> 16)


def _combine(h: Tensor, counter: Tensor | int) -> Tensor:
    """Folds a non-negative counter (below 2**32) into the hash ``h``."""
    mixed = _fmix((torch.as_tensor(counter, device=h.device) + _GOLDEN) & _MASK32)
    return _fmix(h ^ mixed)


def call_key(seed: int, shapes: Sequence[Sequence[int]]) -> int:
    r"""A 32-bit key for ``seed`` and the inputs' row shapes, the same in every
    process (``hashlib``, not ``hash()``)."""
    text = repr((int(seed), [tuple(int(s) for s in shape) for shape in shapes]))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


class CounterNoise:
    r"""
    Random numbers that are a pure function of ``(key, purpose, stream,
    sample, column)``.

    Args:

        key (int): The call's key (from :func:`call_key`, or random).
        device (torch.device): Where the numbers are made.
    """

    def __init__(self, key: int, device: torch.device) -> None:
        self.key = int(key) & _MASK32
        self.device = device

    def _hash(self, purpose: int, stream: Tensor, sample: Tensor | int) -> Tensor:
        h = torch.full((), self.key, dtype=torch.long, device=self.device)
        h = _combine(_combine(h, purpose), stream.long())
        return _combine(h, sample.long() if isinstance(sample, Tensor) else sample)

    def bits(
        self, purpose: int, stream: Tensor, sample: Tensor | int, width: int
    ) -> Tensor:
        r"""``(m, width)`` 32-bit hashes (as int64) for ``m`` (stream, sample)
        pairs and columns ``0 .. width - 1``."""
        row = self._hash(purpose, stream, sample).reshape(-1, 1)
        columns = torch.arange(width, device=self.device, dtype=torch.long)
        return _combine(row, columns.unsqueeze(0))

    def uniform(
        self,
        purpose: int,
        stream: Tensor,
        sample: Tensor | int,
        width: int,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        r"""``(m, width)`` uniform numbers in the open interval (0, 1)."""
        bits = self.bits(purpose, stream, sample, width) >> 8  # 24 bits
        return (bits.to(dtype) + 0.5) * (2.0**-24)

    def normal(
        self,
        stream: Tensor,
        sample: Tensor,
        width: int,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        r"""``(m, width)`` standard normal numbers (Box-Muller)."""
        u1 = self.uniform(NORMAL_1, stream, sample, width, torch.float64)
        u2 = self.uniform(NORMAL_2, stream, sample, width, torch.float64)
        radius = torch.sqrt(-2.0 * torch.log(u1))
        return (radius * torch.cos((2.0 * math.pi) * u2)).to(dtype)

    def signs(
        self, stream: Tensor, width: int, dtype: torch.dtype, purpose: int = SIGNS
    ) -> Tensor:
        r"""``(streams, width)`` random signs, one row per stream."""
        bits = self.bits(purpose, stream, 0, width)
        return ((bits & 1) * 2 - 1).to(dtype)

    def permutation(self, stream: Tensor, size: int, purpose: int = ORDER) -> Tensor:
        r"""``(streams, size)`` uniformly random permutations of ``0 .. size-1``
        (the order of ``size`` hashed keys; 32-bit ties are broken by index,
        with probability below ``size**2 / 2**33``)."""
        return torch.argsort(self.bits(purpose, stream, 0, size), dim=1, stable=True)
