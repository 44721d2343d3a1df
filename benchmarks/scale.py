"""captum_lr.scale on this machine's CPUs: examples per second of
attribute_dataset with 1 and 2 workers, rows per second of one attribution
over RayForward with 1 and 2 actors, and what Ray costs besides the forward.

    python -m benchmarks.scale                 # waits for a quiet machine
    python -m benchmarks.scale --only ray-forward   # keeps the dataset rows
    python -m benchmarks.scale --quick         # a smoke run (not recorded)

The model is a small CNN (3x32x32 input, conv 3-64-64-64 with 3x3 kernels,
pooling, a linear head: about 80k parameters) whose forward dominates one
LRSaliency call (n_samples=1024: 1029 forward rows per example, in batches of
up to 128 rows; over RayForward n_samples=2048 on one image, in batches of 512
rows split over the actors, with one batch at a time and with RayForward's
default of 2 in flight, the median of --repeats runs on warm actors). Every
process runs one torch thread. Ray's workers run at the driver's niceness
(RAY_worker_niceness=0; Ray's default puts them 15 above it), so that a run
under ``nice -n -15`` gives the workers the priority it gives the driver.
"""

from __future__ import annotations

import json
import os
import pickle
import statistics
import subprocess
import time
from pathlib import Path

import torch

from benchmarks.common import RESULTS, base_parser, print_table, write_results

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


