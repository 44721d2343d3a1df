r"""The likelihood-ratio gradient estimator: a drop-in ``gradient_func``."""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from captum._utils.typing import TargetType
from torch import Tensor
from tqdm.auto import tqdm

from captum_lr.estimation.designs import (
    DESIGNS,
    Blocks,
    BlockSpec,
    FeatureGroups,
    SamplingPlan,
    Support,
    image_channels,
    resolve_design,
)
from captum_lr.estimation.layout import InputLayout
from captum_lr.estimation.priors import BoundPrior, GroupPrior, SharedChannels
from captum_lr.estimation.queries import QueryRunner

AUTO_SIGMA = {"coordinate": 1e-2, "random": 1e-4}
r"""``sigma="auto"``: the fraction of each input tensor's RMS, for coordinate
sweeps (central differences, bias O(sigma^2), one coordinate per query so
rounding matters) and for random designs (one-sided, bias O(sigma), many
coordinates per query)."""


class UnperturbedFeaturesWarning(UserWarning):
    r"""Some coordinates were never perturbed; their estimate is 0."""


class ConstantOutputWarning(UserWarning):
    r"""Every perturbed query returned the unperturbed output: sigma too small."""


class LREstimator:
    r"""
    A blockwise likelihood-ratio (score-function) gradient estimator that only
    queries the forward function (arXiv 2403.15603). It has the signature and
    return contract of Captum's ``compute_gradients``, so it can replace the
    ``gradient_func`` of any Captum ``GradientAttribution``.

    For each input row ``x`` it draws noise directions ``u_k`` and returns, per
    coordinate ``j``, the average over the samples that perturbed ``j`` of::

        (f(x + sigma * u_k) - f(x)) * u_kj / sigma_j

    or, with ``antithetic=True``, of
    ``(f(x + sigma u_k) - f(x - sigma u_k)) / 2 * u_kj / sigma_j``, which
    cancels the even-order terms of ``f`` (bias O(sigma^2) for smooth ``f``) and
    needs no ``f(x)``. With Gaussian ``u_k`` this is an unbiased estimate of the
    gradient of the Gaussian-smoothed function ``E f(x + sigma eps)``.

    When a row has at most ``n_samples`` coordinates, the default design sweeps
    each coordinate once (central finite differences), which is exact up to
    O(sigma^2): small tabular models get the true gradient. Otherwise it uses
    orthonormal directions (expected cosine ``sqrt(n/d)`` with a linear
    gradient, exact at ``n = d``); for ``(C, H, W)`` images in two strata,
    channel-shared directions and channel contrasts: each row probes both and,
    where the shared ones carry more of the output's change (photos), spends
    its samples there, estimating the channel-mean gradient from a ``C``-th of
    the coordinates (:meth:`project`; see :mod:`captum_lr.estimation.designs`).

    Args:

        n_samples (int, optional): Noise samples per input row. Each sample costs
                    two forward rows with ``antithetic=True``, one otherwise
                    (plus one row per input row for ``f(x)``). With
                    ``design="auto"`` and at most ``n_samples`` coordinates per
                    row, exactly ``d`` samples are used.
                    Default: 128
        sigma (float or str, optional): The noise scale. A positive float is used
                    as is for every input tensor; ``"auto"`` uses ``1e-2`` (for
                    coordinate sweeps) or ``1e-4`` (for random designs) times
                    the root mean square of each input tensor over the batch of
                    the call (of 1 if that is 0). Smaller sigma estimates the
                    gradient more locally (less smoothing bias) but is more
                    sensitive to noise, rounding and quantisation of the inputs
                    and outputs: for quantised models, hard labels or rounded
                    API outputs use a much larger sigma (e.g. 0.05 to 0.5 times
                    the input scale), which estimates the gradient of the
                    Gaussian-smoothed function.
                    Default: ``"auto"``
        block (int, tuple[int, ...] or list, optional): None perturbs whole
                    inputs. Otherwise each sample perturbs one randomly placed
                    block: a tuple gives its extent over the trailing dimensions
                    of every input tensor; an int is a run of features for 1-D
                    rows and a square over the last two dimensions for 2-D and
                    3-D rows (a ``block x block`` patch of ``(C, H, W)`` images
                    with independent noise in every channel). A list of these
                    is multi-scale (e.g. ``[7, 14, 28]``): each sample draws
                    one size uniformly; every coordinate still averages the
                    samples that covered it, so the estimate stays unbiased
                    for the Gaussian-smoothed gradient.
                    Default: None
        feature_mask (Tensor or tuple[Tensor, ...], optional): A Captum-style
                    feature mask (one integer tensor per input, shaped like a row,
                    equal values forming a group); each sample perturbs one group.
                    Exclusive with ``block``.
                    Default: None
        design (str, optional): ``"auto"``, ``"gaussian"``, ``"orthogonal"``,
                    ``"orthogonal-channels"`` or ``"coordinate"``; see
                    :mod:`captum_lr.estimation.designs`.
                    Default: ``"auto"``
        antithetic (bool, optional): Evaluate each sample at ``x + sigma u`` and
                    ``x - sigma u`` (bias O(sigma^2), two rows per sample), or at
                    ``x + sigma u`` with ``f(x)`` as control variate (bias
                    O(sigma), one row per sample: twice the directions per
                    row, which is what counts far from ``n_samples >= d``).
                    None: antithetic for coordinate sweeps, one-sided otherwise.
                    Default: None
        prior (GroupPrior, optional): Share each sample's noise within groups
                    (:class:`~captum_lr.estimation.priors.SharedChannels`,
                    :class:`~captum_lr.estimation.priors.Grid`, a feature mask):
                    the estimate is then the projection of the gradient onto
                    group-constant
                    inputs (see :meth:`project`). Exclusive with ``block`` and
                    ``feature_mask``.
                    Default: None
        track_stderr (bool, optional): Also compute each coordinate's standard
                    error from the spread of the samples (``last_stderr``);
                    costs one more ``(rows, d)`` buffer.
                    Default: False
        seed (int, optional): None draws the noise from torch's global random
                    generator. An int makes every call reproducible: the noise
                    is a function of the seed and the call's inputs.
                    Default: None
        max_batch_size (int, optional): The most rows sent to the forward
                    function in one call; memory use is bounded by it, whatever
                    ``n_samples`` is.
                    Default: 64
        show_progress (bool, optional): Show a tqdm progress bar over the forward
                    rows of each call.
                    Default: False

    Attributes:

        queries (int): The number of forward rows sent so far by this estimator
                    (assign 0 to reset).
        last_coverage (tuple[Tensor, ...]): For the last call, per input tensor,
                    the weight of samples that perturbed each coordinate (the
                    number of samples, for blocks); 0 marks a coordinate whose
                    estimate is 0 because no sample perturbed it.
        last_stderr (tuple[Tensor, ...]): With ``track_stderr=True``, for the last
                    call, the standard error of each coordinate's estimate (inf
                    where fewer than two samples perturbed it; 0 for a complete
                    orthogonal set, which is exact for linear functions).
        last_design (str): The design the last call used (what ``"auto"``
                    resolved to).
        last_contrast_scale (Tensor): For the ``"orthogonal-channels"`` design,
                    per row of the last call, the factor of the gradient's
                    channel contrasts in the estimate's expectation: 1 where
                    the row sampled all directions in proportion (unbiased for
                    the gradient), below 1 where it spent its samples on the
                    channel-shared ones (see :meth:`project`); None otherwise.

    Examples::

        >>> from captum.attr import IntegratedGradients
        >>> from captum_lr import LREstimator
        >>> ig = IntegratedGradients(model_without_autograd)
        >>> ig.gradient_func = LREstimator(n_samples=256, seed=0)
        >>> attributions = ig.attribute(inputs, target=3)
        >>> ig.gradient_func.queries  # forward rows spent
    """

    def __init__(
        self,
        n_samples: int = 128,
        sigma: float | str = "auto",
        block: BlockSpec | None = None,
        feature_mask: Tensor | tuple[Tensor, ...] | None = None,
        design: str = "auto",
        antithetic: bool | None = None,
        prior: GroupPrior | None = None,
        seed: int | None = None,
        max_batch_size: int = 64,
        show_progress: bool = False,
        track_stderr: bool = False,
    ) -> None:
        if isinstance(n_samples, bool) or not isinstance(n_samples, int):
            raise TypeError(f"n_samples must be an int, not {n_samples!r}.")
        if n_samples < 1:
            raise ValueError(f"n_samples must be at least 1, got {n_samples}.")
        if isinstance(sigma, str):
            if sigma != "auto":
                raise ValueError(
                    f"sigma must be a positive float or 'auto', not {sigma!r}."
                )
        elif isinstance(sigma, bool) or not isinstance(sigma, (int, float)):
            raise TypeError(f"sigma must be a positive float or 'auto', not {sigma!r}.")
        elif not (math.isfinite(sigma) and sigma > 0):
            raise ValueError(
                f"sigma must be a positive finite float, got {sigma}; it is the "
                "standard deviation of the noise added to the inputs."
            )
        if design not in DESIGNS:
            raise ValueError(f"design must be one of {DESIGNS}, not {design!r}.")
        if block is not None and feature_mask is not None:
            raise ValueError(
                "give block or feature_mask, not both: each sample perturbs one "
                "block or one feature group."
            )
        if block is not None:
            _check_block(block)
        if prior is not None:
            if not isinstance(prior, GroupPrior):
                raise TypeError(
                    "prior must be a captum_lr.estimation.priors.GroupPrior (Grid, "
                    f"SharedChannels, GroupPrior(mask)), not {prior!r}."
                )
            if block is not None or feature_mask is not None:
                raise ValueError(
                    "a prior shares noise over whole groups; it cannot be combined "
                    "with block or feature_mask."
                )
        if antithetic is not None and not isinstance(antithetic, bool):
            raise TypeError(f"antithetic must be None or a bool, not {antithetic!r}.")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed must be None or an int, not {seed!r}.")
        if (
            isinstance(max_batch_size, bool)
            or not isinstance(max_batch_size, int)
            or max_batch_size < 1
        ):
            raise ValueError(
                f"max_batch_size must be a positive int, got {max_batch_size!r}."
            )
        self.n_samples = n_samples
        self.sigma = sigma
        self.block = block
        self.feature_mask = feature_mask
        self.design = design
        self.antithetic = antithetic
        self.prior = prior
        self.track_stderr = bool(track_stderr)
        self.seed = seed
        self.max_batch_size = max_batch_size
        self.show_progress = show_progress
        self.queries = 0
        self.last_coverage: tuple[Tensor, ...] | None = None
        self.last_stderr: tuple[Tensor, ...] | None = None
        self.last_design: str | None = None
        self.last_contrast_scale: Tensor | None = None

    def __repr__(self) -> str:
        return (
            f"LREstimator(n_samples={self.n_samples}, sigma={self.sigma!r}, "
            f"block={self.block!r}, prior={self.prior!r}, design={self.design!r}, "
            f"antithetic={self.antithetic}, seed={self.seed}, "
            f"max_batch_size={self.max_batch_size})"
        )

    def _plan_shape(self, layout: InputLayout) -> tuple[int, bool]:
        """Samples per row and whether they are antithetic, for this layout."""
        if self.prior is not None:
            k, channels = self._bind_prior(layout).space.dim, None
        else:
            k, channels = layout.dim, image_channels(layout)
        design, n = resolve_design(
            self.design, self._whole_input, k, self.n_samples, channels
        )
        sweep = design == "coordinate"
        antithetic = sweep if self.antithetic is None else self.antithetic
        return n, antithetic

    def samples_per_row(self, inputs: Tensor | Sequence[Tensor]) -> int:
        r"""The number of noise samples a call on ``inputs`` draws per row."""
        return self._plan_shape(InputLayout(_as_tuple(inputs)))[0]

    def queries_for(self, inputs: Tensor | Sequence[Tensor]) -> int:
        r"""The number of forward rows one call on ``inputs`` will send.

        Args:

            inputs (Tensor or tuple[Tensor, ...]): The inputs the estimator will be
                        called on (for IntegratedGradients: ``n_steps`` times the
                        batch).

        Returns:
            *int*: forward rows, including the ``f(x)`` rows when not antithetic.
        """
        layout = InputLayout(_as_tuple(inputs))
        n, antithetic = self._plan_shape(layout)
        per_row = n * 2 if antithetic else n + 1
        return layout.batch_size * per_row

    def project(
        self, inputs: Tensor | Sequence[Tensor], gradients: Tensor | Sequence[Tensor]
    ) -> tuple[Tensor, ...]:
        r"""
        What this estimator estimates of a gradient: its projection onto the
        prior's subspace; for the ``"orthogonal-channels"`` design (the default
        for ``(C, H, W)`` images), per row as its probes decided in the last
        call (:attr:`last_contrast_scale`): the channel-mean gradient plus
        that scale times the rest (the gradient itself where it is 1);
        otherwise the gradient itself.

        Args:

            inputs (Tensor or tuple[Tensor, ...]): Inputs of the shape the
                        estimator is called on.
            gradients (Tensor or tuple[Tensor, ...]): Gradients shaped like them
                        (e.g. from autograd, to compare with the estimate).

        Returns:
            *tuple[Tensor, ...]*: the projected gradients, shaped like the inputs.
        """
        grads = _as_tuple(gradients)
        layout = InputLayout(_as_tuple(inputs))
        dtypes = [g.dtype for g in grads]
        if self.prior is not None:
            bound = self._bind_prior(layout)
        else:
            channels = image_channels(layout)
            design, n = resolve_design(
                self.design, self._whole_input, layout.dim, self.n_samples, channels
            )
            if design != "orthogonal-channels" or n >= layout.dim:
                return grads
            scale = self.last_contrast_scale
            if scale is None or scale.shape[0] != layout.batch_size:
                raise ValueError(
                    "with the 'orthogonal-channels' design what is estimated "
                    "depends on each row's probes: call the estimator on these "
                    "inputs first, then project."
                )
            flat = layout.flatten(grads)
            mean = SharedChannels().bind(layout).project(flat)
            scale = scale.to(flat.device, flat.dtype).unsqueeze(1)
            return layout.split(mean + scale * (flat - mean), dtypes)
        return layout.split(bound.project(layout.flatten(grads)), dtypes)

    def _bind_prior(self, layout: InputLayout) -> BoundPrior:
        assert self.prior is not None
        return self.prior.bind(layout)

    def _count(self, rows: int) -> None:
        self.queries += rows

    @property
    def _whole_input(self) -> bool:
        return self.block is None and self.feature_mask is None

    def _support(self, layout: InputLayout) -> Support:
        if self.block is not None:
            return Blocks(self.block, layout)
        if self.feature_mask is not None:
            return FeatureGroups(self.feature_mask, layout)
        return Support()

    def _sigmas(
        self, inputs: tuple[Tensor, ...], layout: InputLayout, design: str
    ) -> Tensor:
        if self.sigma != "auto":
            return torch.full(
                (layout.dim,),
                float(self.sigma),
                device=layout.device,
                dtype=layout.dtype,
            )
        scales = []
        for t in inputs:
            rms = t.detach().to(layout.dtype).pow(2).mean().sqrt()
            scales.append(torch.where(rms > 0, rms, torch.ones_like(rms)))
        fraction = AUTO_SIGMA["coordinate" if design == "coordinate" else "random"]
        scales = [fraction * scale for scale in scales]
        return layout.per_coordinate(scales)

    def _generator(self, inputs: tuple[Tensor, ...], device: torch.device):
        if self.seed is None:
            call_seed = int(torch.randint(0, 2**62, (1,)).item())
        else:
            stats = torch.stack(
                [
                    torch.stack(
                        [t.detach().double().sum(), t.detach().double().abs().sum()]
                    )
                    for t in inputs
                ]
            ).cpu()
            shapes = tuple(tuple(t.shape) for t in inputs)
            # hashlib, not hash(): the seed must be the same in every process so
            # that re-running an attribution re-sends the same (cached) queries.
            key = repr((self.seed, shapes, stats.flatten().tolist())).encode()
            call_seed = int.from_bytes(hashlib.sha256(key).digest()[:8], "little")
            call_seed %= 2**62
        return torch.Generator(device=device).manual_seed(call_seed)

    def __call__(
        self,
        forward_fn: Callable[..., Any],
        inputs: Tensor | tuple[Tensor, ...],
        target_ind: TargetType = None,
        additional_forward_args: Any = None,
    ) -> tuple[Tensor, ...]:
        r"""
        Estimates the gradient of each row's selected output with respect to each
        input, with the contract of ``captum._utils.gradient.compute_gradients``.

        Args:

            forward_fn (Callable): The forward function; called with perturbed
                        copies of ``inputs`` followed by ``additional_forward_args``.
            inputs (Tensor or tuple[Tensor, ...]): The points where the gradient
                        is estimated; the first dimension indexes rows.
            target_ind (int, tuple, Tensor or list, optional): Captum-style output
                        index per row. Needed when the forward function returns
                        more than one value per row.
                        Default: None
            additional_forward_args (Any, optional): Extra arguments of the
                        forward function; tensors with one row per input row are
                        expanded with the perturbed rows.
                        Default: None

        Returns:
            *tuple[Tensor, ...]* of **gradients**, one per input tensor, shaped and
            typed like it, on its device.
        """
        inputs = _as_tuple(inputs)
        layout = InputLayout(inputs)
        dtypes = [t.dtype for t in inputs]
        batch, device = layout.batch_size, layout.device
        runner = QueryRunner(
            forward_fn,
            layout,
            dtypes,
            target_ind,
            additional_forward_args,
            self.max_batch_size,
            self._count,
        )
        if batch == 0:
            return tuple(torch.zeros_like(t) for t in inputs)
        x = layout.flatten(inputs)
        prior = self._bind_prior(layout) if self.prior is not None else None
        plan = SamplingPlan(
            self.design,
            self._support(layout),
            prior.space if prior is not None else layout.space,
            self.n_samples,
            self._generator(inputs, device),
            layout=None if prior is not None else layout,
        )
        self.last_design = plan.design
        sigmas = self._sigmas(inputs, layout, plan.design)
        if prior is not None:
            sigmas = prior.group_mean(sigmas)
        n, antithetic = self._plan_shape(layout)
        k = plan.space.dim
        rows_per_pair = 2 if antithetic else 1
        f0 = None if antithetic else runner(x, torch.arange(batch))

        def zeros() -> Tensor:
            return torch.zeros((batch, k), device=device, dtype=layout.dtype)

        # one running sum per stratum of the design (rows of stratum l at l*batch)
        levels = plan.levels
        numerator = torch.zeros((levels * batch, k), device=device, dtype=layout.dtype)
        squares = torch.zeros_like(numerator) if self.track_stderr else None
        weights = zeros() if plan.weighted else None
        energy = torch.zeros(levels * batch, device=device, dtype=layout.dtype)
        moved = torch.zeros((), dtype=torch.long, device=device)
        total = n * batch
        probe_end = plan.probe_samples * batch
        bar = tqdm(
            total=total * rows_per_pair,
            disable=not self.show_progress,
            desc="LR queries",
            unit="row",
        )
        chunk = max(1, self.max_batch_size // rows_per_pair)
        for start, stop in _chunks(total, chunk, probe_end):
            pairs = torch.arange(start, stop)
            rows_cpu = pairs % batch
            rows = rows_cpu.to(device, non_blocking=True)
            samples = (pairs // batch).to(device, non_blocking=True)
            u, w = plan.draw(samples, rows)
            step = u * sigmas
            if prior is not None:
                step = prior.expand(step)
            base = x.index_select(0, rows)
            if antithetic:
                both = runner(
                    torch.cat([base + step, base - step]),
                    torch.cat([rows_cpu, rows_cpu]),
                )
                delta = (both[: rows.shape[0]] - both[rows.shape[0] :]) * 0.5
            else:
                delta = runner(base + step, rows_cpu) - f0.index_select(0, rows)
            moved += (delta != 0).sum()
            level = plan.level(samples, rows)
            slot = rows if level is None else rows + level * batch
            contribution = u * delta.unsqueeze(1)
            numerator.index_add_(0, slot, contribution)
            if start < probe_end:  # the probes' output changes, per stratum
                energy.index_add_(0, slot, delta.to(layout.dtype).square())
            if squares is not None:
                squares.index_add_(0, slot, contribution.square())
            if weights is not None:
                weights.index_add_(0, rows, w)
            if stop == probe_end:
                plan.adapt(energy.view(levels, batch))
            bar.update(rows.shape[0] * rows_per_pair)
        bar.close()
        runner.check_finite()
        unchanged = 1.0 - int(moved.item()) / total
        if unchanged > 0.5:
            warnings.warn(
                f"{unchanged:.0%} of the perturbed queries returned exactly the "
                "unperturbed output and carry no information about the gradient, "
                "so the estimate is noisy (0 where no query moved): sigma is small "
                "for this model (quantised inputs or outputs, hard labels, rounded "
                "API outputs); raise sigma.",
                ConstantOutputWarning,
                stacklevel=2,
            )

        if levels > 1:
            grads, var = plan.combine(numerator, squares)
            counts = torch.full_like(grads, n)
            covered = counts > 0
            grads = grads / sigmas
            self.last_contrast_scale = plan.contrast_scale()
        else:
            counts = weights if weights is not None else torch.full_like(numerator, n)
            covered = counts > 0
            safe = counts.clamp_min(1e-30)
            grads = torch.where(covered, numerator / safe, 0.0) / sigmas
            self.last_contrast_scale = None
        if squares is not None:
            if levels == 1:
                spread = (squares / safe - (numerator / safe).square()).clamp_min(0)
                var = spread * counts / (counts - 1).clamp_min(1e-30) / safe
                var = var * plan.finite_population
                var = torch.where(counts > 1.5, var, torch.inf)
            stderr = (var / sigmas.square()).sqrt()
        n_missed = int((~covered).sum().item()) if weights is not None else 0
        if n_missed:
            warnings.warn(
                f"{n_missed} of {batch * k} coordinates were never perturbed by the "
                f"{n} samples per row; their gradient estimate is 0 (see "
                "LREstimator.last_coverage). Raise n_samples or use larger blocks.",
                UnperturbedFeaturesWarning,
                stacklevel=2,
            )
        if prior is not None:
            grads, counts = prior.expand(grads), prior.gather(counts)
            if squares is not None:
                stderr = prior.gather(stderr) * prior.inv_sqrt
        self.last_coverage = layout.split(counts)
        self.last_stderr = layout.split(stderr) if squares is not None else None
        return layout.split(grads, dtypes)


def _chunks(total: int, size: int, cut: int):
    """``(start, stop)`` ranges of at most ``size`` pairs, one of them ending at
    ``cut`` (where the design adapts)."""
    start = 0
    while start < total:
        stop = min(start + size, total)
        if start < cut < stop:
            stop = cut
        yield start, stop
        start = stop


def _as_tuple(inputs: Tensor | Sequence[Tensor]) -> tuple[Tensor, ...]:
    if isinstance(inputs, Tensor):
        return (inputs,)
    if isinstance(inputs, (tuple, list)):
        return tuple(inputs)
    raise TypeError(
        f"inputs must be a tensor or a tuple of tensors, not {type(inputs).__name__}."
    )


def _check_block(block: Any) -> None:
    scales = block if isinstance(block, list) else [block]
    for scale in scales:
        items = scale if isinstance(scale, tuple) else (scale,)
        if (
            not scales
            or not items
            or any(
                isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in items
            )
        ):
            raise ValueError(
                "block must be None, a positive int, a tuple of positive ints, "
                f"or a non-empty list of those (multi-scale), not {block!r}."
            )
    if not scales:
        raise ValueError("block is an empty list; give at least one block size.")
