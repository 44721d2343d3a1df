"""Plots and a Markdown digest of the committed results, from their JSON only.

    python -m benchmarks.report        # writes results/*.png, results/TABLES.md
                                       # and the results block of README.md

Every number in TABLES.md and in the README's results block is copied by this
script from a results JSON, with the command, machine and date that produced
it; nothing is typed by hand."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from benchmarks.common import RESULTS, mean_se

README = Path(__file__).resolve().parent / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_faithfulness(payload: dict, path: Path) -> None:
    """Insertion - deletion AUC per method (mean and standard error), one bar
    group per budget; white-box and random rows as horizontal references."""
    plt = _plt()
    recs = [r for r in payload["records"] if "error" not in r]
    labels = list(dict.fromkeys(r["method"] for r in recs if r["budget"]))
    budgets = sorted({r["budget"] for r in recs if r["budget"]})
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(labels) + 2))
    height = 0.8 / max(1, len(budgets))
    for k, b in enumerate(budgets):
        ys, es = [], []
        for label in labels:
            vals = [
                r["ins_minus_del"]
                for r in recs
                if r["method"] == label and r["budget"] == b
            ]
            m, se = mean_se(vals) if vals else (float("nan"), 0.0)
            ys.append(m)
            es.append(0.0 if se != se else se)
        pos = [i + k * height for i in range(len(labels))]
        ax.barh(pos, ys, height=height, xerr=es, label=f"{b} rows")
    for label in dict.fromkeys(r["method"] for r in recs if r["budget"] is None):
        m, _ = mean_se([r["ins_minus_del"] for r in recs if r["method"] == label])
        ax.axvline(m, ls="--", lw=1, color="gray")
        ax.text(m, -1, label, rotation=90, fontsize=6, va="bottom")
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("insertion - deletion AUC (higher is better)")
    ax.set_title(
        f"efficientnet-lite0, {payload['px']} px, {len(payload['images'])} photos"
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_speed(payload: dict, path: Path) -> None:
    """Overhead ratio against forward rows, one line per batch size."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    recs = payload["records"]
    for b in sorted({r["batch_size"] for r in recs}):
        rs = sorted((r for r in recs if r["batch_size"] == b), key=lambda r: r["rows"])
        line = ax.plot(
            [r["rows"] for r in rs], [r["ratio"] for r in rs], "o-", label=f"{b}"
        )[0]
        if all("mask_ratio" in r for r in rs):
            ax.plot(
                [r["rows"] for r in rs],
                [r["mask_ratio"] for r in rs],
                "s--",
                color=line.get_color(),
                label=f"{b}, LRMaskGradient",
            )
    ax.axhline(1.0, ls="--", color="gray", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("forward rows")
    ax.set_ylabel("attribution time / forward-only time")
    ax.legend(title="batch size", fontsize=7)
    ax.set_title(f"{payload['machine']['cpu']}, {payload['px']} px")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _load(path: Path) -> dict:
    """A results JSON with its table re-summarised by today's code."""
    data = json.loads(path.read_text())
    if path.stem.startswith("faithfulness"):
        from benchmarks.faithfulness import summarise

        args = SimpleNamespace(
            px=data["px"],
            images=",".join(data["images"]),
            subsets=data["mufidelity_subsets"],
        )
        data["table"] = summarise(data["records"], data["budgets"], args)["table"]
    elif path.stem.startswith("frequency") and "table" not in data:
        parts = [
            ("Gradient energy by stratum", "ring_table"),
            ("Measured cosines", "accuracy_table"),
            ("Per photo", "per_photo_table"),
            ("Allocation ceilings", "ceiling_table"),
        ]
        data["table"] = "\n\n".join(
            f"{title}:\n\n{data[key]}" for title, key in parts if data.get(key)
        )
    elif path.stem.startswith("accuracy") and "px" in data:
        from benchmarks import accuracy

        data = accuracy.apply_default_switch(data, path.parent)
        recs = data["records"]
        budgets = sorted({r["budget"] for r in recs})
        names = list(dict.fromkeys(r["method"] for r in recs))
        args = SimpleNamespace(px=data["px"], images=",".join(data["images"]))
        summary = accuracy.summarise(recs, budgets, names, args)
        data["table"] = summary["table"]
        if summary.get("per_photo_table"):
            data["table"] += (
                "\n\nPer photo: the default against NES and against the best "
                "orthogonal design over the sigma sweep.\n\n"
                + summary["per_photo_table"]
            )
    return data


def _header(path: Path, data: dict) -> str:
    m = data["machine"]
    scope = ""
    if "images" in data:
        scope = f"- photos: {', '.join(data['images'])}"
        if data.get("complete") is False:
            scope += " (partial run: not every requested photo was done)"
        scope += "\n"
    runs = "".join(
        f"- part: `{part['command']}` ({part['date']}; {', '.join(part['images'])})\n"
        for part in data.get("parts", [])
    )
    return (
        f"- command: `{data['command']}`\n"
        f"{runs}"
        f"- machine: {m['cpu']}, {m['threads']} torch thread(s); GPU: {m['gpu']}\n"
        f"- versions: python {m['python']}, torch {m['torch']}, captum "
        f"{m['captum']}, captum_lr {m['captum_lr']}; date {data['date']}\n"
        f"{scope}" + (f"- note: {data['note']}\n" if data.get("note") else "")
    )


def digest(results: Path = RESULTS) -> str:
    """TABLES.md: each results JSON's table under its command and machine."""
    parts = ["# Benchmark results (generated by `python -m benchmarks.report`)\n"]
    for path in sorted(results.glob("*.json")):
        data = _load(path)
        parts.append(f"## {path.stem}\n\n{_header(path, data)}\n{data['table']}\n")
    return "\n".join(parts)


def readme_block(results: Path = RESULTS) -> str:
    """The README's results: each table (faithfulness: the best of each family;
    the full table is in TABLES.md) with its plot."""
    parts = [START, "", "*Generated by `python -m benchmarks.report`.*", ""]
    for path in sorted(results.glob("*.json")):
        data = _load(path)
        table = data["table"]
        if "Best insertion" in table:
            table = table[table.index("Best insertion") :]
        if "Per photo at" in table:  # the per-photo tables: TABLES.md only
            table = table[: table.index("Per photo at")] + "Per photo: TABLES.md.\n"
        parts.append(f"### {path.stem}\n\n{_header(path, data)}\n{table}\n")
        if path.with_suffix(".png").exists():
            parts.append(f"![{path.stem}](results/{path.stem}.png)\n")
    parts.append(END)
    return "\n".join(parts)


def update_readme(readme: Path = README, results: Path = RESULTS) -> None:
    """Replaces the README's block between the results markers."""
    text = readme.read_text()
    if START not in text or END not in text:
        raise ValueError(f"{readme} has no {START} ... {END} block to fill.")
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    readme.write_text(head + readme_block(results) + tail)


def main(argv=None) -> None:
    for path in sorted(RESULTS.glob("*.json")):
        data = json.loads(path.read_text())
        if path.stem.startswith("faithfulness"):
            plot_faithfulness(data, path.with_suffix(".png"))
        elif path.stem.startswith("accuracy") and "px" in data:
            from benchmarks.accuracy import apply_default_switch, plot

            plot(apply_default_switch(data, path.parent), path.with_suffix(".png"))
        elif path.stem.startswith("speed") and data["records"]:
            plot_speed(data, path.with_suffix(".png"))
    (RESULTS / "TABLES.md").write_text(digest())
    update_readme()
    print((RESULTS / "TABLES.md").read_text())


if __name__ == "__main__":
    main()
