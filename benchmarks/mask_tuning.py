"""Issue 15 tuning of LRMaskGradient's region maps on the tuning photos.

    python -m benchmarks.mask_tuning --images tune --seeds 0,1,2 --threads 1
    python -m benchmarks.mask_tuning --from-records DIR --seeds 0,1,2,3,4,5,6,7

Insertion - deletion (faithfulness.py's protocol) per photo, seed and budget
of: the peers Lime (blur), KernelShap (blur), RISE ("peers" of --parts);
LRMaskGradient on 14 x 14 cells over a blurred baseline ("default"), its
queries (keep masks and outputs, in memory) re-estimated with other
estimators and output transforms ("offline"); LRMaskGradient with other keep
probabilities, blurs and grids ("api"). Every LRMaskGradient call explains
the probability (output_scale="identity", its default); "twoscale" adds
to a Grid(14) map a weighted Grid(7) map from a share of the rows. Each
method is paired with Lime (blur) on photo and seed. --from-records tables
*.jsonl records (a JSON object a line) instead of collecting them."""

from __future__ import annotations

import json
import math
import shlex
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import Lasso

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
from benchmarks.faithfulness import methods
from captum_lr import Grid, LRMaskGradient, blur_baseline
from captum_lr.metrics import deletion_insertion

REF = "Lime (blur)"
PEERS = (REF, "KernelShap (blur)", "RISE")
OFFLINE = (
    "ols;lasso=1e-4;lasso=3e-5;smooth=0.5;smooth=0.75;smooth=1.0;mix=1.0;pyr=1.0;"
    "logit;logit_smooth=0.75;sqrtprob;pow=0.25;pow=0.75;asin;log;sqrt_smooth=0.5;"
    "rankmix"
)
API = {  # label -> LRMaskGradient options (base: blur kernel and sigma)
    "keep 0.7": dict(keep_prob=0.7),
    "keep 0.3": dict(keep_prob=0.3),
    "keep 0.5+0.7": dict(keep_prob=(0.5, 0.7)),
    "keep .25+.5+.75": dict(keep_prob=(0.25, 0.5, 0.75)),
    "blur sigma 2.5": dict(base=(11, 2.5)),
    "blur k21 sigma 10": dict(base=(21, 10.0)),
    "grid 10": dict(grid=10),
    "grid 7": dict(grid=7),
}
TWO_SCALE = {  # share of the rows on Grid(7) -> weights of its map
    0.5: (0.5, 1.0, 2.0),
    0.25: (0.5, 1.0, 2.0),
}
MEANING = {  # a variant (A: its argument) -> what it is
    "Lime (blur)": "Captum Lime, Lasso(alpha=1e-4), 14 x 14 grid, blurred baseline",
    "KernelShap (blur)": "Captum KernelShap, 14 x 14 grid, blurred baseline",
    "RISE": "RISE (7 x 7 masks, keep 0.5, black)",
    "default": "LRMaskGradient, foldover Banzhaf values of p, 14 x 14 grid, blur",
    "ols": "least squares (with intercept) of p on the 196 keep indicators",
    "lasso=A": "sklearn Lasso(alpha=A) of p on the keep indicators",
    "smooth=A": "the ols map smoothed by a Gaussian of A cells",
    "mix=A": "the ols map plus A times it smoothed by a Gaussian of 1 cell",
    "pyr=A": "the ols map plus A times its 2 x 2-cell mean",
    "logit": "ols of the log-odds log(p / (1 - p))",
    "logit_smooth=A": "the logit map smoothed by a Gaussian of A cells",
    "sqrtprob": "ols of sqrt(p)",
    "pow=A": "ols of p ** A",
    "asin": "ols of the angle arcsin(sqrt(p))",
    "log": "ols of log(p)",
    "sqrt_smooth=A": "the sqrtprob map smoothed by a Gaussian of A cells",
    "rankmix": "the sum of the ranks of the ols and logit maps",
    "keep A": "keep_prob A instead of 0.5 (a+b: the mean of their semivalues)",
    "blur A": "blur_baseline(kernel k (11 unless named), sigma s), not (11, 5)",
    "grid A": "Grid(A) instead of Grid(14)",
    "2scale A": (
        "two-scale map, 'c' share of the rows on Grid(7) (seed + 1000), the rest "
        "on Grid(14) (seed); the Grid(14) map plus 'w' times the Grid(7) map / 4"
    ),
}
SCALES = (
    '"default" and the API variants ran LRMaskGradient with output_scale='
    '"identity" (the probability p, its default); the offline variants '
    're-estimate from the queries of "default"; "asin" is the angular scale '
    'arcsin(sqrt(p)) (what output_scale="angular" explains, and "auto" for a '
    'probability), estimated by least squares like "ols" (LRMaskGradient\'s '
    'own estimate of p is "default")'
)


