"""Faithfulness at equal forward rows: deletion / insertion AUC and MuFidelity.

    python -m benchmarks.faithfulness --images eval --px 112 --budgets 1000,4000

Every method explains the softmax probability of the class the model predicts
at this resolution and is held to at most the budget in forward rows (counted
by wrapping the model, baselines and convergence passes included). Captum's
perturbation methods use a 14 x 14 grid feature mask (Occlusion: the densest
window grid that fits), black or blurred baselines; white-box Saliency and
IntegratedGradients use autograd (rows not limited) as the reference."""

from __future__ import annotations

import math
import time

import torch
from captum.attr import (
    FeatureAblation,
    IntegratedGradients,
    KernelShap,
    Lime,
    NoiseTunnel,
    Occlusion,
    Saliency,
    ShapleyValueSampling,
)
from captum._utils.models.linear_model import SkLearnLasso

from benchmarks import peers
from benchmarks.common import (
    base_parser,
    black,
    image_names,
    load_model,
    make_task,
    mean_se,
    print_table,
    write_results,
)
from captum_lr import (
    LREstimator,
    LRGradientShap,
    LRIntegratedGradients,
    LRSaliency,
    blur_baseline,
    make_estimator,
)
from captum_lr.metrics import deletion_insertion, mu_fidelity


def grid_mask(px: int, cells: int) -> torch.Tensor:
    idx = torch.arange(px) * cells // px
    cell = (idx.view(-1, 1) * cells + idx.view(1, -1)).view(1, 1, px, px)
    return cell.expand(1, 3, px, px).contiguous()


