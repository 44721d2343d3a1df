r"""One estimator call's queries: chunks of pairs, sent and summed.

:class:`CallPlan` is what a call resolves before its first query (the
design, budget, noise scales); :func:`run_queries` sends the queries in
chunks and adds what comes back to the call's
:class:`~captum_lr.estimation.sums.RunningSums`. With a forward function
that can have several calls in flight (``QueryRunner.max_in_flight``), the
next chunks are built and sent while earlier ones are evaluated; the loop
waits for every chunk where the noise scale or the design adapts, and adds
the chunks in order, so the sums are those of sending one chunk at a time.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm.auto import tqdm

from captum_lr.estimation.designs import Draw, SamplingPlan
from captum_lr.estimation.layout import InputLayout
from captum_lr.estimation.noise_scale import SigmaProbe
from captum_lr.estimation.priors import BoundPrior
from captum_lr.estimation.queries import PendingScores, QueryRunner
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


@dataclass
class _Sent:
    """A chunk of pairs whose forward outputs are on their way."""

    start: int  # its first pair
    rows: Tensor  # (m,) the input row of each pair
    draw: Draw
    scale: Tensor | None  # (m,) the noise-scale multiplier of each pair
    paired: bool  # sent as +/- pairs (two forward rows each)
    scores: PendingScores


class _Queries:
    r"""
    One call's query loop: :meth:`send` builds a chunk of pairs and sends it,
    :meth:`receive` adds the oldest chunks that came back to the sums.

    Args:

        call (CallPlan): What the call resolved.
        runner (QueryRunner): The forward function.
        x (Tensor): ``(rows, d)`` the flat inputs.
        sums (RunningSums): Where the chunks are added.
        bar (tqdm): The progress bar over the forward rows.
    """

    def __init__(
        self,
        call: CallPlan,
        runner: QueryRunner,
        x: Tensor,
        sums: RunningSums,
        bar: tqdm,
    ) -> None:
        self.call, self.runner, self.x, self.sums, self.bar = call, runner, x, sums, bar
        batch = call.layout.batch_size
        self.f0 = None
        if not call.antithetic:
            self.f0 = runner(x, torch.arange(batch, device=x.device))
        self.probe_end = call.plan.probe_samples * batch
        self.pair_end = call.sigma_probes * batch  # samples sent as +/- pairs
        self.probe = SigmaProbe(batch, x.device, x.dtype) if self.pair_end else None
        self.multiplier: Tensor | None = None
        self.in_flight: deque[_Sent] = deque()

    def send(self, start: int, stop: int) -> None:
        r"""Draws the pairs ``start:stop`` and sends their perturbed rows."""
        call, x = self.call, self.x
        batch = call.layout.batch_size
        pairs = torch.arange(start, stop, device=x.device)
        rows = pairs % batch
        draw = call.plan.draw(pairs // batch, rows)
        sigmas = call.sigmas.index_select(0, rows)
        scale = None
        if self.multiplier is not None:
            scale = self.multiplier.index_select(0, rows)
            sigmas = sigmas * scale.unsqueeze(1)
        step = draw.u * sigmas
        if call.prior is not None:
            step = call.prior.expand(step)
        base = x.index_select(0, rows)
        paired = self.f0 is None or start < self.pair_end
        if paired:
            scores = self.runner.submit(
                torch.cat([base + step, base - step]), rows.repeat(2)
            )
        else:
            scores = self.runner.submit(base + step, rows)
        self.in_flight.append(_Sent(start, rows, draw, scale, paired, scores))

    def receive(self, keep: int = 0) -> None:
        r"""Adds the oldest chunks in flight to the sums until at most
        ``keep`` remain."""
        while len(self.in_flight) > keep:
            self._add(self.in_flight.popleft())

    def _add(self, sent: _Sent) -> None:
        """Waits for one chunk's outputs and adds its output changes."""
        out, rows, f0 = sent.scores.result(), sent.rows, self.f0
        m = rows.shape[0]
        if f0 is None:
            delta = (out[:m] - out[m:]) * 0.5
        elif sent.paired:  # a probe pair: its central difference
            delta = self.probe.add(rows, out[:m], out[m:], f0.index_select(0, rows))
        else:
            delta = out - f0.index_select(0, rows)
            if sent.scale is not None:  # back to the base scale
                delta = delta / sent.scale
        self.bar.update(out.shape[0])
        self.sums.add(sent.draw, rows, delta, sent.start < self.probe_end)

    def adapt(self, stop: int) -> None:
        r"""After the pairs up to ``stop``: the noise scale is decided at the
        end of the probe pairs, the design adapts at the end of its probes
        (both need every chunk before them back)."""
        if stop not in (self.pair_end, self.probe_end):
            return
        self.receive()
        if stop == self.pair_end:
            self.multiplier = self.probe.decide(self.f0, self.runner.output_eps)
        if stop == self.probe_end:
            self.sums.adapt()


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
    after its probes. Up to ``runner.max_in_flight`` chunks are in flight at
    once between those points.

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
    batch = call.layout.batch_size
    sums = RunningSums(call.plan, track_stderr)
    total, pair_end = call.n * batch, call.sigma_probes * batch
    rows_total = total * (2 if call.antithetic else 1) + pair_end
    bar = tqdm(
        total=rows_total,
        disable=not show_progress,
        desc="LR queries",
        unit="row",
    )
    with bar:
        queries = _Queries(call, runner, x, sums, bar)
        chunks = _chunks(
            total,
            max_batch_size,
            (pair_end, queries.probe_end),
            paired=(total if call.antithetic else pair_end),
        )
        for start, stop in chunks:
            queries.send(start, stop)
            queries.receive(keep=runner.max_in_flight - 1)
            queries.adapt(stop)
        queries.receive()
    runner.check_finite()
    sums.sigma_scale = queries.multiplier
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