def uptime() -> str:
    """``uptime``'s line (the load averages), or the load averages alone."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load average: " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def scheduling() -> str:
    """This process's niceness and its autogroup's (the kernel shares the
    CPUs between autogroups first, so ``nice`` alone does not put a job above
    other sessions' jobs)."""
    group = ""
    try:
        group = Path("/proc/self/autogroup").read_text().strip()
    except OSError:
        pass
    return f"nice {os.nice(0)}; {group or 'no autogroup'}"


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


def in_process(n_samples: int, repeats: int, batch: int) -> dict:
    """One attribution in this process (the reference row, actors 0)."""
    from captum_lr import LREstimator, LRSaliency

    x = torch.rand(1, 3, PX, PX, generator=torch.Generator().manual_seed(0))
    est = dict(n_samples=n_samples, seed=0, max_batch_size=batch)
    times = []
    for _ in range(repeats):
        sal = LRSaliency(make_model(), estimator=LREstimator(**est))
        t0 = time.perf_counter()
        with torch.no_grad():
            sal.attribute(x, target=0)
        times.append(time.perf_counter() - t0)
    return {"max_batch_size": batch, "actors": 0, "max_in_flight": None,
            "rows": sal.queries,
            "seconds": statistics.median(times), "all_seconds": times,
            "torch_threads": torch.get_num_threads()}  # fmt: skip


def ray_forward_runs(
    n_samples: int, repeats: int, batch_sizes: list[int], depths=(1, 2)
) -> list[dict]:
    """One attribution over RayForward with 1 and 2 actors, for each
    ``max_batch_size`` with ``depths`` batches in flight: both pools are up
    and warm (every actor has run the model) before the first timed run, and
    the runs go round the settings ``repeats`` times, so that a change of the
    machine's load falls on all of them."""
    from captum_lr import LREstimator, LRSaliency
    from captum_lr.scale import RayForward

    x = torch.rand(1, 3, PX, PX, generator=torch.Generator().manual_seed(0))
    pools, startup = {}, {}
    for workers in (1, 2):
        t0 = time.perf_counter()
        # half a logical CPU each: both pools fit Ray's 2 CPUs (each actor
        # runs one torch thread whatever it reserves)
        f = RayForward(make_model, num_workers=workers, num_cpus_per_worker=0.5,
                       threads_per_worker=1)  # fmt: skip
        f(x.repeat(workers * f.min_rows_per_worker, 1, 1, 1))  # every actor
        pools[workers], startup[workers] = f, time.perf_counter() - t0
    times: dict[tuple[int, int, int], list[float]] = {}
    rows = {}
    for _ in range(repeats):
        for batch in batch_sizes:
            est = dict(n_samples=n_samples, seed=0, max_batch_size=batch)
            for workers, f in pools.items():
                for depth in depths:
                    f.max_in_flight, before = depth, f.rows
                    t0 = time.perf_counter()
                    LRSaliency(f, estimator=LREstimator(**est)).attribute(x, target=0)
                    sec = time.perf_counter() - t0
                    times.setdefault((batch, workers, depth), []).append(sec)
                    rows[workers] = f.rows - before
    for f in pools.values():
        f.close()
    return [
        {
            "max_batch_size": b,
            "actors": w,
            "max_in_flight": d,
            "rows": rows[w],
            "seconds": statistics.median(t),
            "all_seconds": t,
            "actor_startup_s": startup[w],
        }
        for (b, w, d), t in times.items()
    ]


def previous_dataset_rows(out: str | None) -> dict:
    """The dataset job's results of the last full run (``--only
    ray-forward`` keeps them), with that run's command, date and load."""
    path = RESULTS / f"{out or 'scale_cpu'}.json"
    if not path.exists():
        return {}
    old = json.loads(path.read_text())
    if "dataset" not in old:
        return {}
    keep = ("explainer", "dataset", "dataset_speedup", "dataset_speedup_compute")
    origin = old.get("dataset_measured_by") or {
        "command": old.get("command"),
        "date": old.get("date"),
        "load_avg_1min_before": old.get("load_avg_1min_before"),
        "load_avg_1min_after": old.get("load_avg_1min_after"),
        "ray_init_s": old.get("ray_init_s"),
    }
    return {**{k: old[k] for k in keep if k in old}, "dataset_measured_by": origin}


def speedups(singles: list[dict]) -> dict[str, dict[str, float]]:
    """Per ``max_batch_size`` and batches in flight, 2 actors' rows/s over
    1 actor's."""
    by = {
        (s["max_batch_size"], s["actors"], s["max_in_flight"]): s["rows_per_s"]
        for s in singles
    }
    out: dict[str, dict[str, float]] = {}
    for b, w, d in by:
        if w == 2:
            out.setdefault(str(b), {})[str(d)] = by[(b, 2, d)] / by[(b, 1, d)]
    return out


def main(argv=None) -> None:
    p = base_parser(__doc__)
    p.add_argument("--examples", type=int, default=32)
    p.add_argument("--n-samples", type=int, default=1024)
    p.add_argument("--rows", type=int, default=2048, help="RayForward n_samples")
    p.add_argument("--repeats", type=int, default=3, help="RayForward runs each")
    p.add_argument(
        "--ray-batch-sizes",
        default="512,64",
        help="RayForward max_batch_size values (the first is the headline)",
    )
    p.add_argument(
        "--only",
        choices=("all", "ray-forward"),
        default="all",
        help="ray-forward: keep the dataset rows of the results file",
    )
    p.add_argument("--note", default="", help="recorded with the results")
    p.add_argument("--max-load", type=float, default=0.7)
    p.add_argument("--wait-minutes", type=float, default=20)
    p.add_argument("--quick", action="store_true")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    if a.quick:
        a.examples, a.n_samples, a.rows, a.wait_minutes = 4, 32, 512, 0
        a.repeats = 1
    load_before = wait_for_quiet(a.max_load, a.wait_minutes)
    uptime_before = uptime()
    import tempfile

    import ray

    os.environ.setdefault("RAY_worker_niceness", "0")
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray_start = time.perf_counter() - t0
    g = torch.Generator().manual_seed(0)
    rows = [(i, torch.rand(3, PX, PX, generator=g), i % 10) for i in range(a.examples)]
    t0 = time.perf_counter()
    payload = pickle.dumps([r[1].numpy() for r in rows])
    ser = time.perf_counter() - t0
    dataset: dict = {}
    if a.only == "all":
        with tempfile.TemporaryDirectory() as tmp:
            jobs = [dataset_job(rows, w, a.n_samples, Path(tmp)) for w in (1, 2)]
        dataset = {
            "dataset": jobs,
            "dataset_speedup": jobs[1]["examples_per_s"] / jobs[0]["examples_per_s"],
            "dataset_speedup_compute": jobs[1]["examples_per_s_compute"]
            / jobs[0]["examples_per_s_compute"],
        }
    elif not a.quick:
        dataset = previous_dataset_rows(a.out)
    batches = [int(b) for b in a.ray_batch_sizes.split(",")]
    singles = [in_process(a.rows, a.repeats, batches[0])]
    singles += ray_forward_runs(a.rows, a.repeats, batches)
    ray.shutdown()
    for s in singles:
        s["rows_per_s"] = s["rows"] / s["seconds"]
    result = {
        "model": "CNN 3x32x32, conv 3-64-64-64 (3x3), ~80k parameters",
        "explainer": f"LRSaliency, n_samples={a.n_samples}, max_batch_size=128",
        **dataset,
        "ray_forward_explainer": f"LRSaliency, n_samples={a.rows}, "
        f"max_batch_size {a.ray_batch_sizes}, one 3x32x32 image; median of "
        f"{a.repeats} runs per setting on warm actors",
        "load_avg_1min_before": load_before,
        "quiet_machine": load_before < a.max_load,
        "load_avg_1min_after": load(),
        "uptime_before": uptime_before,
        "uptime_after": uptime(),
        "scheduling": scheduling(),
        "ray_worker_niceness": os.environ["RAY_worker_niceness"],
        "ray_init_s": ray_start,
        "inputs_pickle_s": ser,
        "inputs_pickle_bytes": len(payload),
        "ray_forward": singles,
        "ray_forward_speedup": speedups(singles)[str(batches[0])]["2"],
        "ray_forward_speedups": speedups(singles),
    }
    table = tables(result, a)
    print(table)
    if a.note:
        result["note"] = a.note
        table += f"\n{a.note}\n"
    result["table"] = table
    if not a.quick:
        path = write_results(a.out or "scale_cpu", result, module="scale")
        print("wrote", path)


def tables(result: dict, a) -> str:
    """The results as Markdown tables and a summary line."""
    text = ""
    if "dataset" in result:
        jobs = result["dataset"]
        origin = result.get("dataset_measured_by")
        when = f" (from `{origin['command']}`, {origin['date']})" if origin else ""
        text += (
            f"Dataset job ({result['explainer']}, {jobs[0]['examples']} images "
            f"of 3×32×32){when}:\n\n"
        )
        text += print_table(
            ["workers", "examples", "wall s", "examples/s", "compute s", "overhead s"],
            [[str(j["workers"]), str(j["examples"]), f"{j['wall_s']:.1f}",
              f"{j['examples_per_s']:.2f}", f"{j['busiest_worker_compute_s']:.1f}",
              f"{j['overhead_s']:.1f}"] for j in jobs], echo=False,
        ) + "\n\n"  # fmt: skip
    singles = result["ray_forward"]
    text += (
        f"One attribution over RayForward (LRSaliency, n_samples={a.rows}; "
        "actors 0 = in this process, "
        f"{singles[0]['torch_threads']} torch thread(s); median of {a.repeats} "
        "runs on warm actors):\n\n"
    )
    text += print_table(
        ["max_batch_size", "actors (0: in process)", "batches in flight", "rows",
         "seconds", "rows/s"],
        [[str(s["max_batch_size"]), str(s["actors"]),
          str(s["max_in_flight"] or "-"), str(s["rows"]), f"{s['seconds']:.2f}",
          f"{s['rows_per_s']:.0f}"] for s in singles],
        echo=False,
    )  # fmt: skip
    parts = []
    if "dataset_speedup" in result:
        parts.append(
            f"dataset speed-up {result['dataset_speedup']:.2f}x (compute only "
            f"{result['dataset_speedup_compute']:.2f}x)"
        )
    for batch, by_depth in result["ray_forward_speedups"].items():
        ratios = ", ".join(f"{r:.2f}x with {d} in flight" for d, r in by_depth.items())
        parts.append(f"RayForward speed-up at batch {batch}: {ratios}")
    parts.append(f"ray.init {result['ray_init_s']:.1f} s")
    parts.append(f"{result['scheduling']}")
    parts.append(
        f"load {result['load_avg_1min_before']:.2f} -> "
        f"{result['load_avg_1min_after']:.2f}"
    )
    return text + "\n\n" + "; ".join(parts) + "\n"


if __name__ == "__main__":
    main()
