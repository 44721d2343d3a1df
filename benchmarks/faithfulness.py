"""Faithfulness at equal forward rows: deletion / insertion AUC and MuFidelity.

    python -m benchmarks.faithfulness --images eval --px 112 --budgets 1000,4000

Every method explains the softmax probability of the class the model predicts
at this resolution and is held to at most the budget in forward rows (counted
by wrapping the model, baselines and convergence passes included). Captum's
perturbation methods use a 14 x 14 grid feature mask (Occlusion: the densest
window grid that fits), black or blurred baselines; white-box Saliency and
IntegratedGradients use autograd (rows not limited) as the reference."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import torch
from captum._utils.models.linear_model import SkLearnLasso
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

from benchmarks import peers
from benchmarks.common import (
    RESULTS,
    base_parser,
    black,
    estimator_for_budget,
    image_names,
    load_model,
    make_task,
    mean_se,
    print_table,
    write_results,
)
from benchmarks.report import plot_faithfulness
from captum_lr import (
    Grid,
    LRGradientShap,
    LRIntegratedGradients,
    LRMaskGradient,
    LRSaliency,
    blur_baseline,
    make_estimator,
)
from captum_lr.estimation.presets import FIXED_SAMPLES, PRESETS
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


LR_CLASSES = ("saliency", "ig", "nt", "gradshap")


def lr_methods(px: int, lr_rows: dict) -> dict:
    """The captum_lr rows: each class with each named preset, n_samples set
    from the budget by the estimator's ``queries_for`` (a preset with a fixed
    sweep spends the budget on path steps, noise samples or baselines)."""

    def fit(preset, t, r, s, copies):
        z = t.x.expand(copies, *t.x.shape[1:])
        return estimator_for_budget(preset, z, r, seed=s, max_batch_size=32)

    def repeats(preset, t, r, per_copy):
        if preset not in FIXED_SAMPLES:
            return per_copy
        return max(1, r // make_estimator(preset).queries_for(t.x))

    def saliency(preset):
        def run(t, r, s):
            est = fit(preset, t, r, s, 1)
            return None if est is None else LRSaliency(t.prob, est).attribute(t.x)

        return run

    def ig(preset):
        def run(t, r, s):
            steps = repeats(preset, t, r, 10)
            est = fit(preset, t, r, s, steps)
            if est is None:
                return None
            return LRIntegratedGradients(t.prob, estimator=est).attribute(
                t.x, baselines=blur_baseline(t.x), n_steps=steps
            )

        return run

    def nt(preset):
        def run(t, r, s):
            steps = max(1, repeats(preset, t, r, 20) // 4)
            est = fit(preset, t, r, s, 4 * steps)
            if est is None:
                return None
            return NoiseTunnel(LRIntegratedGradients(t.prob, estimator=est)).attribute(
                t.x,
                nt_samples=4,
                stdevs=0.1,
                baselines=blur_baseline(t.x),
                n_steps=steps,
            )

        return run

    def gradshap(preset):
        def run(t, r, s):
            n = repeats(preset, t, r, 10)
            est = fit(preset, t, r, s, n)
            if est is None:
                return None
            bases = torch.cat([black(px).unsqueeze(0), blur_baseline(t.x)])
            return LRGradientShap(t.prob, estimator=est).attribute(
                t.x, bases, n_samples=n, stdevs=0.0
            )

        return run

    makers = {
        "saliency": ("LRSaliency", saliency),
        "ig": ("LRIntegratedGradients (blur)", ig),
        "nt": ("NoiseTunnel(LRIntegratedGradients) (blur)", nt),
        "gradshap": ("LRGradientShap (black, blur)", gradshap),
    }
    out = {}
    for cls, presets in lr_rows.items():
        label, make = makers[cls]
        for preset in presets:
            out[f"{label} [{preset}]"] = make(preset)
    return out


def methods(px: int, lr_rows: dict | None = None) -> dict:
    """Every method of the table: the captum_lr rows, then the peers."""

    def base(task, kind):
        return black(px).unsqueeze(0) if kind == "black" else blur_baseline(task.x)

    m = lr_methods(px, lr_rows or {c: list(PRESETS) for c in LR_CLASSES})

    def mask_method(**options):
        """Banzhaf values (or semivalues) of 14 x 14 cells over a blurred
        baseline (even rows: pairs)."""
        return lambda t, r, s: LRMaskGradient(t.prob, seed=s).attribute(
            t.x,
            baselines=blur_baseline(t.x),
            feature_mask=Grid(14),
            n_samples=r - r % 2,
            perturbations_per_eval=32,
            **options,
        )

    m["LRMaskGradient (blur) [grid14]"] = mask_method()
    # the mean of the Banzhaf value and the semivalue at keep probability 0.7
    m["LRMaskGradient (blur) [grid14, keep 0.5+0.7]"] = mask_method(
        keep_prob=(0.5, 0.7)
    )
    # the Banzhaf values of the log-odds of the probability (same queries)
    m["LRMaskGradient (blur) [grid14, logit]"] = mask_method(output_scale="logit")
    # the Banzhaf values of the angle arcsin(sqrt(p)) of the probability
    m["LRMaskGradient (blur) [grid14, angular]"] = mask_method(output_scale="angular")

    def occlusion(t, r, s):
        w, st = occlusion_geometry(px, r)
        return Occlusion(t.prob).attribute(
            t.x,
            sliding_window_shapes=(3, w, w),
            strides=(3, st, st),
            baselines=base(t, "black"),
            perturbations_per_eval=32,
        )

    m["Occlusion (black)"] = occlusion
    m["FeatureAblation (black)"] = lambda t, r, s: FeatureAblation(t.prob).attribute(
        t.x,
        baselines=base(t, "black"),
        feature_mask=grid_mask(px, int(math.sqrt(r - 1))),
        perturbations_per_eval=32,
    )
    m["ShapleyValueSampling (black)"] = lambda t, r, s: (
        None
        if r < 197
        else ShapleyValueSampling(t.prob).attribute(
            t.x,
            baselines=base(t, "black"),
            feature_mask=grid_mask(px, 14),
            n_samples=(r - 1) // 196,
            perturbations_per_eval=32,
        )
    )
    for kind in ("black", "blur"):
        m[f"Lime ({kind})"] = lambda t, r, s, k=kind: Lime(
            t.prob, interpretable_model=SkLearnLasso(alpha=1e-4)
        ).attribute(
            t.x,
            baselines=base(t, k),
            feature_mask=grid_mask(px, 14),
            n_samples=r - 1,
            perturbations_per_eval=32,
        )
        m[f"KernelShap ({kind})"] = lambda t, r, s, k=kind: KernelShap(
            t.prob
        ).attribute(
            t.x,
            baselines=base(t, k),
            feature_mask=grid_mask(px, 14),
            n_samples=r - 1,
            perturbations_per_eval=32,
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
        "white-box Saliency": lambda t: Saliency(prob_grad(t)).attribute(
            t.x.clone().requires_grad_()
        ),
        "white-box IG (black)": lambda t: IntegratedGradients(prob_grad(t)).attribute(
            t.x, baselines=black(px).unsqueeze(0), n_steps=32, internal_batch_size=32
        ),
        "white-box IG (blur)": lambda t: IntegratedGradients(prob_grad(t)).attribute(
            t.x, baselines=blur_baseline(t.x), n_steps=32, internal_batch_size=32
        ),
        "random ranking": lambda t: torch.rand(
            t.x.shape, generator=torch.Generator().manual_seed(0)
        ),
    }


def score(task, attr, px, n_subsets, seed):
    x = task.x[0]
    attr = attr.detach()[0].float()
    try:
        c = deletion_insertion(
            task.probs_batched,
            x,
            attr,
            black(px),
            blur_baseline(task.x)[0],
            pixels_per_step=px,
        )
    except ValueError as err:
        return {"error": str(err)}
    mf = mu_fidelity(
        task.probs_batched,
        x,
        attr,
        black(px),
        n_subsets=n_subsets,
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
    p.add_argument("--methods", default="", help="';'-separated subset of labels")
    p.add_argument("--presets", default="all", help="captum_lr presets: all or a,b")
    p.add_argument(
        "--classes",
        default=",".join(LR_CLASSES),
        help="captum_lr classes, each optionally with its own presets: "
        "saliency,ig,nt=default+grid14,gradshap=default",
    )
    p.add_argument("--subsets", type=int, default=100, help="MuFidelity subsets")
    p.add_argument(
        "--merge",
        default="",
        help="comma-separated result names of runs on parts of --images "
        "(same budgets and methods): write their records as one table to --out",
    )
    p.add_argument(
        "--replace",
        action="store_true",
        help="with --merge: a later part's record of a photo, method and "
        "budget replaces an earlier part's (a method re-run with new code)",
    )
    args = p.parse_args(argv)
    if args.merge:
        merge(args)
        return
    presets = list(PRESETS) if args.presets == "all" else args.presets.split(",")
    lr_rows = {}  # class -> presets; "nt=default+grid14" overrides --presets
    for item in filter(None, args.classes.split(",")):
        cls, _, names = item.partition("=")
        lr_rows[cls] = names.split("+") if names else presets
    for bad in [c for c in lr_rows if c not in LR_CLASSES] + [
        n for names in lr_rows.values() for n in names if n not in PRESETS
    ]:
        raise SystemExit(f"unknown captum_lr class or preset {bad!r}")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = load_model(args.device)
    budgets = [int(b) for b in args.budgets.split(",")]
    table = methods(args.px, lr_rows)
    if args.methods:
        table = {k: v for k, v in table.items() if k in args.methods.split(";")}
    records = []
    name_out = args.out or f"faithfulness_{args.px}px"

    def save(payload):
        path = write_results(name_out, payload, "faithfulness")
        plot_faithfulness(payload, path.with_suffix(".png"))

    for name in image_names(args.images):
        task = make_task(model, name, args.px, args.device)
        for label, fn in references(args.px).items():
            rec = {
                "image": name,
                "method": label,
                "budget": None,
                "rows": 0,
                **score(task, fn(task), args.px, args.subsets, args.seed),
            }
            records.append(rec)
            print(
                name,
                label,
                {k: round(v, 3) for k, v in rec.items() if isinstance(v, float)},
                flush=True,
            )
        for label, fn in table.items():
            for rows in budgets:
                torch.manual_seed(args.seed)
                np.random.seed(args.seed)
                task.rows = 0
                t0 = time.perf_counter()
                attr = fn(task, rows, args.seed)
                spent, secs = task.rows, time.perf_counter() - t0
                if attr is None:  # a fixed sweep larger than this budget
                    continue
                rec = {
                    "image": name,
                    "method": label,
                    "budget": rows,
                    "rows": spent,
                    "seconds": secs,
                    **score(task, attr, args.px, args.subsets, args.seed),
                }
                records.append(rec)
                print(
                    name,
                    label,
                    rows,
                    spent,
                    {k: round(v, 3) for k, v in rec.items() if isinstance(v, float)},
                    flush=True,
                )
        save(summarise(records, budgets, args))
    save(summarise(records, budgets, args, show=True))


def merge(args) -> None:
    """One table from runs on parts of the photos (one process per core) or
    of the methods (a new row scored on the photos of a committed table); the
    parts' commands are kept in the payload."""
    parts = [
        json.loads((RESULTS / f"{name}.json").read_text())
        for name in args.merge.split(",")
    ]
    for key in ("px", "budgets", "mufidelity_subsets"):
        values = {json.dumps(part[key]) for part in parts}
        if len(values) > 1:
            raise SystemExit(f"the parts differ in {key}: {sorted(values)}")
    records: dict = {}  # (photo, method, budget) -> record, in order
    replaced = set()
    for part in parts:
        for r in part["records"]:
            key = (r["image"], r["method"], r["budget"])
            if key in records and r["budget"] is None:
                continue  # a reference every part scores: the first part's
            if key in records and not getattr(args, "replace", False):
                raise SystemExit(f"a photo, method and budget is in two parts: {key}")
            if key in records:
                replaced.add(r["method"])
            records[key] = r
    args.px, args.subsets = parts[0]["px"], parts[0]["mufidelity_subsets"]
    payload = summarise(list(records.values()), parts[0]["budgets"], args, show=True)
    if replaced:
        payload["replaced"] = sorted(replaced)  # re-run in a later part
    payload["machine"] = parts[0]["machine"]  # where the runs ran
    payload["parts"] = [
        {
            "command": part["command"],
            "date": part["date"],
            "images": part["images"],
            **({"parts": part["parts"]} if "parts" in part else {}),
        }
        for part in parts
    ]
    path = write_results(args.out or f"faithfulness_{args.px}px", payload)
    plot_faithfulness(payload, path.with_suffix(".png"))


