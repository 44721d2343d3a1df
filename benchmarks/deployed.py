"""A deployed model explained with its float source as ``captum_lr.Surrogate``:
efficientnet-lite0 quantized to int8 by PyTorch's own post-training
quantization, at 112 px, on the eight held-out photos.

    nice -n 5 python -m benchmarks.deployed --images eval --px 112 \
        --budgets 10,100,1000 --reference-pairs 1024 --sigma 0.05 --threads 1
    python -m benchmarks.deployed --merge a.json b.json   # runs split by photo

Two int8 models of the same float source:

- ``static``: FX graph-mode static post-training quantization
  (``torch.ao.quantization.quantize_fx``, ``get_default_qconfig_mapping``,
  the oneDNN engine where the CPU has it), int8 weights *and* activations,
  calibrated on 32 crops and flips of the two tuning photos. Its output is a
  step function of the input (every activation is rounded to 8 bits), so the
  explained quantity is the gradient of its Gaussian smoothing at ``--sigma``
  (per coordinate, in the normalised input space): the reference is a
  high-budget Monte Carlo estimate of it (``reference_pairs`` antithetic
  Gaussian pairs of the int8 model, the float model's smoothed gradient by
  autograd as a control variate), with its own standard error.
- ``weights``: int8 weights only (per-channel symmetric, after folding batch
  norm, as ``static`` quantizes them), float activations: smooth, so its
  autograd gradient is an exact reference.

Per photo and budget (forward rows of the int8 model, by the estimator's own
``queries_for``): the cosine with the reference of the surrogate alone (the
float model's autograd gradient at the photo), of the prior-free default and
of the combination ``LREstimator(prior=Surrogate(float))``, all at the same
``sigma``. The explained output is the logit of the class the int8 model
predicts."""

from __future__ import annotations

import copy
import math
import time

import torch
import torch.nn.functional as F

from benchmarks.common import (
    TUNE_IMAGES,
    base_parser,
    estimator_for_budget,
    image_names,
    load_model,
    load_photo,
    mean_se,
    merge_parts,
    print_table,
    write_results,
)
from captum_lr import LREstimator, LRSaliency, Surrogate
from captum_lr.metrics import cosine

METHODS = (
    "surrogate_alone",
    "smoothed_surrogate_alone",
    "default",
    "combination",
    "combination_smoothed",
)


def plain_convs(model: torch.nn.Module) -> torch.nn.Module:
    """A copy whose ``Conv2dStaticSamePadding`` layers (an ``nn.Conv2d``
    subclass that pads and calls ``F.conv2d`` in its own ``forward``) are
    ``nn.Sequential(ZeroPad2d, nn.Conv2d)``: the same function, in modules FX
    quantization recognises (it fuses ``nn.Conv2d`` with the batch norm that
    follows and swaps it for a quantized conv; through the subclass it would
    trace a functional conv whose batch norm is not folded)."""
    from efficientnet_lite_pytorch.utils import Conv2dStaticSamePadding

    model = copy.deepcopy(model)
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, Conv2dStaticSamePadding):
                conv = torch.nn.Conv2d(
                    child.in_channels,
                    child.out_channels,
                    child.kernel_size,
                    child.stride,
                    child.padding,
                    child.dilation,
                    child.groups,
                    child.bias is not None,
                )
                conv.load_state_dict(child.state_dict())
                setattr(module, name, torch.nn.Sequential(child.static_padding, conv))
    return model.eval()


def quant_engine() -> str:
    """oneDNN where available (on this AVX-512 VNNI CPU 16 rows of lite0 at
    112 px take 0.12 s, qnnpack 0.31 s, fbgemm 2.8 s: its depthwise 5x5
    convolutions are slow), else qnnpack, else whatever torch has."""
    engines = torch.backends.quantized.supported_engines
    for name in ("onednn", "qnnpack", "x86", "fbgemm"):
        if name in engines:
            return name
    return engines[0]


def calibration_images(px: int, n: int = 32, seed: int = 0) -> torch.Tensor:
    """Random crops (and every other one flipped) of the tuning photos."""
    g = torch.Generator().manual_seed(seed)
    big = [load_photo(name, 256) for name in TUNE_IMAGES]
    out = []
    for k in range(n):
        im = big[k % len(big)]
        s = int(torch.randint(140, 257, (1,), generator=g))
        i, j = (int(torch.randint(0, 257 - s, (1,), generator=g)) for _ in range(2))
        crop = F.interpolate(
            im[:, :, i : i + s, j : j + s],
            size=(px, px),
            mode="bilinear",
            antialias=True,
        )
        out.append(crop.flip(3) if k % 2 else crop)
    return torch.cat(out)


