r"""One estimator call's queries: chunks of pairs, sent and summed.

:class:`CallPlan` is what a call resolves before its first query (the
design, budget, noise scales); :func:`run_queries` sends the queries in
chunks and adds what comes back to the call's
:class:`~captum_lr.estimation.sums.RunningSums`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm.auto import tqdm

from captum_lr.estimation.designs import SamplingPlan
from captum_lr.estimation.layout import InputLayout
from captum_lr.estimation.noise_scale import SigmaProbe
from captum_lr.estimation.priors import BoundPrior
from captum_lr.estimation.queries import QueryRunner
from captum_lr.estimation.sums import RunningSums


@dataclass
class CallPlan:
    """What one call resolved before its first query."""

    layout: InputLayout
    prior: BoundPrior | None
    plan: SamplingPlan
    sigmas: Tensor  # (rows, k): each row's noise scale per coordinate
    n: int
    antithetic: bool
    sigma_probes: int  # samples per row sent as pairs to choose sigma


def run_queries(
    call: CallPlan,
    runner: QueryRunner,
    x: Tensor,
    max_batch_size: int,
    track_stderr: bool,
    show_progress: bool,
) -> RunningSums:
    r"""
    Sends a call's queries in chunks of at most ``max_batch_size`` forward
    rows and sums what comes back. The first ``call.sigma_probes`` samples
    per row go as antithetic pairs (:class:`SigmaProbe`), which set the noise
    scale of the later samples (``sums.sigma_scale``); the design adapts
    after its probes.

    Args:

        call (CallPlan): What the call resolved.
        runner (QueryRunner): The forward function.
        x (Tensor): ``(rows, d)`` the flat inputs.
        max_batch_size (int): The most rows per forward call.
        track_stderr (bool): Whether to keep sums of squares.
        show_progress (bool): A tqdm bar over the forward rows.

    Returns:
        *RunningSums*: the call's sums.
    """
    plan, batch = call.plan, call.layout.batch_size
    sums = RunningSums(plan, track_stderr)
    f0 = None
    if not call.antithetic:
        f0 = runner(x, torch.arange(batch, device=x.device))
    total, probe_end = call.n * batch, plan.probe_samples * batch
    pair_end = call.sigma_probes * batch  # samples sent as +/- pairs
    probe = SigmaProbe(batch, x.device, x.dtype) if pair_end else None
    multiplier = None
    rows_total = total * (2 if call.antithetic else 1) + pair_end
    bar = tqdm(
        total=rows_total,
        disable=not show_progress,
        desc="LR queries",
        unit="row",
    )
    chunks = _chunks(
        total,
        max_batch_size,
        (pair_end, probe_end),
        paired=(total if call.antithetic else pair_end),
    )
    with bar:
        for start, stop in chunks:
            pairs = torch.arange(start, stop, device=x.device)
            rows = pairs % batch
            draw = plan.draw(pairs // batch, rows)
            sigmas = call.sigmas.index_select(0, rows)
            if multiplier is not None:
                sigmas = sigmas * multiplier.index_select(0, rows).unsqueeze(1)
            step = draw.u * sigmas
            if call.prior is not None:
                step = call.prior.expand(step)
            base = x.index_select(0, rows)
            m = rows.shape[0]
            if f0 is None or start < pair_end:
                both = runner(torch.cat([base + step, base - step]), rows.repeat(2))
                if f0 is None:
                    delta = (both[:m] - both[m:]) * 0.5
                else:  # a probe pair: its central difference
                    delta = probe.add(
                        rows, both[:m], both[m:], f0.index_select(0, rows)
                    )
                bar.update(2 * m)
            else:
                delta = runner(base + step, rows) - f0.index_select(0, rows)
                if multiplier is not None:  # back to the base scale
                    delta = delta / multiplier.index_select(0, rows)
                bar.update(m)
            sums.add(draw, rows, delta, start < probe_end)
            if stop == pair_end:
                multiplier = probe.decide(f0, runner.output_eps)
            if stop == probe_end:
                sums.adapt()
    runner.check_finite()
    sums.sigma_scale = multiplier
    return sums


def _chunks(total: int, size: int, cuts: tuple[int, ...], paired: int):
    """``(start, stop)`` ranges of pairs: at most ``size`` forward rows each
    (pairs below ``paired`` cost two rows), one ending at each of ``cuts``
    (where the design or the noise scale adapts)."""
    start = 0
    while start < total:
        width = max(1, size // 2) if start < paired else size
        stop = min(start + width, total)
        for cut in cuts:
            if start < cut < stop:
                stop = cut
        yield start, stop
        start = stop