def family(label: str) -> str:
    """captum_lr, captum / RISE peer, other black box, or reference."""
    if label.startswith(("LR", "NoiseTunnel(LR")):
        return "captum_lr"
    if label.startswith("GEEX"):
        return "GEEX-style"
    if label.startswith(("white-box", "random")):
        return label
    return "Captum / RISE"


def peer_differences(records, best) -> list[tuple]:
    """For the best captum_lr row of each budget and every peer row at that
    budget: ``(budget, ours, peer, {photo: difference})``, the difference of
    insertion - deletion on each photo both scored (a peer's constant map
    leaves its photo out)."""
    score = {
        (r["method"], r["budget"], r["image"]): r["ins_minus_del"]
        for r in records
        if "error" not in r
    }
    out = []
    for (fam, b), (_, ours) in sorted(best.items(), key=lambda kv: kv[0][1] or 0):
        if fam != "captum_lr":
            continue
        peers = dict.fromkeys(
            r["method"]
            for r in records
            if r["budget"] == b
            and family(r["method"]) in ("Captum / RISE", "GEEX-style")
        )
        for peer in peers:
            diff = {
                img: score[(ours, b, img)] - score[(peer, b, img)]
                for (m, bb, img) in score
                if m == ours and bb == b and (peer, b, img) in score
            }
            out.append((b, ours, peer, diff))
    return out


