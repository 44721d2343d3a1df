"""Frequency strata: where the input gradient's energy lies, and how far an
allocation of orthogonal DCT directions over the strata can get (issue 14).

    python -m benchmarks.frequency --images eval --px 112 \\
        --accuracy accuracy_112px,accuracy_112px_frequency

Per photo, the autograd gradient of the predicted logit in the basis of
``design="orthogonal-frequency"`` (a DCT over channels, then 2D over pixels),
cut into its strata: channel-shared or contrast, times 12 rings of spatial
frequency. Printed: each ring's share of the gradient's energy and its
*density* (share of energy over share of directions: 1 everywhere for a white
gradient), then, at each budget, the cosine a linear function's estimate
reaches with

- uniform orthogonal directions (``sqrt(n/d)``),
- the channel strata's best case (every sample on channel-shared directions:
  ``sqrt(n/m f_shared)``),
- the frequency strata with the strata's true energies and no probes (the
  greedy fill of the densest strata first: the square root of the energy
  captured), the ceiling of any allocation over these strata,
- the best ``n`` DCT directions of this gradient (not knowable in advance),

and, with ``--accuracy``, the measured cosines of the methods in those
accuracy results (``benchmarks.accuracy``) and their ratio to NES's.
"""

from __future__ import annotations

import json
import math
import os

import torch

from benchmarks.common import (
    RESULTS,
    base_parser,
    image_names,
    load_model,
    make_task,
    mean_se,
    print_table,
    write_results,
)
from captum_lr.estimation.frequency import rings_for, stratum_ids
from captum_lr.estimation.strata import dct_rows

EXTRA_ROWS = 5
r"""Forward rows of the default estimator beyond its samples (f(x) and the
4 sigma probe pairs' second rows): ``n = budget - 5`` samples."""


def dct_energy(grad: torch.Tensor) -> torch.Tensor:
    """``(C, H, W)`` squared DCT coefficients of a ``(C, H, W)`` gradient over
    its squared norm (channels, then 2D over pixels; they sum to 1)."""
    mats = [dct_rows(torch.arange(k), k, torch.float64) for k in grad.shape]
    coef = torch.einsum("chw,ac,bh,ew->abe", grad.double(), *mats)
    energy = coef.square()
    return energy / energy.sum()


