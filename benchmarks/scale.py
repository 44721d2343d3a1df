"""captum_lr.scale on this machine's CPUs: examples per second of
attribute_dataset with 1 and 2 workers, rows per second of one attribution
over RayForward with 1 and 2 actors, and what Ray costs besides the forward.

    python -m benchmarks.scale                 # waits for a quiet machine
    python -m benchmarks.scale --quick         # a smoke run (not recorded)

The model is a small CNN (3x32x32 input, conv 3-64-64-64 with 3x3 kernels,
pooling, a linear head: about 80k parameters) whose forward dominates one
LRSaliency call (n_samples=1024: 1029 forward rows per example, in batches of
up to 128 rows; over RayForward n_samples=2048 on one image, in batches of 512
rows split over the actors). Every process runs one torch thread.
"""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path

import torch

from benchmarks.common import base_parser, print_table, write_results

PX = 32


def make_model() -> torch.nn.Module:
    """The benchmark CNN (fixed weights, seed 0)."""
    torch.manual_seed(0)
    c = 64
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, c, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(c, c, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(c, c, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(4),
        torch.nn.Flatten(),
        torch.nn.Linear(c * 16, 10),
    ).eval()


def make_explainer(n_samples: int = 256):
    from captum_lr import LREstimator, LRSaliency

    torch.set_num_threads(1)
    est = LREstimator(n_samples=n_samples, seed=0, max_batch_size=128)
    return LRSaliency(make_model(), estimator=est)


def load() -> float:
    return os.getloadavg()[0]


def wait_for_quiet(limit: float, minutes: float) -> float:
    """Waits (up to ``minutes``) for the 1-minute load average to fall below
    ``limit``; returns the load when it starts."""
    end = time.time() + 60 * minutes
    while load() >= limit and time.time() < end:
        print(f"load {load():.2f} >= {limit}: waiting", flush=True)
        time.sleep(30)
    return load()


def dataset_job(rows: list, workers: int, n_samples: int, out: Path) -> dict:
    import functools

    from captum_lr.scale import attribute_dataset
    from captum_lr.scale.store import read_table

    make = functools.partial(make_explainer, n_samples)
    t0 = time.perf_counter()
    s = attribute_dataset(
        make, rows, output=out / f"w{workers}", num_workers=workers,
        batch_size=2, threads_per_worker=1, show_progress=False,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    table = read_table(s.output).to_pydict()
    busy: dict[str, float] = {}
    for w, sec in zip(table["worker"], table["seconds"]):
        busy[w] = busy.get(w, 0.0) + sec
    compute = max(busy.values())
    return {
        "workers": workers,
        "examples": s.examples_done,
        "rows": s.rows,
        "wall_s": wall,
        "examples_per_s": s.examples_done / wall,
        "busiest_worker_compute_s": compute,
        "examples_per_s_compute": s.examples_done / compute,
        "overhead_s": wall - compute,
    }


def one_attribution(workers: int, n_samples: int) -> dict:
    from captum_lr import LREstimator, LRSaliency
    from captum_lr.scale import RayForward

    x = torch.rand(1, 3, PX, PX, generator=torch.Generator().manual_seed(0))
    est = dict(n_samples=n_samples, seed=0, max_batch_size=512)
    if workers == 0:  # in this process
        sal = LRSaliency(make_model(), estimator=LREstimator(**est))
        t0 = time.perf_counter()
        with torch.no_grad():
            sal.attribute(x, target=0)
        sec = time.perf_counter() - t0
        return {"actors": 0, "rows": sal.queries, "seconds": sec}
    t0 = time.perf_counter()
    with RayForward(make_model, num_workers=workers, threads_per_worker=1) as f:
        f(x)  # actors up
        start = time.perf_counter() - t0
        t0 = time.perf_counter()
        LRSaliency(f, estimator=LREstimator(**est)).attribute(x, target=0)
        sec = time.perf_counter() - t0
        return {"actors": workers, "rows": f.rows - 1, "seconds": sec,
                "actor_startup_s": start}  # fmt: skip


def main(argv=None) -> None:
    p = base_parser(__doc__)
    p.add_argument("--examples", type=int, default=32)
    p.add_argument("--n-samples", type=int, default=1024)
    p.add_argument("--rows", type=int, default=2048, help="RayForward n_samples")
    p.add_argument("--max-load", type=float, default=0.7)
    p.add_argument("--wait-minutes", type=float, default=20)
    p.add_argument("--quick", action="store_true")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    if a.quick:
        a.examples, a.n_samples, a.rows, a.wait_minutes = 4, 32, 512, 0
    load_before = wait_for_quiet(a.max_load, a.wait_minutes)
    import tempfile

    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray_start = time.perf_counter() - t0
    g = torch.Generator().manual_seed(0)
    rows = [(i, torch.rand(3, PX, PX, generator=g), i % 10) for i in range(a.examples)]
    t0 = time.perf_counter()
    payload = pickle.dumps([r[1].numpy() for r in rows])
    ser = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        jobs = [dataset_job(rows, w, a.n_samples, Path(tmp)) for w in (1, 2)]
    singles = [one_attribution(w, a.rows) for w in (0, 1, 2)]
    ray.shutdown()
    for s in singles:
        s["rows_per_s"] = s["rows"] / s["seconds"]
    result = {
        "model": "CNN 3x32x32, conv 3-64-64-64 (3x3), ~80k parameters",
        "explainer": f"LRSaliency, n_samples={a.n_samples}, max_batch_size=128",
        "ray_forward_explainer": f"LRSaliency, n_samples={a.rows}, "
        "max_batch_size=512, one 3x32x32 image",
        "load_avg_1min_before": load_before,
        "quiet_machine": load_before < a.max_load,
        "load_avg_1min_after": load(),
        "ray_init_s": ray_start,
        "inputs_pickle_s": ser,
        "inputs_pickle_bytes": len(payload),
        "dataset": jobs,
        "dataset_speedup": jobs[1]["examples_per_s"] / jobs[0]["examples_per_s"],
        "dataset_speedup_compute": jobs[1]["examples_per_s_compute"]
        / jobs[0]["examples_per_s_compute"],
        "ray_forward": singles,
        "ray_forward_speedup": singles[2]["rows_per_s"] / singles[1]["rows_per_s"],
    }
    print_table(
        ["workers", "examples", "wall s", "examples/s", "compute s", "overhead s"],
        [[str(j["workers"]), str(j["examples"]), f"{j['wall_s']:.1f}",
          f"{j['examples_per_s']:.2f}", f"{j['busiest_worker_compute_s']:.1f}",
          f"{j['overhead_s']:.1f}"] for j in jobs],
    )  # fmt: skip
    print_table(
        ["actors (0: in process)", "rows", "seconds", "rows/s"],
        [[str(s["actors"]), str(s["rows"]), f"{s['seconds']:.2f}",
          f"{s['rows_per_s']:.0f}"] for s in singles],
    )  # fmt: skip
    print(
        f"dataset speed-up {result['dataset_speedup']:.2f}x (compute only "
        f"{result['dataset_speedup_compute']:.2f}x); RayForward speed-up "
        f"{result['ray_forward_speedup']:.2f}x; ray.init {ray_start:.1f} s; "
        f"load {load_before:.2f} -> {result['load_avg_1min_after']:.2f}"
    )
    if not a.quick:
        path = write_results(a.out or "scale_cpu", result, module="scale")
        print("wrote", path)


if __name__ == "__main__":
    main()