def paired(records, best, show=False) -> str:
    """The best captum_lr row against every peer row at the same budget, on
    the photos both scored: mean difference of insertion - deletion, its
    standard error and the worst photo's difference."""
    rows = []
    for b, ours, peer, diff in peer_differences(records, best):
        if len(diff) < 2:
            continue
        m, se = mean_se(list(diff.values()))
        worst = min(diff, key=diff.get)
        rows.append(
            [
                str(b),
                ours,
                peer,
                f"{len(diff)}",
                f"{m:+.3f} ± {se:.3f}",
                f"{diff[worst]:+.3f} ({worst})",
            ]
        )
    head = "Best captum_lr row minus each peer, paired on the photos both scored:\n"
    return head + print_table(
        [
            "budget",
            "captum_lr",
            "peer",
            "photos",
            "ins - del difference",
            "worst photo",
        ],
        rows or [["-", "-", "-", "-", "-", "-"]],
        echo=show,
    )


def per_photo(records, best, show=False) -> str:
    """Each photo's difference of insertion - deletion, the best captum_lr row
    of the budget minus each peer (blank: not scored on both), and the worst
    photo's per peer."""
    diffs = peer_differences(records, best)
    photos = list(dict.fromkeys(r["image"] for r in records))
    out = []
    for b in dict.fromkeys(d[0] for d in diffs):
        cols = [(peer, diff) for bb, _, peer, diff in diffs if bb == b]
        ours = next(d[1] for d in diffs if d[0] == b)
        headers = ["photo"] + [peer for peer, _ in cols]
        rows = [
            [img] + [f"{diff[img]:+.3f}" if img in diff else "" for _, diff in cols]
            for img in photos
        ]
        worst = [f"{min(diff.values()):+.3f}" if diff else "" for _, diff in cols]
        rows.append(["worst"] + worst)
        out.append(
            f"Per photo at {b} rows: {ours} minus each peer (ins - del):\n"
            + print_table(headers, rows, echo=show)
        )
    return "\n\n".join(out)


