"""Per photo over seeds: how far one seed's faithfulness moves.

    python -m benchmarks.seed_spread --runs faithfulness_112px:0,NAME:1,NAME:2

Reads committed faithfulness results (``name:seed``, one run per seed) and,
per budget and photo, tables insertion - deletion of one method (--method)
and of a reference peer (--peer) over the seeds: the method's mean, the
peer's mean, their paired difference (mean ± standard error over seeds, its
worst seed), and the peer's own spread (max - min over seeds, and its worst
difference to its own first seed: what the peer scores against itself).
Nothing is run; the table only reads the records."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np

from benchmarks.common import RESULTS, base_parser, mean_se, print_table, write_results

METHOD = "LRMaskGradient (blur) [grid14]"
PEER = "Lime (blur)"


def load_runs(runs: list[tuple[str, int]]) -> dict:
    """``{(method, budget, photo): {seed: ins - del}}`` of the named results."""
    out: dict = defaultdict(dict)
    for name, seed in runs:
        data = json.loads((RESULTS / f"{name}.json").read_text())
        for r in data["records"]:
            if "ins_minus_del" in r and r["budget"] is not None:
                key = (r["method"], r["budget"], r["image"])
                if seed in out[key]:
                    raise SystemExit(f"seed {seed} of {key} is in two runs")
                out[key][seed] = r["ins_minus_del"]
    return out


def spread_table(scores: dict, budget: int, method: str, peer: str) -> tuple:
    """The per-photo rows of one budget and each photo's mean difference."""
    photos = sorted({k[2] for k in scores if k[1] == budget})
    rows, worst_mean = [], []
    for photo in photos:
        ours = scores.get((method, budget, photo), {})
        ref = scores.get((peer, budget, photo), {})
        seeds = sorted(set(ours) & set(ref))
        if not seeds:
            continue  # a peer with no score there (a constant map)
        diff = [ours[s] - ref[s] for s in seeds]
        dm, se = mean_se(diff)
        first = min(ref)
        own = [ref[s] - ref[first] for s in sorted(ref) if s != first]
        worst_mean.append(dm)
        rows.append(
            [
                photo,
                str(len(seeds)),
                f"{np.mean([ours[s] for s in seeds]):.3f}",
                f"{np.mean([ref[s] for s in seeds]):.3f}",
                f"{dm:+.3f} ± {se:.3f}",
                f"{min(diff):+.3f} (seed {seeds[int(np.argmin(diff))]})",
                f"{max(ref.values()) - min(ref.values()):.3f}",
                f"{min(own, default=0.0):+.3f}",
            ]
        )
    return rows, worst_mean


def self_failures(scores: dict, budget: int, peer: str) -> dict:
    """``{seed: [photos]}``: where the peer at a later seed is behind its own
    first seed by more than 0.05 (the peer against itself)."""
    out: dict = defaultdict(list)
    for (method, b, photo), by_seed in sorted(scores.items()):
        if method == peer and b == budget:
            first = min(by_seed)
            for s, v in sorted(by_seed.items()):
                if s != first and v - by_seed[first] < -0.05:
                    out[s].append(photo)
    return dict(sorted(out.items()))


def main(argv=None) -> None:
    p = base_parser(__doc__)
    p.add_argument("--runs", required=True, help="name:seed,name:seed,...")
    p.add_argument("--method", default=METHOD)
    p.add_argument("--peer", default=PEER)
    p.add_argument("--budgets", default="1000,4000")
    args = p.parse_args(argv)
    runs = [(n, int(s)) for n, s in (r.rsplit(":", 1) for r in args.runs.split(","))]
    scores = load_runs(runs)
    headers = [
        "photo",
        "seeds",
        "method",
        "peer",
        "method - peer",
        "worst seed",
        "peer's range",
        "peer - its first seed, worst",
    ]
    text, summary = [], {}
    for budget in (int(b) for b in args.budgets.split(",")):
        rows, means = spread_table(scores, budget, args.method, args.peer)
        if not rows:
            continue
        behind = sum(m < -0.05 for m in means)
        fails = self_failures(scores, budget, args.peer)
        seeds = sorted(
            {s for k, v in scores.items() if k[:2] == (args.peer, budget) for s in v}
        )[1:]
        said = "; ".join(
            f"seed {s}: {', '.join(fails[s]) if s in fails else 'none'}" for s in seeds
        )
        summary[budget] = {"photos": len(rows), "behind": behind, "peer": fails}
        summary[budget]["mean_difference"] = float(np.mean(means))
        text.append(
            f"{budget} rows: {args.method} against {args.peer}, insertion - "
            "deletion per photo over the seeds both have. Mean over the photos "
            f"of the method - peer column: {np.mean(means):+.3f}. The method's "
            f"mean over seeds is behind the peer's by more than 0.05 on {behind} "
            f"of {len(rows)} photos. The peer itself, re-run at another seed, is "
            "behind its first seed by more than 0.05 on these photos: "
            f"{said}.\n" + print_table(headers, rows, echo=False)
        )
    table = "\n\n".join(text)
    print(table)
    payload = {"runs": [list(r) for r in runs], "method": args.method}
    payload.update(peer=args.peer, summary=summary, table=table)
    payload["note"] = (
        "Read from the committed faithfulness results named in runs (each "
        "run's command, machine and date are in its own file); nothing was run."
    )
    write_results(args.out or f"seed_spread_{args.px}px", payload, "seed_spread")


if __name__ == "__main__":
    main()