def strata_energy(energy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each stratum's share of the energy and of the directions."""
    c, h, w = energy.shape
    stratum = stratum_ids((c, h, w), rings_for(h, w), torch.device("cpu"))
    share = torch.zeros(int(stratum.max()) + 1, dtype=torch.float64)
    share.index_add_(0, stratum, energy.reshape(-1))
    sizes = torch.bincount(stratum).double()
    return share, sizes / sizes.sum()


def greedy_ceiling(share: torch.Tensor, dims: torch.Tensor, n: int, d: int) -> float:
    """The cosine of the projection on ``n`` directions drawn by filling the
    densest strata first (true energies, no probes)."""
    density = share / dims
    left, captured = float(n), 0.0
    for b in torch.argsort(density, descending=True).tolist():
        size = float(dims[b]) * d
        take = min(left, size)
        captured += float(share[b]) * take / size
        left -= take
        if left <= 0:
            break
    return math.sqrt(captured)


def photo_figures(energy: torch.Tensor, budgets: list[int]) -> dict:
    """Per budget, the cosines of the designs' ceilings for one gradient."""
    d = energy.numel()
    m = energy[0].numel()
    share, dims = strata_energy(energy)
    top = torch.sort(energy.reshape(-1), descending=True).values.cumsum(0)
    shared = float(energy[0].sum())
    out = {}
    for budget in budgets:
        n = min(budget - EXTRA_ROWS, d)
        out[str(budget)] = {
            "uniform": math.sqrt(n / d),
            "channel_strata_best": math.sqrt(min(1.0, n / m) * shared),
            "frequency_strata_ceiling": greedy_ceiling(share, dims, n, d),
            "best_n_dct": math.sqrt(float(top[n - 1])),
        }
    return out


def ring_table(records: list[dict]) -> str:
    """Mean over photos of each ring's energy share and density, shared and
    contrast directions."""
    shares = torch.tensor([r["strata_share"] for r in records]).mean(0)
    dims = torch.tensor(records[0]["strata_dims"])
    rings = records[0]["rings"]
    rows = []
    for ring in range(rings):
        cells = [str(ring)]
        for group in range(len(shares) // rings):
            b = group * rings + ring
            cells += [f"{shares[b]:.3f}", f"{shares[b] / dims[b]:.2f}"]
        rows.append(cells)
    headers = ["ring", "shared: energy", "density"]
    if len(shares) > rings:
        headers += ["contrast: energy", "density"]
    return print_table(headers, rows)


def ceiling_table(records: list[dict], budgets: list[int], nes: dict) -> str:
    """Mean over photos of each ceiling's cosine, and its ratio to NES."""
    keys = list(records[0]["ceilings"][str(budgets[0])])
    rows = []
    for key in keys:
        cells, ratios = [key], []
        for b in budgets:
            value = mean_se([r["ceilings"][str(b)][key] for r in records])[0]
            cells.append(f"{value:.3f}")
            ratios.append(f"{value / nes[b]:.2f}" if b in nes else "")
        rows.append(cells + ratios)
    headers = (
        ["linear-function cosine (true energies)"]
        + [f"cos @ {b}" for b in budgets]
        + [f"ratio to NES @ {b}" for b in budgets]
    )
    return print_table(headers, rows)


def load_accuracy(names: list[str], images: list[str]) -> list[dict]:
    """The records of these accuracy results for these photos."""
    records = []
    for name in names:
        payload = json.loads((RESULTS / f"{name}.json").read_text())
        records += [r for r in payload["records"] if r["image"] in images]
    return records


def accuracy_table(records: list[dict], budgets: list[int]) -> tuple[str, dict]:
    """Mean cosine per method and budget and the ratio to NES's."""
    methods = list(dict.fromkeys(r["method"] for r in records))

    def mean(method, b):
        vals = [
            r["cosine"] for r in records if r["method"] == method and r["budget"] == b
        ]
        return mean_se(vals) if vals else None

    nes = {b: mean("NES", b)[0] for b in budgets if mean("NES", b)}
    rows = []
    for method in methods:
        stats = [mean(method, b) for b in budgets]
        cells = [f"{s[0]:.3f} ± {s[1]:.3f}" if s else "-" for s in stats]
        ratios = [
            f"{s[0] / nes[b]:.2f}" if s and b in nes else ""
            for s, b in zip(stats, budgets)
        ]
        rows.append([method] + cells + ratios)
    headers = (
        ["method (measured)"]
        + [f"cos @ {b}" for b in budgets]
        + [f"ratio to NES @ {b}" for b in budgets]
    )
    return print_table(headers, rows), nes


def per_photo_table(records: list[dict], budgets: list[int]) -> str:
    """Per photo and budget: the frequency strata, the default and NES."""
    cos = {(r["method"], r["budget"], r["image"]): r["cosine"] for r in records}
    rows = []
    for image in dict.fromkeys(r["image"] for r in records):
        for b in budgets:
            got = [
                cos.get((m, b, image))
                for m in ("captum_lr:orthogonal-frequency", "captum_lr:default", "NES")
            ]
            if None in got:
                continue
            freq, default, nes = got
            rows.append(
                [image, str(b), f"{freq:.3f}", f"{default:.3f}", f"{nes:.3f}"]
                + [f"{freq / nes:.2f}", f"{default / nes:.2f}"]
            )
    if not rows:
        return ""
    headers = ["photo", "rows", "frequency", "default", "NES", "freq / NES"]
    return print_table(headers + ["default / NES"], rows)


def main(argv=None) -> None:
    p = base_parser(__doc__)
    p.add_argument("--budgets", default="1000,4000")
    p.add_argument(
        "--accuracy",
        default="",
        help="accuracy result names whose records to compare (same photos)",
    )
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    budgets = [int(b) for b in args.budgets.split(",")]
    model = load_model(args.device)
    images = list(image_names(args.images))
    records = []
    for name in images:
        task = make_task(model, name, args.px, args.device)
        xr = task.x.clone().requires_grad_()
        (grad,) = torch.autograd.grad(model(xr)[0, task.target], xr)
        energy = dct_energy(grad[0].cpu())
        share, dims = strata_energy(energy)
        records.append(
            {
                "image": name,
                "target": task.target,
                "rings": rings_for(*energy.shape[1:]),
                "shared_share": float(energy[0].sum()),
                "strata_share": share.tolist(),
                "strata_dims": dims.tolist(),
                "ceilings": photo_figures(energy, budgets),
            }
        )
    payload: dict = {"records": records, "px": args.px, "images": images}
    payload["ring_table"] = ring_table(records)
    nes: dict = {}
    if args.accuracy:
        measured = load_accuracy(args.accuracy.split(","), images)
        payload["accuracy_table"], nes = accuracy_table(measured, budgets)
        payload["per_photo_table"] = per_photo_table(measured, budgets)
        payload["accuracy_from"] = args.accuracy.split(",")
    payload["ceiling_table"] = ceiling_table(records, budgets, nes)
    payload["load_average"] = list(os.getloadavg())
    write_results(args.out or f"frequency_{args.px}px", payload, "frequency")


if __name__ == "__main__":
    main()