def summarise(records, budgets, args, show=False) -> dict:
    labels = list(dict.fromkeys(r["method"] for r in records))
    headers = [
        "method",
        "budget",
        "max rows",
        "insertion",
        "deletion",
        "ins - del",
        "MuFidelity",
        "photos scored",
    ]
    out = []
    best: dict = {}  # (family, budget) -> (mean ins - del, label)
    for label in labels:
        for b in sorted(
            {r["budget"] for r in records if r["method"] == label}, key=lambda v: v or 0
        ):
            rs = [
                r
                for r in records
                if r["method"] == label and r["budget"] == b and "error" not in r
            ]
            n_all = sum(r["method"] == label and r["budget"] == b for r in records)
            if not rs:
                out.append([label, str(b), "-", "constant map", "", "", "", "0"])
                continue
            cells = []
            for key in ("insertion", "deletion", "ins_minus_del", "mu_fidelity"):
                m, se = mean_se([r[key] for r in rs])
                cells.append(f"{m:.3f} ± {se:.3f}")
            out.append(
                [
                    label,
                    "none" if b is None else str(b),
                    str(max(r["rows"] for r in rs)),
                ]
                + cells
                + [f"{len(rs)}/{n_all}"]
            )
            key = (family(label), b)
            m = mean_se([r["ins_minus_del"] for r in rs])[0]
            if len(rs) == n_all and (key not in best or m > best[key][0]):
                best[key] = (m, label)
    text = print_table(headers, out, echo=show)
    text += "\n\nBest insertion - deletion per family (rows scored on every photo):\n"
    text += print_table(
        ["family", "budget", "best ins - del", "method"],
        [
            [f, "none" if b is None else str(b), f"{m:.3f}", label]
            for (f, b), (m, label) in sorted(
                best.items(), key=lambda kv: (kv[0][1] or 0, kv[0][0])
            )
        ]
        or [["-", "-", "-", "-"]],
        echo=show,
    )
    text += "\n\n" + paired(records, best, show)
    if any(r["budget"] is not None for r in records):
        text += "\n\n" + per_photo(records, best, show)
    images = list(dict.fromkeys(r["image"] for r in records))
    return {
        "records": records,
        "table": text,
        "px": args.px,
        "budgets": budgets,
        "images": images,
        "complete": images == list(image_names(args.images)),
        "mufidelity_subsets": args.subsets,
    }


if __name__ == "__main__":
    main()