def occlusion_geometry(px: int, rows: int) -> tuple[int, int]:
    for stride in range(1, px):
        window = 2 * stride
        if ((px - window) // stride + 1) ** 2 + 1 <= rows:
            return window, stride
    return px, px


def lr_est(n: int, seed: int) -> LREstimator:
    return LREstimator(n_samples=max(1, n), seed=seed, max_batch_size=32)


def methods(px: int):
    def base(task, kind):
        return black(px).unsqueeze(0) if kind == "black" else blur_baseline(task.x)

    m = {}
    m["LRSaliency (default)"] = lambda t, r, s: LRSaliency(t.prob, lr_est(r - 1, s)).attribute(t.x)
    m["LRIntegratedGradients (default, black)"] = lambda t, r, s: LRIntegratedGradients(
        t.prob, estimator=lr_est(r // 10 - 1, s)
    ).attribute(t.x, baselines=base(t, "black"), n_steps=10)
    m["NoiseTunnel(LRIntegratedGradients)"] = lambda t, r, s: NoiseTunnel(
        LRIntegratedGradients(t.prob, estimator=lr_est(r // 20 - 1, s))
    ).attribute(t.x, nt_samples=4, stdevs=0.1, baselines=base(t, "black"), n_steps=5)
    m["LRGradientShap (default)"] = lambda t, r, s: LRGradientShap(
        t.prob, estimator=lr_est(r // 10 - 1, s)
    ).attribute(t.x, torch.cat([base(t, "black"), base(t, "blur")]), n_samples=10, stdevs=0.0)
    m["LRIntegratedGradients grid14, blur (preset)"] = lambda t, r, s: LRIntegratedGradients(
        t.prob, estimator=make_estimator("grid14", seed=s, max_batch_size=32)
    ).attribute(t.x, baselines=base(t, "blur"), n_steps=max(1, r // 197))

    def occlusion(t, r, s):
        w, st = occlusion_geometry(px, r)
        return Occlusion(t.prob).attribute(
            t.x, sliding_window_shapes=(3, w, w), strides=(3, st, st),
            baselines=base(t, "black"), perturbations_per_eval=32,
        )

    m["Occlusion (black)"] = occlusion
    m["FeatureAblation (black)"] = lambda t, r, s: FeatureAblation(t.prob).attribute(
        t.x, baselines=base(t, "black"),
        feature_mask=grid_mask(px, int(math.sqrt(r - 1))), perturbations_per_eval=32,
    )
    m["ShapleyValueSampling (black)"] = lambda t, r, s: ShapleyValueSampling(t.prob).attribute(
        t.x, baselines=base(t, "black"), feature_mask=grid_mask(px, 14),
        n_samples=max(1, (r - 1) // 197), perturbations_per_eval=32,
    )
    for kind in ("black", "blur"):
        m[f"Lime ({kind})"] = lambda t, r, s, k=kind: Lime(
            t.prob, interpretable_model=SkLearnLasso(alpha=1e-4)
        ).attribute(
            t.x, baselines=base(t, k), feature_mask=grid_mask(px, 14),
            n_samples=r - 1, perturbations_per_eval=32,
        )
        m[f"KernelShap ({kind})"] = lambda t, r, s, k=kind: KernelShap(t.prob).attribute(
            t.x, baselines=base(t, k), feature_mask=grid_mask(px, 14),
            n_samples=r - 1, perturbations_per_eval=32,
        )
    m["RISE"] = lambda t, r, s: peers.rise(
        t.prob, t.x, r, torch.Generator().manual_seed(s), black(px)
    ).unsqueeze(0)
    m["GEEX-style IG (black)"] = lambda t, r, s: peers.geex(
        t.prob, t.x, r, torch.Generator().manual_seed(s), baseline=base(t, "black")
    ).unsqueeze(0)
    return m


def references(px: int):
    def prob_grad(task):
        return lambda z: torch.softmax(task.model(z), 1)[:, task.target]

    return {
        "white-box Saliency": lambda t: Saliency(prob_grad(t)).attribute(t.x.clone().requires_grad_()),
        "white-box IG (black)": lambda t: IntegratedGradients(prob_grad(t)).attribute(
            t.x, baselines=black(px).unsqueeze(0), n_steps=32, internal_batch_size=32
        ),
        "white-box IG (blur)": lambda t: IntegratedGradients(prob_grad(t)).attribute(
            t.x, baselines=blur_baseline(t.x), n_steps=32, internal_batch_size=32
        ),
        "random ranking": lambda t: torch.rand(t.x.shape, generator=torch.Generator().manual_seed(0)),
    }


def score(task, attr, px, n_subsets, seed):
    x = task.x[0]
    attr = attr.detach()[0].float()
    try:
        c = deletion_insertion(
            task.probs_batched, x, attr, black(px), blur_baseline(task.x)[0], pixels_per_step=px
        )
    except ValueError as err:
        return {"error": str(err)}
    mf = mu_fidelity(
        task.probs_batched, x, attr, black(px), n_subsets=n_subsets,
        generator=torch.Generator().manual_seed(seed),
    )
    return {
        "insertion": c.insertion_auc,
        "deletion": c.deletion_auc,
        "ins_minus_del": c.insertion_auc - c.deletion_auc,
        "mu_fidelity": mf,
    }


def main(argv=None) -> None:
    p = base_parser(__doc__)
    p.add_argument("--budgets", default="1000,4000")
    p.add_argument("--methods", default="", help="comma-separated subset")
    p.add_argument("--subsets", type=int, default=100, help="MuFidelity subsets")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = load_model(args.device)
    budgets = [int(b) for b in args.budgets.split(",")]
    table = methods(args.px)
    if args.methods:
        table = {k: v for k, v in table.items() if k in args.methods.split(";")}
    records = []
    for name in image_names(args.images):
        task = make_task(model, name, args.px, args.device)
        for label, fn in references(args.px).items():
            rec = {"image": name, "method": label, "budget": None, "rows": 0,
                   **score(task, fn(task), args.px, args.subsets, args.seed)}
            records.append(rec)
            print(name, label, {k: round(v, 3) for k, v in rec.items() if isinstance(v, float)}, flush=True)
        for label, fn in table.items():
            for rows in budgets:
                torch.manual_seed(args.seed)
                import numpy as np

                np.random.seed(args.seed)
                task.rows = 0
                t0 = time.perf_counter()
                attr = fn(task, rows, args.seed)
                spent, secs = task.rows, time.perf_counter() - t0
                rec = {"image": name, "method": label, "budget": rows, "rows": spent,
                       "seconds": secs, **score(task, attr, args.px, args.subsets, args.seed)}
                records.append(rec)
                print(name, label, rows, spent, {k: round(v, 3) for k, v in rec.items() if isinstance(v, float)}, flush=True)
    payload = summarise(records, budgets, args)
    write_results(args.out or f"faithfulness_{args.px}px", payload)


def summarise(records, budgets, args) -> dict:
    labels = list(dict.fromkeys(r["method"] for r in records))
    headers = ["method", "budget", "max rows", "insertion", "deletion", "ins - del", "MuFidelity"]
    out = []
    for label in labels:
        for b in sorted({r["budget"] for r in records if r["method"] == label}, key=lambda v: v or 0):
            rs = [r for r in records if r["method"] == label and r["budget"] == b and "error" not in r]
            if not rs:
                out.append([label, str(b), "-", "constant map", "", "", ""])
                continue
            cells = []
            for key in ("insertion", "deletion", "ins_minus_del", "mu_fidelity"):
                m, se = mean_se([r[key] for r in rs])
                cells.append(f"{m:.3f} ± {se:.3f}")
            out.append([label, "autograd" if b is None else str(b), str(max(r["rows"] for r in rs))] + cells)
    text = print_table(headers, out)
    return {"records": records, "table": text, "px": args.px, "budgets": budgets,
            "images": list(image_names(args.images)), "mufidelity_subsets": args.subsets}


if __name__ == "__main__":
    main()