def score(task, attr: torch.Tensor) -> dict:
    """insertion - deletion of a (C, H, W) map, or constant=True."""
    px, blur = task.x.shape[-1], blur_baseline(task.x)[0]
    args = (task.x[0], attr.detach().float(), black(px).to(blur.device), blur)
    try:
        c = deletion_insertion(task.probs_batched, *args, pixels_per_step=px)
    except ValueError:  # a constant map ranks nothing
        return {"constant": True}
    ins, dele = c.insertion_auc, c.deletion_auc
    return {"ins_minus_del": ins - dele, "ins": ins, "dele": dele}


def lr_mask(task, fn, seed, budget, base=(11, 5.0), grid=14, **options):
    return LRMaskGradient(fn, seed=seed).attribute(
        task.x,
        baselines=blur_baseline(task.x, *base),
        feature_mask=Grid(grid),
        n_samples=budget - budget % 2,
        perturbations_per_eval=32,
        output_scale="identity",
        **options,
    )


def smooth(v, s):
    g = v.view(1, 1, 14, 14).double()
    r = int(math.ceil(3 * s))
    k = torch.exp(-(torch.arange(-r, r + 1, dtype=torch.float64) ** 2) / (2 * s * s))
    g = F.pad(g, (r, r, r, r), mode="replicate")
    g = F.conv2d(g, (k / k.sum()).view(1, 1, 1, -1))
    return F.conv2d(g, (k / k.sum()).view(1, 1, -1, 1)).flatten()


def ols(M, y):
    X = torch.cat([torch.ones(M.shape[0], 1, dtype=torch.float64), M.double()], 1)
    return torch.linalg.lstsq(X, y.view(-1, 1)).solution[1:, 0]


def offline_maps(variants, M, y) -> dict:
    """The 196 cell values of each offline variant ("name" or "name=arg")."""
    lr = ols(M, y)
    logit = ols(M, torch.log(y.clamp(1e-12, 1 - 1e-12) / (1 - y).clamp(1e-12, 1)))
    up = F.interpolate(F.avg_pool2d(lr.view(1, 1, 14, 14), 2), scale_factor=2)
    maps = {  # name -> map of the argument
        "ols": lambda a: lr,
        "lasso": lambda a: torch.tensor(
            Lasso(alpha=a).fit(M.double().numpy(), y.numpy()).coef_
        ),
        "smooth": lambda a: smooth(lr, a),
        "mix": lambda a: lr + a * smooth(lr, 1.0),
        "pyr": lambda a: lr + a * up.flatten(),
        "logit": lambda a: logit,
        "logit_smooth": lambda a: smooth(logit, a),
        "sqrtprob": lambda a: ols(M, y.sqrt()),
        "pow": lambda a: ols(M, y.clamp_min(0) ** a),
        "asin": lambda a: ols(M, torch.asin(y.clamp(0, 1).sqrt())),
        "log": lambda a: ols(M, torch.log(y.clamp_min(1e-12))),
        "sqrt_smooth": lambda a: smooth(ols(M, y.sqrt()), a),
        "rankmix": lambda a: lr.argsort().argsort() + logit.argsort().argsort(),
    }
    out = {}
    for variant in variants:
        name, _, arg = variant.partition("=")
        if name not in maps:
            raise SystemExit(f"unknown offline variant {variant!r}")
        out[variant] = maps[name](float(arg) if arg else None)
    return out