def quantize_static(model: torch.nn.Module, calib: torch.Tensor) -> torch.nn.Module:
    """int8 weights and activations: FX graph-mode post-training quantization."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    engine = quant_engine()
    torch.backends.quantized.engine = engine
    prepared = prepare_fx(
        plain_convs(model),
        get_default_qconfig_mapping(engine),
        example_inputs=(calib[:1],),
    )
    with torch.no_grad():
        prepared(calib)
    return convert_fx(prepared)


def quantize_weights(model: torch.nn.Module) -> torch.nn.Module:
    """int8 weights only: batch norm folded into the convolutions (FX fusion),
    then every conv / linear weight rounded to 8 bits per output channel
    (symmetric), activations left in float."""
    from torch.ao.quantization.quantize_fx import fuse_fx

    fused = fuse_fx(plain_convs(model))
    with torch.no_grad():
        for module in fused.modules():
            w = getattr(module, "weight", None)
            if isinstance(w, torch.Tensor) and w.dim() in (2, 4):
                scale = w.abs().amax(dim=tuple(range(1, w.dim())), keepdim=True) / 127
                scale = scale.clamp_min(1e-12)
                w.copy_((w / scale).round().clamp(-127, 127) * scale)
    return fused.eval()


def surrogate_for_budget(fn, x, budget: int, sigma, seed: int):
    """The combination with the most samples whose call fits ``budget`` rows."""

    def make(n: int) -> LREstimator:
        return LREstimator(
            n_samples=n, sigma=sigma, prior=Surrogate(fn), seed=seed, max_batch_size=64
        )

    lo, hi = 0, budget
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if make(mid).queries_for(x) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return make(lo) if lo else None


def logit_of(model: torch.nn.Module, target: int):
    def fn(z: torch.Tensor) -> torch.Tensor:
        return model(z)[:, target]

    return fn


class Counter:
    """The int8 model's logit of one class, counting forward rows."""

    def __init__(self, model: torch.nn.Module, target: int):
        self.model, self.target, self.rows = model, target, 0

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        self.rows += z.shape[0]
        with torch.no_grad():
            return self.model(z)[:, self.target]


