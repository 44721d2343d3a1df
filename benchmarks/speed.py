"""Speed and memory: LR attribution time over the model's own forward time.

    python -m benchmarks.speed --px 64 --budgets 256,1024,4096 --batch-sizes 16,64

For a fixed total of forward rows, the wall time of LRSaliency (default
estimator, max_batch_size = the batch size) and of LRMaskGradient (14 x 14
grid, blurred baseline, perturbations_per_eval = the batch size) divided by
the wall time of just running the same number of rows through the model at
the same batch size (the physical floor). Peak memory as n_samples grows at
a fixed batch size: on CPU the peak resident set of a fresh process per
setting, on CUDA torch.cuda.max_memory_allocated."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

import torch

from benchmarks.common import (
    base_parser,
    estimator_for_budget,
    load_model,
    make_task,
    print_table,
    write_results,
)
from benchmarks.report import plot_speed
from captum_lr import Grid, LREstimator, LRMaskGradient, LRSaliency, blur_baseline


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def raw_forward_seconds(model, x, rows, batch, device) -> float:
    z = x.expand(batch, *x.shape[1:]).contiguous()
    with torch.no_grad():
        model(z)
        sync(device)
        t0 = time.perf_counter()
        done = 0
        while done < rows:
            m = min(batch, rows - done)
            model(z[:m])
            done += m
        sync(device)
    return time.perf_counter() - t0


def lr_seconds(model, task, rows, batch, device) -> float:
    est = estimator_for_budget("default", task.x, rows, seed=0, max_batch_size=batch)
    explainer = LRSaliency(task.logit, est)
    LRSaliency(task.logit, LREstimator(n_samples=4, max_batch_size=batch)).attribute(
        task.x
    )  # warm-up
    est.queries = 0
    sync(device)
    t0 = time.perf_counter()
    explainer.attribute(task.x)
    sync(device)
    assert est.queries == est.queries_for(task.x) <= rows, (est.queries, rows)
    return time.perf_counter() - t0


def mask_seconds(task, rows, batch, device) -> float:
    explainer = LRMaskGradient(task.logit, seed=0)
    kwargs = dict(baselines=blur_baseline(task.x), feature_mask=Grid(14))
    explainer.attribute(task.x, n_samples=4, **kwargs)  # warm-up
    explainer.queries = 0
    sync(device)
    t0 = time.perf_counter()
    explainer.attribute(task.x, n_samples=rows, perturbations_per_eval=batch, **kwargs)
    sync(device)
    assert explainer.queries == rows, (explainer.queries, rows)
    return time.perf_counter() - t0


def _rss_mb() -> float:
    """Current resident set size of this process (Linux /proc), in MB."""
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def peak_memory_child(px: int, n_samples: int, batch: int, device: str) -> None:
    """In a fresh process: the peak resident set above the level just before
    the attribution (sampled every 2 ms by a thread), and ru_maxrss."""
    import threading

    model = load_model(device)
    task = make_task(model, "astronaut", px, device)
    explainer = LRSaliency(
        task.logit, LREstimator(n_samples=n_samples, max_batch_size=batch, seed=0)
    )
    LRSaliency(task.logit, LREstimator(n_samples=4, max_batch_size=batch)).attribute(
        task.x
    )  # warm-up: allocator, kernels
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    start = _rss_mb()
    peak = [start]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mb())
            done.wait(0.002)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    explainer.attribute(task.x)
    done.set()
    thread.join()
    peak[0] = max(peak[0], _rss_mb())
    out = {
        "rss_growth_mb": peak[0] - start,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if device.startswith("cuda"):
        out["cuda_peak_mb"] = (torch.cuda.max_memory_allocated() - base) / 2**20
    print(json.dumps(out))


def main(argv=None) -> None:
    p = base_parser(__doc__)
    p.add_argument("--budgets", default="256,1024,4096")
    p.add_argument("--batch-sizes", default="16,64")
    p.add_argument("--memory-samples", default="64,512,4096")
    p.add_argument("--child", default="", help=argparse_hidden)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        n, b = (int(v) for v in args.child.split(","))
        peak_memory_child(args.px, n, b, args.device)
        return
    model = load_model(args.device)
    task = make_task(model, "astronaut", args.px, args.device)
    records = []
    for batch in [int(b) for b in args.batch_sizes.split(",")]:
        for rows in [int(r) for r in args.budgets.split(",") if r]:
            raw = raw_forward_seconds(model, task.x, rows, batch, args.device)
            lr = lr_seconds(model, task, rows, batch, args.device)
            mask = mask_seconds(task, rows, batch, args.device)
            records.append(
                {
                    "batch_size": batch,
                    "rows": rows,
                    "forward_s": raw,
                    "lr_s": lr,
                    "ratio": lr / raw,
                    "mask_s": mask,
                    "mask_ratio": mask / raw,
                }
            )
            print(records[-1], flush=True)
    speed = print_table(
        [
            "batch size",
            "forward rows",
            "forward only (s)",
            "LRSaliency (s)",
            "ratio",
            "LRMaskGradient (s)",
            "ratio",
        ],
        [
            [
                str(r["batch_size"]),
                str(r["rows"]),
                f"{r['forward_s']:.2f}",
                f"{r['lr_s']:.2f}",
                f"{r['ratio']:.2f}",
                f"{r['mask_s']:.2f}" if "mask_s" in r else "-",
                f"{r['mask_ratio']:.2f}" if "mask_ratio" in r else "-",
            ]
            for r in records
        ]
        or [["-"] * 7],
    )
    memory = []
    for n in [int(v) for v in args.memory_samples.split(",")]:
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.speed",
            "--px",
            str(args.px),
            "--device",
            args.device,
            "--threads",
            str(args.threads or 1),
            "--child",
            f"{n},32",
        ]
        out = (
            subprocess.run(cmd, capture_output=True, text=True, check=True)
            .stdout.strip()
            .splitlines()[-1]
        )
        memory.append({"n_samples": n, "max_batch_size": 32, **json.loads(out)})
        print(memory[-1], flush=True)
    mem = print_table(
        [
            "n_samples",
            "max_batch_size",
            "peak RSS above start during attribute (MB)",
            "peak RSS (MB)",
        ]
        + (["CUDA peak (MB)"] if args.device.startswith("cuda") else []),
        [
            [
                str(m["n_samples"]),
                "32",
                f"{m['rss_growth_mb']:.0f}",
                f"{m['peak_rss_mb']:.0f}",
            ]
            + ([f"{m['cuda_peak_mb']:.0f}"] if "cuda_peak_mb" in m else [])
            for m in memory
        ],
    )
    payload = {
        "records": records,
        "memory": memory,
        "table": speed + "\n\n" + mem,
        "px": args.px,
    }
    path = write_results(
        args.out or f"speed_{args.device.split(':')[0]}_{args.px}px", payload, "speed"
    )
    if records:
        plot_speed(json.loads(path.read_text()), path.with_suffix(".png"))


argparse_hidden = "internal: measure peak memory for n_samples,batch in this process"

if __name__ == "__main__":
    main()