def collect(task, seed, budget, parts, variants) -> list[dict]:
    """The records of one photo, seed and budget."""
    out = []

    def emit(method, run, rows=None):
        torch.manual_seed(seed)
        np.random.seed(seed)
        task.rows = 0
        attr = run()
        rec = {"photo": task.name, "method": method, "seed": seed, "budget": budget}
        rows = task.rows if rows is None else rows
        out.append({**rec, "rows": rows, **score(task, attr)})
        print(json.dumps(out[-1]), flush=True)

    if "peers" in parts:
        table = methods(task.x.shape[-1], {"saliency": []})  # no captum_lr rows
        for label in PEERS:
            emit(label, lambda f=table[label]: f(task, budget, seed)[0])
    if "offline" in parts:
        cells = LRMaskGradient.tensor_mask(task.x, Grid(14))[0, 0]
        masks, outputs = [], []

        def recording(z):  # task.prob keeping each query's cell mask and output
            moved = (z != task.x).any(1).flatten(1).double()
            kept = torch.zeros(z.shape[0], 196, dtype=torch.float64, device=z.device)
            masks.append(kept.index_add_(1, cells.flatten(), moved).eq(0).cpu())
            y = task.prob(z)
            outputs.append(y.double().cpu())
            return y

        emit("default", lambda: lr_mask(task, recording, seed, budget)[0])
        maps = offline_maps(variants, torch.cat(masks), torch.cat(outputs))
        for v, cell_values in maps.items():
            attr = cell_values.double()[cells.cpu()].expand(3, *cells.shape)
            emit(v, lambda a=attr: a)
    if "twoscale" in parts:
        for share, weights in TWO_SCALE.items():
            coarse_rows = int(budget * share)
            task.rows = 0
            fine = lr_mask(task, task.prob, seed, budget - coarse_rows)[0]
            coarse = lr_mask(task, task.prob, seed + 1000, coarse_rows, grid=7)[0]
            spent = task.rows
            for w in weights:
                label = f"2scale c{share} w{w}"
                emit(label, lambda a=fine + w * coarse / 4: a, rows=spent)
    if "api" in parts:
        for label, kw in API.items():
            emit(label, lambda kw=kw: lr_mask(task, task.prob, seed, budget, **kw)[0])
    return out


def load_records(folder, photos, seeds, budgets) -> tuple[list[dict], str]:
    """The *.jsonl records in folder of these photos, seeds and budgets, one
    per photo, method, seed and budget (a later line replaces an earlier)."""
    kept: dict = {}
    same = differ = 0
    for path in sorted(Path(folder).glob("*.jsonl")):
        for r in map(json.loads, path.read_text().splitlines()):
            key = (r["photo"], r["method"], r["seed"], r["budget"])
            if key[0] in photos and key[2] in seeds and key[3] in budgets:
                old = kept.get(key, {}).get("ins_minus_del")
                same += key in kept and old == r.get("ins_minus_del")
                differ += key in kept and old != r.get("ins_minus_del")
                kept[key] = r
    return list(kept.values()), (
        f"{same + differ} records were in the jsonl twice ({same} with equal, "
        f"{differ} with different values; the later kept)"
    )


def paired_table(records, budget, seeds, photos) -> str:
    """Per method: its (photo, seed) pairs with Lime (blur), mean ins - del,
    the mean (± se) and worst paired difference, the per-photo means."""
    by: dict = defaultdict(dict)
    for r in records:
        if r["budget"] == budget and r["seed"] in seeds and "ins_minus_del" in r:
            by[r["method"]][(r["photo"], r["seed"])] = r["ins_minus_del"]
    ref, rows = by.get(REF, {}), []
    for method, d in by.items():
        keys = [(p, s) for p in photos for s in seeds if (p, s) in d]
        keys = [k for k in keys if k in ref] or keys
        diff = {k: d[k] - ref[k] for k in keys if k in ref}
        cells = [method, str(len(keys)), f"{np.mean([d[k] for k in keys]):.3f}"]
        if diff:
            dm, se = mean_se(list(diff.values()))
            w = min(diff, key=diff.get)
            cells += [f"{dm:+.3f} ± {se:.3f}", f"{diff[w]:+.3f} ({w[0]} {w[1]})"]
        else:  # no Lime (blur) records: listed last
            dm, cells = -math.inf, cells + ["-", "-"]
        for p in photos:
            vals = [d[k] for k in keys if k[0] == p]
            cells.append(f"{np.mean(vals):.3f}" if vals else "")
        rows.append((-dm, cells))
    head = (
        f"{budget} rows: insertion - deletion (mean over n photo-seed pairs) "
        f"and its difference to {REF} paired on photo and seed; each method "
        f"on its own seeds among {','.join(map(str, seeds))} that {REF} also "
        "has (rows with different n average different seeds)\n"
    )
    headers = ["method", "n", "ins - del", f"minus {REF}", "worst pair", *photos]
    ordered = [c for _, c in sorted(rows, key=lambda r: r[0])]
    return head + print_table(headers, ordered, echo=False)


