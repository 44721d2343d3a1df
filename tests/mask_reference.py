"""Exact references for the LRMaskGradient tests (imported by the test
modules; pytest puts this folder on the path)."""

import itertools

import torch


def semivalue(f, k, p):
    """Exact ``dF/dp_G`` at keep probability ``p`` of ``f`` on ``{0, 1}^k``
    (inputs of ones, baseline zeros): every subset's marginal contribution
    weighted by ``p^|S| (1 - p)^(k - 1 - |S|)``."""
    subsets = torch.tensor(list(itertools.product([0.0, 1.0], repeat=k)))
    subsets = subsets.double()
    values = f(subsets)
    out = torch.zeros(k, dtype=torch.float64)
    for g in range(k):
        others = subsets.sum(1) - subsets[:, g]
        weight = p**others * (1 - p) ** (k - 1 - others)
        out[g] = (weight * values * (2 * subsets[:, g] - 1)).sum()
    return out
