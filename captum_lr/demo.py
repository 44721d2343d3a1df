r"""The README's first command: explain a bundled small model, write a saliency PNG.

A small CNN is built from a fixed seed and run under ``torch.no_grad`` (so it has
no autograd); the demo explains it with :class:`~captum_lr.LRSaliency` and
:class:`~captum_lr.LRIntegratedGradients`, compares them with Captum's
autograd attributions of the same network, prints the agreement and the query
cost, and writes the maps side by side to a PNG.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from captum.attr import IntegratedGradients, Saliency  # noqa: E402
from captum.attr import visualization as viz  # noqa: E402

from captum_lr.attr import LRIntegratedGradients, LRSaliency  # noqa: E402
from captum_lr.estimation.estimator import LREstimator  # noqa: E402


def demo_model() -> torch.nn.Module:
    r"""A fixed small CNN on 3x16x16 images with 4 classes."""
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.Tanh(),
        torch.nn.AvgPool2d(2),
        torch.nn.Conv2d(8, 8, 3, padding=1),
        torch.nn.Tanh(),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 8 * 8, 4),
    ).eval()


def demo_image() -> torch.Tensor:
    r"""A 1x3x16x16 image: a bright square on a smooth gradient."""
    ramp = torch.linspace(-1, 1, 16)
    img = (ramp.view(1, 16) * ramp.view(16, 1)).expand(3, 16, 16).clone()
    img[:, 4:9, 8:13] += 1.5
    return img.unsqueeze(0)


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), 0))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="captum-lr-demo",
        description="Explain a small CNN without autograd and write a saliency PNG.",
    )
    parser.add_argument("--out", default="saliency.png", help="PNG to write")
    parser.add_argument("--n-samples", type=int, default=768, help="noise samples")
    args = parser.parse_args(argv)

    net = demo_model()
    x = demo_image()
    with torch.no_grad():
        target = int(net(x).argmax())

    def black_box(inp: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return net(inp)

    estimator = LREstimator(n_samples=args.n_samples, seed=0, max_batch_size=256)
    lr_sal = LRSaliency(black_box, estimator).attribute(x, target=target, abs=False)
    sal_queries = estimator.queries
    lr_ig = LRIntegratedGradients(black_box, estimator=estimator).attribute(
        x, target=target, n_steps=8
    )
    ig_queries = estimator.queries - sal_queries
    sal = Saliency(net).attribute(x.clone().requires_grad_(), target=target, abs=False)
    ig = IntegratedGradients(net).attribute(x, target=target, n_steps=8)

    print(f"explained class {target} of a 3x16x16 input (d = {x[0].numel()})")
    print(
        f"LRSaliency:            cosine with autograd {_cosine(lr_sal, sal):.3f}, "
        f"{sal_queries} forward rows"
    )
    print(
        f"LRIntegratedGradients: cosine with autograd {_cosine(lr_ig, ig):.3f}, "
        f"{ig_queries} forward rows"
    )

    maps = [sal, lr_sal, ig, lr_ig]
    titles = [
        "Saliency (autograd)",
        "LRSaliency",
        "IG (autograd)",
        "LRIntegratedGradients",
    ]
    fig, axes = plt.subplots(1, 5, figsize=(15, 3.2))
    axes[0].imshow(((x[0].permute(1, 2, 0) + 1) / 3).clamp(0, 1).numpy())
    axes[0].set_title("input")
    axes[0].axis("off")
    for ax, attr, title in zip(axes[1:], maps, titles):
        viz.visualize_image_attr(
            attr[0].permute(1, 2, 0).detach().numpy(),
            method="heat_map",
            sign="all",
            plt_fig_axis=(fig, ax),
            use_pyplot=False,
            title=title,
        )
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    plt.close(fig)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
