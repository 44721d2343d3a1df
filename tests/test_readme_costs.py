"""The README's and the porting guide's examples run as written, and every cost
figure they state (forward rows) is the one the code spends.

Convention for README code: a line ``print(...)  # N ...`` prints N first.
"""

import contextlib
import inspect
import io
import re
import textwrap
import warnings
from pathlib import Path

import pytest
import torch
from captum.attr import IntegratedGradients, NoiseTunnel

from captum_lr import (
    LREstimator,
    LRIntegratedGradients,
    LRSaliency,
    estimate_queries,
    make_estimator,
)
from captum_lr.estimation.presets import FIXED_SAMPLES, PRESETS

CAPTUM_N_STEPS = (
    inspect.signature(IntegratedGradients.attribute).parameters["n_steps"].default
)
ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
PORTING = (ROOT / "tutorials" / "porting.md").read_text()


def rows(text: str) -> int:
    return int(text.replace(",", "").replace("_", ""))


def fmt(n: int) -> str:
    return f"{n:,}"


def section(title: str | None) -> str:
    """The README's text under a '## title' (None: before the first '## ')."""
    if title is None:
        return README.split("\n## ", 1)[0]
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.S | re.M)
    assert match is not None, f"README.md has no '## {title}' section"
    return match.group(1)


def python_blocks(text: str) -> list[str]:
    return [textwrap.dedent(b) for b in re.findall(r"```python\n(.*?)```", text, re.S)]


def run(code: str, namespace: dict | None = None) -> tuple[dict, list[str]]:
    namespace = {"__name__": "__readme__", **(namespace or {})}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), namespace)
    return namespace, out.getvalue().splitlines()


def printed_claims(code: str) -> list[int]:
    """The N of every ``print(...)  # N ...`` line, in order."""
    claims = []
    for line in code.splitlines():
        if line.lstrip().startswith("print("):
            match = re.search(r"#\s*([\d,_]+)\b", line)
            assert match, f"a README print has no '# N' comment: {line!r}"
            claims.append(rows(match.group(1)))
    return claims


@pytest.fixture(scope="module")
def first_example():
    intro = section(None)
    blocks = python_blocks(intro)
    assert blocks, "README.md has no first python example"
    with warnings.catch_warnings():
        # a user can copy the arguments: no warning (e.g. LowAccuracyWarning)
        warnings.simplefilter("error")
        namespace, printed = run(blocks[0])
    prose = intro.split("```", 2)[2]  # the text after the block
    return blocks[0], namespace, printed, prose


def test_first_example_prints_the_costs_its_comments_state(first_example):
    code, namespace, printed, _ = first_example
    claims = printed_claims(code)
    assert len(claims) >= 3, "the first example shows no costs"
    assert [rows(line.split()[0]) for line in printed] == claims
    # what was spent is what estimate_queries announced
    assert claims[-1] == sum(claims[:-1]) == namespace["ig"].queries


def test_first_example_passes_n_steps_to_noise_tunnel(first_example):
    code, *_ = first_example
    for call in re.findall(r"NoiseTunnel\(.*|\bnt\.attribute\(.*", code):
        if ".attribute(" in call:
            assert "n_steps" in call or "**kw" in call, call
    assert "n_steps" in re.search(r"kw = dict\((.*)\)", code).group(1)


def test_first_example_prose_states_the_true_costs(first_example):
    _, ns, _, prose = first_example
    ig, x, kw = ns["ig"], ns["x"], ns["kw"]
    per_image = ig.estimator.queries_for(x[:1])
    n_steps = kw["n_steps"]
    figures = {
        "per image": per_image,
        "integrated gradients": estimate_queries(
            ig, x, return_convergence_delta=True, **kw
        ),
        "noise tunnel": estimate_queries(NoiseTunnel(ig), x, nt_samples=4, **kw),
        # counted, not dry-run (100k rows): NoiseTunnel's cost is nt_samples
        # calls of the wrapped method (checked on the line above)
        "noise tunnel without n_steps": 4 * CAPTUM_N_STEPS * len(x) * per_image,
    }
    assert figures["noise tunnel"] == 4 * n_steps * len(x) * per_image
    assert figures["integrated gradients"] == n_steps * len(x) * per_image + 2 * len(x)
    for name, value in figures.items():
        assert fmt(value) in prose, (name, value, prose)
    assert f"{n_steps} × {len(x)} × {per_image}" in prose


def test_default_n_steps_is_captums():
    captum = inspect.signature(IntegratedGradients.attribute).parameters["n_steps"]
    assert CAPTUM_N_STEPS == captum.default == 50


