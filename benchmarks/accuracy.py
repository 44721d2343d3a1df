"""Gradient accuracy vs forward rows: cosine with the autograd gradient.

    python -m benchmarks.accuracy --images eval --px 112 --budgets 100,1000,4000
    python -m benchmarks.accuracy --linear          # linear functions, d = 3072

Methods: every captum_lr preset of captum_lr.estimation.presets.PRESETS
(except those with a fixed sweep), the design="orthogonal-frequency" and
design="orthogonal-channels" options (what design="auto", the default, picks
for these photos at >= 960 samples per row, and below), NES, RGF (i.i.d. and
orthogonal), a GEEX-style estimator. All gradient estimators use the same
noise scale per coordinate, 1e-4 x the input's RMS (RGF's unit directions get
sqrt(d) times that step; GEEX: its own 0.3 on channel-shared masks). The
explained output is the logit of the class the model predicts at this
resolution."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch

from benchmarks import peers
from benchmarks.common import (
    RESULTS,
    base_parser,
    estimator_for_budget,
    image_names,
    load_model,
    make_task,
    mean_se,
    print_table,
    write_results,
)
from captum_lr import LRSaliency
from captum_lr.estimation.presets import PRESETS
from captum_lr.metrics import cosine

SIGMA_REL = 1e-4
SIGMA_SWEEP = (1e-3, 1e-4, 1e-5, 1e-6)
r"""Noise scales (times the input's RMS) of the per-photo sigma sweep: the
orthogonal design at each, so a photo where the default scale is off shows."""


PREVIOUS_DEFAULT = "captum_lr:orthogonal-channels"


def apply_default_switch(data: dict, results: Path = RESULTS) -> dict:
    """The records of a committed run made before design="auto" picked the
    frequency strata for photos, as today's default would read them.

    Such a run's ``default_switch`` field names the run with the new default's
    design on the same photos, seed and budgets (``source``, ``method``) and
    the budgets where ``"auto"`` now picks it (``budgets``). There its
    ``captum_lr:default`` records are the previous default's: they are
    relabelled ``previous`` (``captum_lr:orthogonal-channels``), and the
    source's records of ``method`` become ``captum_lr:default`` (marked with
    their ``source``). At other budgets (below 960 samples per row) the
    default is still the previous design: its records stay and are also
    listed under ``previous``.
    Runs without the field are returned as they are."""
    switch = data.get("default_switch")
    if not switch:
        return data
    source = json.loads((Path(results) / f"{switch['source']}.json").read_text())
    budgets = set(switch["budgets"])
    images = set(data["images"])
    if not budgets <= set(source["budgets"]) or set(source["images"]) != images:
        raise ValueError(
            f"default_switch: {switch['source']} does not cover the budgets "
            f"{sorted(budgets)} on the photos {sorted(images)}."
        )
    default = [  # first: tables list the methods in the records' order
        {**r, "method": "captum_lr:default", "source": switch["source"]}
        for r in source["records"]
        if r["method"] == switch["method"] and r["budget"] in budgets
    ]
    rest = [
        {**r, "method": switch["previous"]}
        if r["method"] == "captum_lr:default" and r["budget"] in budgets
        else r
        for r in data["records"]
    ]
    # below the switch the default is the previous design: the same records
    same = [
        {**r, "method": switch["previous"], "source": "captum_lr:default"}
        for r in data["records"]
        if r["method"] == "captum_lr:default" and r["budget"] not in budgets
    ]
    return {**data, "records": default + same + rest}


def lr_preset(name: str, sigma_rel: float | None = None, **overrides):
    def run(fn, x, rows, gen, seed):
        kw = {"seed": seed, "max_batch_size": 32, **overrides}
        if sigma_rel is not None:
            kw["sigma"] = sigma_rel * float(x.pow(2).mean().sqrt())
        est = estimator_for_budget(name, x, rows, **kw)
        if est is None:
            return None
        return LRSaliency(fn, est).attribute(x, abs=False)[0]

    return run


def sweep_name(sigma_rel: float) -> str:
    return f"sweep:orthogonal@{sigma_rel:g}"


def methods() -> dict:
    table = {f"captum_lr:{p}": lr_preset(p) for p in PRESETS}
    # the frequency strata (a design option, not a preset; issue 14)
    table["captum_lr:orthogonal-frequency"] = lr_preset(
        "default", design="orthogonal-frequency"
    )
    # the channel strata, the default before the frequency strata (and still
    # below 960 samples per row or 48 px)
    table[PREVIOUS_DEFAULT] = lr_preset("default", design="orthogonal-channels")
    for rel in SIGMA_SWEEP:
        table[sweep_name(rel)] = lr_preset("orthogonal", rel)

    def scale(x):
        return SIGMA_REL * float(x.pow(2).mean().sqrt())

    table["NES"] = lambda fn, x, r, g, s: peers.nes(fn, x, r, scale(x), g)

    def unit_scale(x):
        # RGF's directions have norm 1, not ~sqrt(d): the same step per
        # coordinate needs sqrt(d) times sigma (else float32 rounding dominates)
        return scale(x) * math.sqrt(x[0].numel())

    table["RGF"] = lambda fn, x, r, g, s: peers.rgf(fn, x, r, unit_scale(x), g)
    table["RGF-orth"] = lambda fn, x, r, g, s: peers.rgf(
        fn, x, r, unit_scale(x), g, True
    )
    table["GEEX-style"] = lambda fn, x, r, g, s: peers.geex(fn, x, r, g, path=False)
    return table


def run_images(args, save=lambda payload: None) -> dict:
    torch.manual_seed(args.seed)
    model = load_model(args.device)
    budgets = [int(b) for b in args.budgets.split(",")]
    table = methods()
    if args.methods:
        table = {k: v for k, v in table.items() if k in args.methods.split(",")}
    records = []
    for name in image_names(args.images):
        task = make_task(model, name, args.px, args.device)
        xr = task.x.clone().requires_grad_()
        (grad,) = torch.autograd.grad(model(xr)[0, task.target], xr)
        d = grad.numel()
        for method, fn in table.items():
            for rows in budgets:
                gen = torch.Generator().manual_seed(args.seed)
                task.rows = 0
                t0 = time.perf_counter()
                est = fn(task.logit, task.x, rows, gen, args.seed)
                if est is None:  # a fixed sweep larger than this budget
                    continue
                rec = {
                    "image": name,
                    "target": task.target,
                    "method": method,
                    "budget": rows,
                    "rows": task.rows,
                    "cosine": float(cosine(est.unsqueeze(0), grad)[0]),
                    "abs_map_cosine": float(
                        cosine(
                            est.abs().sum(0, keepdim=True).unsqueeze(0),
                            grad.abs().sum(1),
                        )[0]
                    ),
                    "seconds": time.perf_counter() - t0,
                    "sqrt_n_over_d": math.sqrt(min(rows, d) / d),
                }
                records.append(rec)
                print(
                    f"{name:16s} {method:22s} {rows:6d} rows={task.rows:6d} "
                    f"cos={rec['cosine']:.3f} |map| cos={rec['abs_map_cosine']:.3f}",
                    flush=True,
                )
        save(summarise(records, budgets, list(table), args))
    return summarise(records, budgets, list(table), args, show=True)


def summarise(records, budgets, names, args, show=False) -> dict:
    def stat(method, b, key="cosine"):
        vals = [r[key] for r in records if r["method"] == method and r["budget"] == b]
        return mean_se(vals) if vals else None

    headers = (
        ["method"]
        + [f"cos @ {b}" for b in budgets]
        + [f"ratio to NES @ {b}" for b in budgets]
    )
    rows_out = []
    for method in names:
        cells, ratios = [], []
        for b in budgets:
            got, nes = stat(method, b), stat("NES", b)
            if got is None:
                cells.append("- (sweep > budget)")
                ratios.append("")
                continue
            used = max(
                r["rows"] for r in records if r["method"] == method and r["budget"] == b
            )
            note = f" [{used} rows]" if used < b else ""
            cells.append(f"{got[0]:.3f} ± {got[1]:.3f}{note}")
            ratios.append(f"{got[0] / nes[0]:.2f}" if nes else "")
        rows_out.append([method] + cells + ratios)
    d = 3 * args.px * args.px
    rows_out.append(
        ["sqrt(n/d)"]
        + [f"{math.sqrt(min(b, d) / d):.3f}" for b in budgets]
        + [""] * len(budgets)
    )
    text = print_table(headers, rows_out, echo=show)
    images = list(dict.fromkeys(r["image"] for r in records))
    payload = {
        "records": records,
        "table": text,
        "px": args.px,
        "budgets": budgets,
        "images": images,
        "complete": images == list(image_names(args.images)),
    }
    per_photo = per_photo_table(records, budgets, show)
    if per_photo:
        payload["per_photo_table"] = per_photo
    return payload


def per_photo_table(records, budgets, show=False) -> str:
    """Per photo and budget: the default's cosine against NES's and against
    the best orthogonal design over the sigma sweep (which sigma), when the
    run has them."""
    cos = {(r["method"], r["budget"], r["image"]): r["cosine"] for r in records}
    sweep = [sweep_name(rel) for rel in SIGMA_SWEEP]
    images = list(dict.fromkeys(r["image"] for r in records))
    rows = []
    for image in images:
        for b in budgets:
            ours = cos.get(("captum_lr:default", b, image))
            nes = cos.get(("NES", b, image))
            swept = {m: cos[(m, b, image)] for m in sweep if (m, b, image) in cos}
            if ours is None or nes is None or not swept:
                continue
            best = max(swept, key=swept.get)
            rows.append(
                [
                    image,
                    str(b),
                    f"{ours:.3f}",
                    f"{nes:.3f}",
                    f"{swept[best]:.3f} ({best.split('@')[1]})",
                    f"{ours / nes:.2f}",
                    f"{ours / swept[best]:.2f}",
                ]
            )
    if not rows:
        return ""
    headers = [
        "photo",
        "rows",
        "default",
        "NES",
        "best orthogonal (sigma/RMS)",
        "default / NES",
        "default / best orthogonal",
    ]
    return print_table(headers, rows, echo=show)


def quasi_random_rows(w: torch.Tensor, budgets: list[int], seed: int) -> list[dict]:
    """Does a quasi-random design help? Gaussian directions from scrambled Sobol
    points (inverse normal CDF), one-sided, on the same linear functions: for
    f = w.x the estimate is (1/n) sum_k (w.u_k) u_k exactly. Measured against
    the i.i.d. limit; not a captum_lr option (see the README)."""
    import warnings

    from scipy.stats import norm, qmc

    reps, d = w.shape
    out = []
    for n in budgets:
        cs = []
        for r in range(reps):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # n not a power of two
                points = qmc.Sobol(d, scramble=True, seed=seed + r).random(n)
            u = torch.from_numpy(norm.ppf(points))
            g = ((u @ w[r]).unsqueeze(1) * u).mean(0)
            cs.append(float(cosine(g.unsqueeze(0), w[r : r + 1])[0]))
        m, se = mean_se(cs)
        theory = math.sqrt(n / (n + d + 1))
        out.append(
            {
                "design": "quasi-random gaussian (scrambled Sobol, one-sided)",
                "n": n,
                "cosine": m,
                "se": se,
                "theory": theory,
                "ratio": m / theory,
            }
        )
    return out


def run_linear(args) -> dict:
    """Linear functions in d = 3072 against sqrt(n/d) and sqrt(n/(n+d+1))."""
    d, reps = 3072, args.reps
    budgets = [int(b) for b in args.linear_budgets.split(",")]
    gen = torch.Generator().manual_seed(args.seed)
    w = torch.randn(reps, d, generator=gen, dtype=torch.float64)
    x = torch.zeros(reps, d, dtype=torch.float64)

    def f(z):
        return (z * w[: z.shape[0]]).sum(1) if z.shape[0] == reps else None

    records = []
    designs = {
        "orthogonal (one-sided)": dict(design="orthogonal", antithetic=False),
        "gaussian (one-sided)": dict(design="gaussian", antithetic=False),
        "gaussian (antithetic, n pairs)": dict(design="gaussian", antithetic=True),
    }
    for label, kw in designs.items():
        for n in budgets:
            from captum_lr import LREstimator

            est = LREstimator(
                n_samples=n, sigma=1.0, seed=args.seed, max_batch_size=4096, **kw
            )
            # one call per replicate row so every row has its own w
            cs = []
            for r in range(reps):
                (g,) = est(lambda z, r=r: z @ w[r], x[r : r + 1])
                cs.append(float(cosine(g, w[r : r + 1])[0]))
            m, se = mean_se(cs)
            theory = (
                math.sqrt(n / d)
                if "orthogonal" in label
                else math.sqrt(n / (n + d + 1))
            )
            records.append(
                {
                    "design": label,
                    "n": n,
                    "cosine": m,
                    "se": se,
                    "theory": theory,
                    "ratio": m / theory,
                }
            )
    records += quasi_random_rows(w, budgets, args.seed)
    rows_out = [
        [
            r["design"],
            str(r["n"]),
            f"{r['cosine']:.4f} ± {r['se']:.4f}",
            f"{r['theory']:.4f}",
            f"{r['ratio']:.3f}",
        ]
        for r in records
    ]
    text = print_table(["design", "n samples", "cosine", "theory", "ratio"], rows_out)
    return {"records": records, "table": text, "d": d, "replicates": reps}


def plot(payload: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = payload["records"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    names = list(dict.fromkeys(r["method"] for r in recs))
    colours = plt.cm.tab20.colors
    for k, method in enumerate(names):
        budgets = sorted({r["budget"] for r in recs if r["method"] == method})
        ys = [
            mean_se(
                [
                    r["cosine"]
                    for r in recs
                    if r["method"] == method and r["budget"] == b
                ]
            )[0]
            for b in budgets
        ]
        ax.plot(
            budgets,
            ys,
            marker="os^"[k % 3],
            ls="-" if method.startswith("captum_lr") else "--",
            color=colours[(2 * k) % 20 + (k >= 10)],
            label=method,
        )
    ax.set_xscale("log")
    ax.set_xlabel("forward rows")
    ax.set_ylabel("cosine with autograd gradient")
    ax.set_title(
        f"efficientnet-lite0, {payload['px']} px, {len(payload['images'])} photos"
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def merge(args) -> None:
    """One table from runs of one command on parts of the photos (one process
    per core); the parts' commands are kept in the payload."""
    parts = [
        json.loads((RESULTS / f"{name}.json").read_text())  # name or path
        for name in args.merge.split(",")
    ]
    if len({part["px"] for part in parts}) > 1:
        raise SystemExit("the parts were run at different resolutions")
    photos = [img for part in parts for img in part["images"]]
    if len(set(photos)) != len(photos):
        raise SystemExit(f"a photo is in more than one part: {photos}")
    args.px = parts[0]["px"]
    records = [r for part in parts for r in part["records"]]
    budgets = sorted({r["budget"] for r in records})
    names = list(dict.fromkeys(r["method"] for r in records))
    payload = summarise(records, budgets, names, args, show=True)
    payload["complete"] = photos == list(image_names(args.images))
    payload["machine"] = parts[0]["machine"]
    payload["parts"] = [
        {"command": part["command"], "date": part["date"], "images": part["images"]}
        for part in parts
    ]
    path = write_results(args.out or f"accuracy_{args.px}px", payload, "accuracy")
    plot(payload, path.with_suffix(".png"))


def main(argv=None) -> None:
    p = base_parser(__doc__)
    p.add_argument("--budgets", default="100,1000,4000")
    p.add_argument("--methods", default="", help="comma-separated subset")
    p.add_argument(
        "--merge",
        default="",
        help="result names of runs of one command on parts of the photos",
    )
    p.add_argument("--linear", action="store_true")
    p.add_argument("--reps", type=int, default=20, help="linear: random functions")
    p.add_argument("--linear-budgets", default="100,300,1000,2000,3072")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.linear:
        payload = run_linear(args)
        write_results(args.out or "accuracy_linear", payload, "accuracy")
        return
    if args.merge:
        merge(args)
        return
    name = args.out or f"accuracy_{args.px}px"

    def save(payload):
        path = write_results(name, payload, "accuracy")
        plot(payload, path.with_suffix(".png"))

    save(run_images(args, save))


if __name__ == "__main__":
    main()
