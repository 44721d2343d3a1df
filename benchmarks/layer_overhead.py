"""Layer perturbation overhead: LR layer attribution time over the forward time.

    python -m benchmarks.layer_overhead --px 112 --rows 1024 --batch-sizes 16,64

A layer method perturbs a layer's activation through a forward hook and runs
the rest of the network; every row it sends is a whole forward pass of the
model on the real input. This measures the wall time of
``LRLayerGradientXActivation`` (default estimator, ``max_batch_size`` = the
batch size) on a middle block of efficientnet-lite0, divided by the wall time
of running the same number of rows through the model at the same batch size
with nothing attached (the floor). Rows are counted by a forward pre-hook on
the model, so the floor gets exactly the rows the method sent. The two are
timed alternately ``--repeats`` times; the table gives the median ratio and
its range (the machine's cores are shared, so single timings are noisy).
"""

from __future__ import annotations

import statistics
import time

import torch

from benchmarks.common import (
    base_parser,
    load_model,
    make_task,
    print_table,
    write_results,
)
from captum_lr import LREstimator, LRLayerGradientXActivation


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _count_rows(model: torch.nn.Module) -> tuple[list[int], object]:
    seen = [0]

    def hook(_module, args):
        seen[0] += int(args[0].shape[0])

    return seen, model.register_forward_pre_hook(hook)


def layer_seconds(model, task, layer, n_samples, batch, device) -> tuple[float, int]:
    """Wall time and forward rows of one layer attribution."""
    est = LREstimator(n_samples=n_samples, max_batch_size=batch, seed=0)
    explainer = LRLayerGradientXActivation(model, layer, estimator=est)
    seen, handle = _count_rows(model)
    try:
        _sync(device)
        t0 = time.perf_counter()
        explainer.attribute(task.x, target=task.target)
        _sync(device)
        return time.perf_counter() - t0, seen[0]
    finally:
        handle.remove()


def forward_seconds(model, x, rows, batch, device) -> float:
    """Wall time of ``rows`` plain forward rows at ``batch`` rows per call
    (fresh inputs per call, as the method sends)."""
    with torch.no_grad():
        _sync(device)
        t0 = time.perf_counter()
        done = 0
        while done < rows:
            m = min(batch, rows - done)
            model(x.expand(m, *x.shape[1:]) + 0.0)
            done += m
        _sync(device)
    return time.perf_counter() - t0


def measure(model, task, layer, n_samples, batch, device, repeats) -> dict:
    layer_seconds(model, task, layer, 4, batch, device)  # warm-up
    ratios, lr_times, fwd_times = [], [], []
    rows = 0
    for _ in range(repeats):
        lr_s, rows = layer_seconds(model, task, layer, n_samples, batch, device)
        fwd_s = forward_seconds(model, task.x, rows, batch, device)
        ratios.append(lr_s / fwd_s)
        lr_times.append(lr_s)
        fwd_times.append(fwd_s)
    return {
        "batch_size": batch,
        "n_samples": n_samples,
        "rows": rows,
        "layer_s": statistics.median(lr_times),
        "forward_s": statistics.median(fwd_times),
        "ratio_median": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
    }


def main(argv=None) -> None:
    p = base_parser(__doc__)
    p.add_argument("--rows", type=int, default=1024, help="n_samples of the estimator")
    p.add_argument("--batch-sizes", default="16,64")
    p.add_argument("--block", type=int, default=8, help="index into model._blocks")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.device)
    task = make_task(model, "astronaut", args.px, args.device)
    layer = model._blocks[args.block]
    records = []
    for batch in [int(b) for b in args.batch_sizes.split(",")]:
        rec = measure(model, task, layer, args.rows, batch, args.device, args.repeats)
        records.append(rec)
        print(rec, flush=True)
    table = print_table(
        [
            "batch size",
            "forward rows",
            "forward only (s)",
            "LRLayerGradientXActivation (s)",
            "ratio (median)",
            "ratio (range)",
        ],
        [
            [
                str(r["batch_size"]),
                str(r["rows"]),
                f"{r['forward_s']:.2f}",
                f"{r['layer_s']:.2f}",
                f"{r['ratio_median']:.3f}",
                f"{r['ratio_min']:.3f}-{r['ratio_max']:.3f}",
            ]
            for r in records
        ],
    )
    write_results(
        args.out or f"layer_overhead_{args.device.split(':')[0]}_{args.px}px",
        {
            "layer": f"model._blocks[{args.block}]",
            "method": "LRLayerGradientXActivation",
            "load_average": list(__import__("os").getloadavg()),
            "records": records,
            "table": table,
        },
        module="layer_overhead",
    )


if __name__ == "__main__":
    main()