def test_first_example_agrees_with_autograd(first_example):
    # a user can copy these arguments: the map is a usable estimate
    _, ns, _, _ = first_example
    ref = IntegratedGradients(ns["net"]).attribute(ns["x"], target=3, n_steps=8)
    cos = torch.nn.functional.cosine_similarity(
        ns["attr"].flatten(1), ref.flatten(1), 1
    )
    assert (cos > 0.45).all(), cos


def test_presets_example_costs_what_the_readme_says():
    text = section("Presets")
    claim = re.search(r"(\d+) path steps = ([\d,]+) rows for a (\d+) px image", text)
    assert claim, "the Presets section states no cost for its example"
    steps, claimed, px = int(claim.group(1)), rows(claim.group(2)), int(claim.group(3))
    (code,) = python_blocks(text)
    assert f"n_steps={steps}" in code
    x = torch.rand(1, 3, px, px)
    weight = torch.randn(3, 4)

    def model_fn(x):
        with torch.no_grad():
            return x.mean((2, 3)) @ weight

    ns, _ = run(code, {"model_fn": model_fn, "x": x, "t": 1})
    assert ns["ig"].queries == claimed
    assert ns["attr"].shape == x.shape


def _cost_formula(text: str, n: int) -> int:
    """Evaluates the presets table's cost column for rows with d > n."""
    text = text.split("else")[-1].strip()
    text = re.sub(r"(\d)n\b", r"\1*n", text)
    assert re.fullmatch(r"[\dn +*]+", text), f"unknown cost form {text!r}"
    return eval(text, {}, {"n": n})


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_table_costs(name):
    table = section("Presets")
    match = re.search(rf"^\| `{re.escape(name)}` \|.*\| ([^|]+) \|$", table, re.M)
    assert match, f"preset {name} has no row in the README's table"
    cost = match.group(1)
    overrides = {} if name in FIXED_SAMPLES else {"n_samples": 1000}
    est = make_estimator(name, **overrides)
    image = torch.zeros(1, 3, 112, 112)  # d = 37,632 > n
    assert est.queries_for(image) == _cost_formula(cost, est.n_samples), cost
    sweep = re.search(r"2d for d ≤ (\d+)", cost)
    if sweep:  # the exact coordinate sweep below n_samples coordinates
        d = int(sweep.group(1))
        small = make_estimator(name)
        assert small.n_samples == d
        assert small.queries_for(torch.zeros(1, d)) == 2 * d
        above = small.queries_for(torch.zeros(1, d + 1))
        assert above == _cost_formula(cost, small.n_samples)


def test_porting_guide_costs():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10))
    x = torch.rand(2, 3, 32, 32)
    paragraph = PORTING.split("```diff", 1)[1].split("```", 2)[1]
    assert "two 3×32×32 images" in paragraph
    diff = PORTING.split("```diff", 1)[1].split("```", 1)[0]
    assert "n_samples=256" in diff and "n_steps=16" in diff and "n_steps=4" in diff
    assert "n_steps=16, return_convergence_delta=True" in diff

    def est():
        return LREstimator(n_samples=256, seed=0)

    ig = LRIntegratedGradients(net, estimator=est())
    saliency = estimate_queries(LRSaliency(net, estimator=est()), x, target=3)
    smooth = estimate_queries(NoiseTunnel(ig), x, nt_samples=8, n_steps=4, target=3)
    assert smooth == 8 * 4 * saliency
    figures = [
        estimate_queries(ig, x, target=3, n_steps=16, return_convergence_delta=True),
        saliency,
        smooth,
        8 * CAPTUM_N_STEPS * saliency,  # the NoiseTunnel line without n_steps
    ]
    for value in figures:
        assert fmt(value) in paragraph, (value, paragraph)


def test_surrogate_example_costs_and_cosines_as_stated():
    text = section("The estimator")
    blocks = [b for b in python_blocks(text) if "Surrogate(" in b]
    assert len(blocks) == 1, "the README has one Surrogate example"
    namespace, printed = run(blocks[0])
    assert rows(printed[0]) == 84 == namespace["est"].queries
    with_prior = namespace["cosine"](namespace["attr"], namespace["truth"])
    without = namespace["cosine"](namespace["base"], namespace["truth"])
    # the prose: 0.81 to 0.86 per row with the surrogate, 0.40 to 0.53 without
    stated = re.search(
        r"([\d.]+) to ([\d.]+)\s+per row with the surrogate and ([\d.]+) to "
        r"([\d.]+) without",
        " ".join(text.split()),
    )
    assert stated is not None
    lo, hi, lo0, hi0 = (float(v) for v in stated.groups())
    assert (
        lo
        <= round(float(with_prior.min()), 2)
        <= round(float(with_prior.max()), 2)
        <= hi
    )
    assert (
        lo0 <= round(float(without.min()), 2) <= round(float(without.max()), 2) <= hi0
    )