def coverage(records) -> str:
    """Which seeds, photos and budgets each method has records of."""
    seen: dict = defaultdict(set)
    for r in records:
        seen[r["method"]].add((r["photo"], r["budget"], r["seed"]))
    groups: dict = defaultdict(list)
    for method, s in seen.items():
        photos, budgets, seeds = (sorted({k[i] for k in s}) for i in range(3))
        run = len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1))
        listed = [f"{seeds[0]}-{seeds[-1]}" if run else ",".join(map(str, seeds))]
        listed += [", ".join(photos), ",".join(map(str, budgets))]
        desc = "seeds {} on {} at {} rows".format(*listed)
        if len(s) < len(photos) * len(budgets) * len(seeds):
            desc += " (not every photo, budget and seed)"
        groups[desc].append(method)
    return "; ".join(f"{d}: {', '.join(ms)}" for d, ms in groups.items())


def note(records, collected: str, dup: str) -> str:
    """What each variant is ("pow=0.25" under "pow=A", "keep 0.7" under
    "keep A"), the output scales, which records exist and how they ran."""
    keys = {}
    for name in (r["method"] for r in records):
        head, sep, _ = name.partition("=" if "=" in name else " ")
        keys[name if name in MEANING else head + sep + "A"] = None
    lines = [f"{k}: {MEANING[k]}" for k in keys if k in MEANING]
    lines += [SCALES, "Records: " + coverage(records), collected]
    return "\n".join(lines + ([dup] if dup else []))


def main(argv=None) -> None:
    p = base_parser(__doc__)
    p.set_defaults(images="tune")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--budgets", default="1000,4000")
    p.add_argument("--parts", default="peers,offline,api")
    p.add_argument("--variants", default=OFFLINE, help="';'-separated offline")
    p.add_argument("--from-records", default="", help="folder of *.jsonl records")
    p.add_argument("--collected", default="", help="where and how records ran")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    photos = image_names(args.images)
    seeds = [int(s) for s in args.seeds.split(",")]
    budgets = [int(b) for b in args.budgets.split(",")]
    records, dup = [], ""
    if args.from_records:
        records, dup = load_records(args.from_records, photos, seeds, budgets)
    collected = args.collected or "Collected by this command (machine, date)."

    def save(show=False):
        table = "\n\n".join(paired_table(records, b, seeds, photos) for b in budgets)
        if show:
            print(table, flush=True)
        payload = {"records": records, "table": table, "px": args.px}
        payload.update(seeds=seeds, budgets=budgets, images=list(photos))
        payload["note"] = note(records, collected, dup)
        line = shlex.join(sys.argv[1:] if argv is None else argv)
        payload["command"] = f"python -m benchmarks.mask_tuning {line}"
        write_results(args.out or f"mask_tuning_{args.px}px", payload, "mask_tuning")

    model = None if args.from_records else load_model(args.device)
    parts, variants = args.parts.split(","), args.variants.split(";")
    for name in photos if model is not None else ():
        task = make_task(model, name, args.px, args.device)
        for seed, b in ((s, b) for s in seeds for b in budgets):
            records += collect(task, seed, b, parts, variants)
        save()
    save(show=True)


if __name__ == "__main__":
    main()
