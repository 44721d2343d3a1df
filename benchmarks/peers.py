"""The peers, written here from their papers' descriptions: NES, RGF, a
GEEX-style likelihood-ratio estimator and RISE. Each spends exactly ``rows``
forward rows of ``fn`` (a batch -> (n,) scores function) on one image
``x`` of shape (1, C, H, W)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

Fn = Callable[[torch.Tensor], torch.Tensor]


def _batched(fn: Fn, z: torch.Tensor, batch: int) -> torch.Tensor:
    return torch.cat([fn(z[i : i + batch]) for i in range(0, z.shape[0], batch)])


def nes(fn: Fn, x, rows, sigma, gen, batch=32):
    """Ilyas et al. 2018: antithetic Gaussian pairs, rows // 2 directions."""
    d = x[0].numel()
    pairs = rows // 2
    grad = torch.zeros(d, dtype=torch.float64)
    for lo in range(0, pairs, batch // 2):
        u = torch.randn(min(batch // 2, pairs - lo), d, generator=gen)
        z = torch.cat([x.flatten(1) + sigma * u, x.flatten(1) - sigma * u])
        f = fn(z.view(-1, *x.shape[1:])).double()
        m = u.shape[0]
        grad += ((f[:m] - f[m:]) / (2 * sigma)) @ u.double()
    return (grad / max(pairs, 1)).view(x.shape[1:]).float()


def rgf(fn: Fn, x, rows, sigma, gen, orthogonal=False, batch=32):
    """Cheng et al. 2019 without a prior: forward differences along rows - 1
    random unit directions (i.i.d., or orthonormalised by QR: successive
    random orthonormal bases of d directions when rows - 1 > d), scaled by
    d/n."""
    d = x[0].numel()
    n = rows - 1
    f0 = fn(x).double()[0]

    def basis(k):
        q, _ = torch.linalg.qr(torch.randn(d, k, generator=gen))
        return q.T

    grad = torch.zeros(d, dtype=torch.float64)
    block = torch.empty(0, d)
    for lo in range(0, n, batch):
        m = min(batch, n - lo)
        if orthogonal:
            while block.shape[0] < m:
                block = torch.cat([block, basis(min(d, n - lo))])
            u, block = block[:m], block[m:]
        else:
            g = torch.randn(m, d, generator=gen)
            u = g / g.norm(dim=1, keepdim=True)
        f = fn((x.flatten(1) + sigma * u).view(-1, *x.shape[1:])).double()
        grad += ((f - f0) / sigma) @ u.double()
    return (grad * d / n).view(x.shape[1:]).float()


def geex(fn: Fn, x, rows, gen, sigma=0.3, baseline=None, path=True, batch=32):
    """GEEX-style (Cai et al. 2024): mirrored Gaussian masks of shape (1, H, W)
    shared across channels, sigma 0.3 on normalised images. With path=True,
    points are drawn uniformly on the straight path from the baseline and the
    result is an IG-type attribution (x - baseline) * mean gradient; with
    path=False it is the smoothed gradient at x."""
    c, h, w = x.shape[1:]
    base = torch.zeros_like(x) if baseline is None else baseline.view_as(x)
    pairs = rows // 2
    grad = torch.zeros(c, h, w, dtype=torch.float64)
    for lo in range(0, pairs, batch // 2):
        m = min(batch // 2, pairs - lo)
        eps = torch.randn(m, 1, h, w, generator=gen)
        alpha = (
            torch.rand(m, 1, 1, 1, generator=gen) if path else torch.ones(m, 1, 1, 1)
        )
        p = base + alpha * (x - base)
        f = fn(torch.cat([p + sigma * eps, p - sigma * eps])).double()
        coef = (f[:m] - f[m:]) / (2 * sigma)
        grad += (coef.view(m, 1, 1, 1) * eps.double()).sum(0)
    grad = (grad / max(pairs, 1)).float()
    return ((x - base)[0] * grad) if path else grad


def rise(fn: Fn, x, rows, gen, black, cells=7, p=0.5, batch=32):
    """Petsiuk et al. 2018: random binary masks on a cells x cells grid,
    bilinearly upsampled with a random shift; saliency = sum f(x.M) M / (N p)."""
    c, h, w = x.shape[1:]
    cell_h, cell_w = math.ceil(h / cells), math.ceil(w / cells)
    up_h, up_w = (cells + 1) * cell_h, (cells + 1) * cell_w
    sal = torch.zeros(h, w, dtype=torch.float64)
    for lo in range(0, rows, batch):
        m = min(batch, rows - lo)
        grid = (torch.rand(m, 1, cells, cells, generator=gen) < p).float()
        up = torch.nn.functional.interpolate(
            grid, size=(up_h, up_w), mode="bilinear", align_corners=False
        )
        dy = torch.randint(0, cell_h, (m,), generator=gen)
        dx = torch.randint(0, cell_w, (m,), generator=gen)
        idx_r = (dy.view(m, 1, 1, 1) + torch.arange(h).view(1, 1, h, 1)).expand(
            m, 1, h, up_w
        )
        idx_c = (dx.view(m, 1, 1, 1) + torch.arange(w).view(1, 1, 1, w)).expand(
            m, 1, h, w
        )
        masks = up.gather(2, idx_r).gather(3, idx_c)
        f = fn(black + (x - black) * masks).double()
        sal += (f.view(m, 1, 1) * masks[:, 0].double()).sum(0)
    return (sal / (rows * p)).float().expand(c, h, w) / c