def smoothed_reference(
    int8, source, x, target, sigma, pairs, batch=64, seed=0, noise_pairs=256
) -> dict:
    """Gradient of ``E q(x + sigma eps)`` (``q`` the int8 logit) by antithetic
    Gaussian pairs, ``mean_k (q(x + s e_k) - q(x - s e_k)) / (2 s) e_k``
    (unbiased, Stein's identity), with its per-coordinate standard error from
    the spread of the samples and the cosine between its two halves. The
    float source's differences at the first ``noise_pairs`` points are kept
    for the row-noise figures: RMS of the antithetic half-differences of both
    models and of their difference, in logits (using the source as a control
    variate does not help: the difference is as rough as the int8 output)."""
    g = torch.Generator().manual_seed(seed)
    sums = [torch.zeros_like(x[0]), torch.zeros_like(x[0])]  # two halves
    sq = torch.zeros_like(x[0])
    half_q, half_f = [], []
    done = 0
    while done < pairs:
        k = min(batch // 2, pairs - done)
        eps = torch.randn((k, *x.shape[1:]), generator=g)
        z = torch.cat([x + sigma * eps, x - sigma * eps])
        with torch.no_grad():
            yq = int8(z)[:, target]
            dq = (yq[:k] - yq[k:]) / 2
            if done < noise_pairs:  # the row-noise figures need only a few
                yf = source(z)[:, target]
                half_q.append(dq)
                half_f.append((yf[:k] - yf[k:]) / 2)
        v = (dq / sigma).view(-1, 1, 1, 1) * eps
        sums[0 if done < pairs // 2 else 1] += v.sum(0)
        sq += (v * v).sum(0)
        done += k
    mean = (sums[0] + sums[1]) / pairs
    var = (sq / pairs - mean**2).clamp_min(0) * pairs / (pairs - 1)
    stderr = (var / pairs).sqrt()
    noise2, norm2 = float((stderr**2).sum()), float((mean**2).sum())
    half_q, half_f = torch.cat(half_q), torch.cat(half_f)
    return {
        "reference": mean.unsqueeze(0),
        "int8_rows": 2 * pairs,
        # E|ref|^2 = |truth|^2 + |noise|^2: the expected cos(ref, truth)
        "reference_norm": math.sqrt(norm2),
        "reference_noise_norm": math.sqrt(noise2),
        "reference_expected_cosine": math.sqrt(max(norm2 - noise2, 0.0) / norm2),
        "reference_split_half_cosine": float(
            cosine(sums[0].unsqueeze(0), sums[1].unsqueeze(0))[0]
        ),
        "row_noise_int8": float(half_q.pow(2).mean().sqrt()),
        "row_noise_float": float(half_f.pow(2).mean().sqrt()),
        "row_noise_difference": float((half_q - half_f).pow(2).mean().sqrt()),
    }


class SmoothedSource(torch.nn.Module):
    """The float source averaged over ``k`` fixed Gaussian perturbations of
    scale ``sigma``: differentiable, its gradient is the source's SmoothGrad,
    a surrogate matched to a smoothed target."""

    def __init__(self, source, x, sigma: float, k: int = 16, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        half = torch.randn((k // 2, *x.shape[1:]), generator=g) * sigma
        self.source, self.eps = source, torch.cat([half, -half])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        k = self.eps.shape[0]
        out = self.source((z.unsqueeze(1) + self.eps).flatten(0, 1))
        return out.view(z.shape[0], k, -1).mean(1)


def run(args) -> dict:
    torch.manual_seed(args.seed)
    source = load_model("cpu")
    calib = calibration_images(args.px)
    t0 = time.perf_counter()
    models = {}
    if "static" in args.models:
        models["static"] = quantize_static(source, calib)
    if "weights" in args.models:
        models["weights"] = quantize_weights(source)
    quantize_seconds = time.perf_counter() - t0
    budgets = [int(b) for b in args.budgets.split(",")]
    records = []
    for name in image_names(args.images):
        x = load_photo(name, args.px)
        xr = x.clone().requires_grad_()
        for kind, int8 in models.items():
            with torch.no_grad():
                target = int(int8(x).argmax())
                source_target = int(source(x).argmax())
            (prior,) = torch.autograd.grad(source(xr)[0, target], xr)
            sigma = "auto" if kind == "weights" else args.sigma
            smooth = SmoothedSource(source, x, args.sigma, seed=args.seed + 2)
            surrogates = {"combination": logit_of(source, target)}
            t1 = time.perf_counter()
            if kind == "weights":  # smooth: autograd is the exact reference
                (ref,) = torch.autograd.grad(int8(xr)[0, target], xr)
                info = {"reference_expected_cosine": 1.0}
            else:
                info = smoothed_reference(
                    int8,
                    source,
                    x,
                    target,
                    args.sigma,
                    args.reference_pairs,
                    seed=args.seed + 1,
                )
                ref = info.pop("reference")
                surrogates["combination_smoothed"] = logit_of(smooth, target)
                (sg,) = torch.autograd.grad(smooth(xr)[0, target], xr)
                info["smoothed_surrogate_cosine"] = float(cosine(sg, ref)[0])
                info["smoothed_vs_local_source"] = float(cosine(sg, prior)[0])
            info["reference_seconds"] = time.perf_counter() - t1
            c = float(cosine(prior, ref)[0])
            base = {
                "image": name,
                "model": kind,
                "target": target,
                "same_class_as_float": target == source_target,
                "sigma": sigma,
                "surrogate_cosine": c,
                **info,
            }
            print(f"{name:22s} {kind:8s} c={c:.3f} reference {info}", flush=True)
            for rows in budgets:
                ests = {
                    "default": estimator_for_budget(
                        "default",
                        x,
                        rows,
                        sigma=sigma,
                        seed=args.seed,
                        max_batch_size=64,
                    ),
                }
                for method, fn in surrogates.items():
                    ests[method] = surrogate_for_budget(fn, x, rows, sigma, args.seed)
                for method, est in ests.items():
                    if est is None:
                        continue
                    black_box = Counter(int8, target)
                    t2 = time.perf_counter()
                    out = LRSaliency(black_box, est).attribute(x, abs=False)
                    rec = {
                        **base,
                        "method": method,
                        "budget": rows,
                        "rows": black_box.rows,
                        "n_samples": est.n_samples,
                        "cosine": float(cosine(out, ref)[0]),
                        "seconds": time.perf_counter() - t2,
                    }
                    if method.startswith("combination"):
                        pc = est.last_prior_cosine
                        rec["estimated_prior_cosine"] = (
                            None if pc is None else float(pc[0])
                        )
                    records.append(rec)
                    print(
                        f"{name:22s} {kind:8s} {method:12s} {rows:5d} "
                        f"rows={black_box.rows:5d} cos={rec['cosine']:.3f} "
                        f"c={c:.3f}",
                        flush=True,
                    )
        summary = summarise(records, budgets)
        summary["settings"] = settings(args, quantize_seconds)
        write_results(args.out or f"deployed_{args.px}px", summary)
    return summarise(records, budgets, show=True)


def settings(args, quantize_seconds: float) -> dict:
    return {
        "sigma": args.sigma,
        "reference_pairs": args.reference_pairs,
        "reference_rows_int8": 2 * args.reference_pairs,
        "quant_engine": quant_engine(),
        "calibration": "32 crops/flips of the tuning photos (chelsea, coffee)",
        "quantize_seconds": quantize_seconds,
    }


def summarise(records, budgets, show=False) -> dict:
    out, tables = {}, []
    for kind in sorted({r["model"] for r in records}):
        mine = [r for r in records if r["model"] == kind]
        per_photo = {r["image"]: r for r in mine}
        rows = []
        for b in budgets:
            line = {"budget": b}
            line["surrogate_alone"] = mean_se(
                [r["surrogate_cosine"] for r in per_photo.values()]
            )
            sm = [
                r["smoothed_surrogate_cosine"]
                for r in per_photo.values()
                if "smoothed_surrogate_cosine" in r
            ]
            if sm:
                line["smoothed_surrogate_alone"] = mean_se(sm)
            for method in ("default", "combination", "combination_smoothed"):
                vals = [
                    r["cosine"]
                    for r in mine
                    if r["method"] == method and r["budget"] == b
                ]
                if vals:
                    line[method] = mean_se(vals)
            rows.append(line)
        ref = [r["reference_expected_cosine"] for r in per_photo.values()]
        out[kind] = {
            "summary": rows,
            "reference_expected_cosine": mean_se(ref),
            "top1_same_as_float": sum(
                r["same_class_as_float"] for r in per_photo.values()
            ),
            "photos": len(per_photo),
        }
        if kind == "static":
            for key in (
                "row_noise_int8",
                "row_noise_float",
                "row_noise_difference",
                "reference_split_half_cosine",
                "smoothed_vs_local_source",
                "reference_noise_norm",
                "reference_norm",
            ):
                out[kind][key] = mean_se([r[key] for r in per_photo.values()])
        head = (
            f"{kind}: reference's expected cosine with the truth "
            "{:.3f} +- {:.3f}".format(*out[kind]["reference_expected_cosine"])
            + f"; mean ± standard error over the {len(per_photo)} photos:\n"
        )
        if show:
            print("\n" + head)
        means = print_table(
            ["rows", "c", "c smoothed", "default", "comb.", "comb. smoothed"],
            [
                [
                    str(r["budget"]),
                    *(
                        "{:.3f} +- {:.3f}".format(*r[k]) if k in r else "-"
                        for k in METHODS
                    ),
                ]
                for r in rows
            ],
            echo=show,
        )
        tables.append(head + "\n" + means + "\n\n" + photo_table(mine, budgets))
    table = "\n\n".join(tables)
    return {"models": out, "records": records, "table": table}


def photo_table(records, budgets) -> str:
    """Per photo of one model: its class (= the float model's?), the
    reference's expected cosine, c, and default / combination per budget."""
    first = {r["image"]: r for r in reversed(records)}
    score = {(r["image"], r["method"], r["budget"]): r["cosine"] for r in records}
    rows = []
    for img, r in sorted(first.items()):
        same = "=" if r["same_class_as_float"] else "!="
        cells = [img, f"{r['target']} {same}", f"{r['reference_expected_cosine']:.3f}"]
        cells.append(f"{r['surrogate_cosine']:.3f}")
        for b in budgets:
            got = (score.get((img, m, b)) for m in ("default", "combination"))
            cells.append(" / ".join("-" if g is None else f"{g:.3f}" for g in got))
        rows.append(cells)
    heads = ["photo", "class (= float?)", "ref", "c"]
    heads += [f"default / comb @ {b}" for b in budgets]
    return print_table(heads, rows, echo=False)


def merge(paths: list[str], out: str) -> dict:
    """One table from the records of several part runs."""
    return merge_parts(paths, out, summarise, keep=("settings",))


def main() -> None:
    p = base_parser(__doc__)
    p.add_argument("--budgets", default="10,100,1000")
    p.add_argument("--sigma", type=float, default=0.05)
    p.add_argument("--reference-pairs", type=int, default=1024)
    p.add_argument("--models", default="static,weights")
    p.add_argument("--merge", nargs="+", default=None, help="result files to merge")
    args = p.parse_args()
    args.models = tuple(args.models.split(","))
    if args.merge:
        merge(args.merge, args.out or f"deployed_{args.px}px")
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    run(args)


if __name__ == "__main__":
    main()
