r"""The likelihood-ratio gradient estimator: a drop-in ``gradient_func``.

A call resolves its plan once (design, budget, noise streams, noise scales:
:func:`~captum_lr.estimation.planning.plan_call`), sends its queries in chunks
(:func:`~captum_lr.estimation.loop.run_queries`, into
:class:`~captum_lr.estimation.sums.RunningSums`),
combines the sums per design, and reports
(:func:`~captum_lr.estimation.outcome.finish_call`). What it estimates of a
gradient is :func:`~captum_lr.estimation.projection.project_gradients`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from captum._utils.typing import TargetType
from torch import Tensor

from captum_lr.estimation.designs import DESIGNS
from captum_lr.estimation.diagnostics import warn_low_accuracy
from captum_lr.estimation.layout import InputLayout
from captum_lr.estimation.loop import run_queries
from captum_lr.estimation.outcome import CallReport, finish_call
from captum_lr.estimation.planning import AUTO_SIGMA as AUTO_SIGMA  # re-exported
from captum_lr.estimation.planning import (
    DesignChoice,
    design_choice,
    plan_call,
    query_rows,
    resolve,
)
from captum_lr.estimation.priors import GroupPrior
from captum_lr.estimation.projection import LastEstimate, project_gradients
from captum_lr.estimation.queries import QueryRunner
from captum_lr.estimation.rows import StreamLayout
from captum_lr.estimation.supports import BlockSpec
from captum_lr.estimation.surrogate import Surrogate, resolve_surrogate_design


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
    gradient, exact at ``n = d``). For a single input of ``(C, H, W)``
    images of at least 48 pixels a side and at least 960 samples per row
    (``"orthogonal-frequency"``) they are DCT directions in strata by channel
    (shared or contrast) and ring of spatial frequency: each row probes every
    stratum and spends the rest of its samples on the strata where the output
    changes most per direction, an estimate of the gradient's projection on
    the strata it reached (:meth:`project`). For other ``(C, H, W)`` images
    (smaller, fewer samples, several inputs) they come in two strata
    (``"orthogonal-channels"``), channel-shared directions and channel
    contrasts: each row probes both and, where the shared ones carry more of
    the output's change (photos), spends its samples there, estimating the
    channel-mean gradient from a ``C``-th of the coordinates (:meth:`project`;
    see :mod:`captum_lr.estimation.designs`).

    Args:

        n_samples (int, optional): Noise samples per input row. Each sample costs
                    two forward rows with ``antithetic=True``, one otherwise
                    (plus one row per input row for ``f(x)``, and with
                    ``sigma="auto"`` one more for each of the 4 first samples,
                    sent as +/- pairs to choose the noise scale). With
                    ``design="auto"`` and at most ``n_samples`` coordinates per
                    row, exactly ``d`` samples are used.
                    Default: 128
        sigma (float or str, optional): The noise scale. A positive float is used
                    as is for every input tensor; ``"auto"`` uses, for
                    coordinate sweeps, ``5e-3`` times each coordinate's own
                    magnitude, at least ``0.5`` times its input tensor's root
                    mean square in the example (a step that follows each
                    feature's scale, as numerical differentiation does, so a
                    feature of scale 1 next to one of scale 100 is not stepped
                    by 1), and for random designs ``1e-4`` times the root mean
                    square of each input tensor in each example (of 1 if that
                    is 0; under :meth:`noise_streams` with a reference, of the
                    example the row belongs to, e.g. the input of an
                    IntegratedGradients path). For one-sided
                    random designs each row then measures, from its first 4
                    samples sent as +/- pairs, the model's curvature and the
                    output's rounding at that scale, and its later samples use
                    a smaller scale where the model is curved, a larger one
                    where the output barely moves (``last_sigma_scale``;
                    :mod:`captum_lr.estimation.noise_scale`). Smaller sigma
                    estimates the gradient more locally (less smoothing bias)
                    but is more
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
                    ``"orthogonal-channels"``, ``"orthogonal-frequency"`` or
                    ``"coordinate"``; see :mod:`captum_lr.estimation.designs`.
                    Default: ``"auto"``
        antithetic (bool, optional): Evaluate each sample at ``x + sigma u`` and
                    ``x - sigma u`` (bias O(sigma^2), two rows per sample), or at
                    ``x + sigma u`` with ``f(x)`` as control variate (bias
                    O(sigma), one row per sample: twice the directions per
                    row, which is what counts far from ``n_samples >= d``).
                    None: antithetic for coordinate sweeps, one-sided otherwise.
                    Default: None
        prior (GroupPrior or Surrogate, optional): Share each sample's noise
                    within groups
                    (:class:`~captum_lr.estimation.priors.SharedChannels`,
                    :class:`~captum_lr.estimation.priors.Grid`, a feature mask):
                    the estimate is then the projection of the gradient onto
                    group-constant
                    inputs (see :meth:`project`). Or a
                    :class:`~captum_lr.Surrogate`: a differentiable stand-in
                    whose gradient at each row takes one of its samples, the
                    others going orthogonal to it
                    (:mod:`~captum_lr.estimation.surrogate`). Exclusive with
                    ``block`` and ``feature_mask``.
                    Default: None
        track_stderr (bool, optional): Also compute each coordinate's standard
                    error from the spread of the samples (``last_stderr``);
                    costs one more ``(rows, d)`` buffer.
                    Default: False
        seed (int, optional): None draws a new random key per call from torch's
                    global generator. An int makes the noise a function of the
                    seed, the rows' shapes and the sample index only (common
                    random numbers): the same call re-sends the same rows, an
                    example's map does not depend on the other rows of its
                    batch nor on ``max_batch_size``, and a seeded map is a
                    smooth function of the input, so Captum's sensitivity and
                    infidelity metrics measure the model, not the noise.
                    Default: None
        shared_noise (bool, optional): Give every row of a plain call the same
                    noise directions (rows are different examples, so this
                    costs their maps nothing). The LR attribution classes keep
                    independent noise where rows are averaged: one stream per
                    path point of IntegratedGradients, per random baseline of
                    GradientShap (:meth:`noise_streams`). False gives every
                    row its own directions: use it under
                    :class:`~captum.attr.NoiseTunnel` so that its average also
                    reduces the estimator's noise (at the price of maps that
                    jump under small input changes).
                    Default: True
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
        last_sigma_scale (Tensor): With ``sigma="auto"`` and a one-sided
                    random design, per row of the last call, the factor the
                    probe pairs applied to the noise scale of the later samples
                    (1: unchanged); None otherwise.
        last_expected_cosine (Tensor): Per row of the last call, the design's
                    expected cosine between the estimate and the gradient, for
                    a linear function: ``sqrt(n/d)`` for orthogonal
                    directions, ``sqrt(n/(n+d+1))`` for Gaussian ones, 1 for a
                    complete sweep, from the probes' measure of how the
                    gradient's energy splits between channel-shared and
                    contrast directions for the channel strata; with a prior,
                    the cosine with the projected gradient; None for blocks
                    and feature groups.
                    Below 0.5 the estimator warns once
                    (:class:`LowAccuracyWarning`) with the ``n_samples`` that
                    reaches 0.9.
        last_prior_cosine (Tensor): With a :class:`~captum_lr.Surrogate`, per
                    row of the last call, the estimated cosine between the
                    surrogate's gradient and the model's (None otherwise, or
                    with ``n_samples=1``).

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
        prior: GroupPrior | Surrogate | None = None,
        seed: int | None = None,
        shared_noise: bool = True,
        max_batch_size: int = 64,
        show_progress: bool = False,
        track_stderr: bool = False,
    ) -> None:
        self.n_samples = n_samples
        self.sigma = sigma
        self.block = block
        self.feature_mask = feature_mask
        self.design = design
        self.antithetic = antithetic
        self.prior = prior
        self.seed = seed
        self.max_batch_size = max_batch_size
        _check_options(self)
        self.track_stderr = bool(track_stderr)
        self.shared_noise = bool(shared_noise)
        self.show_progress = show_progress
        self.queries = 0
        self.last_sigma_scale: Tensor | None = None
        self._report(CallReport())  # the other last_* attributes: None
        self._stream_layout: StreamLayout | None = None
        self._warned_accuracy = False

    def __repr__(self) -> str:
        return (
            f"LREstimator(n_samples={self.n_samples}, sigma={self.sigma!r}, "
            f"block={self.block!r}, prior={self.prior!r}, design={self.design!r}, "
            f"antithetic={self.antithetic}, seed={self.seed}, "
            f"shared_noise={self.shared_noise}, "
            f"max_batch_size={self.max_batch_size})"
        )

    @contextmanager
    def dry_run(self) -> Iterator[None]:
        r"""
        A block whose calls leave no trace on the estimator's counters: on
        exit :attr:`queries` and the one-time low-accuracy warning are as
        they were (what :func:`~captum_lr.estimate_queries` needs to count
        a call's rows without spending them).

        Examples::

            >>> with estimator.dry_run():
            ...     estimator(forward, (x,))
            >>> estimator.queries  # unchanged
        """
        queries, warned = self.queries, self._warned_accuracy
        try:
            yield
        finally:
            self.queries, self._warned_accuracy = queries, warned

    def design_for(self, inputs: Tensor | Sequence[Tensor]) -> DesignChoice:
        r"""What a call on ``inputs`` will do: the design (what ``"auto"``
        resolves to), its samples per row, whether they are antithetic, and
        whether it is a complete coordinate sweep (deterministic, exact up to
        O(sigma^2)).

        Args:

            inputs (Tensor or tuple[Tensor, ...]): Inputs of the shape the
                        estimator is called on.

        Returns:
            *DesignChoice*: ``(design, n_samples, antithetic, sweep)``.
        """
        return design_choice(self, InputLayout(_as_tuple(inputs)))

    def samples_per_row(self, inputs: Tensor | Sequence[Tensor]) -> int:
        r"""The number of noise samples a call on ``inputs`` draws per row."""
        return resolve(self, InputLayout(_as_tuple(inputs)))[1]

    def queries_for(self, inputs: Tensor | Sequence[Tensor]) -> int:
        r"""The number of forward rows one call on ``inputs`` will send.

        Args:

            inputs (Tensor or tuple[Tensor, ...]): The inputs the estimator will be
                        called on (for IntegratedGradients: ``n_steps`` times the
                        batch).

        Returns:
            *int*: forward rows, including the ``f(x)`` rows when not antithetic.
        """
        return query_rows(self, InputLayout(_as_tuple(inputs)))

    def project(
        self, inputs: Tensor | Sequence[Tensor], gradients: Tensor | Sequence[Tensor]
    ) -> tuple[Tensor, ...]:
        r"""
        What this estimator estimates of a gradient: its projection onto the
        prior's subspace; for the ``"orthogonal-channels"`` design (the default
        for smaller ``(C, H, W)`` images or budgets), per row as its probes
        decided in the last
        call (:attr:`last_contrast_scale`): the channel-mean gradient plus
        that scale times the rest (the gradient itself where it is 1); for
        ``"orthogonal-frequency"`` (the default for a single input of photos
        of at least 48 pixels a side at 960 samples or more per row), the
        projection on the frequency strata the last call reached, the marginal
        one scaled
        (:meth:`~captum_lr.estimation.frequency.FrequencyStrata.band_scale`);
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
        last = (self.last_contrast_scale, self._last_frequency, self._last_surrogate)
        return project_gradients(self, layout, grads, LastEstimate(*last))

    def count_queries(self, rows: int) -> None:
        r"""
        Adds ``rows`` forward rows to :attr:`queries` (for code that sends
        rows on the estimator's behalf, e.g. Captum's convergence delta).

        Args:

            rows (int): The rows sent.
        """
        self.queries += rows

    @contextmanager
    def noise_streams(
        self,
        layout: str,
        size: int,
        reference: Tensor | Sequence[Tensor] | None = None,
    ) -> Iterator[LREstimator]:
        r"""
        Within this context, calls give groups of rows their own noise
        streams: how the LR attribution classes keep independent noise where
        Captum averages rows (you need it only when you put an estimator into
        a Captum class yourself and want the same).

        Args:

            layout (str): ``"steps"``: rows come step-major in consecutive
                        groups of ``size`` rows (Captum's IntegratedGradients:
                        one group per path point, ``size`` = the batch), each
                        group its own stream, counted on across the calls
                        inside the context (``internal_batch_size``).
                        ``"samples"``: rows come example-major, ``size`` per
                        example (NoiseTunnel, GradientShap's random
                        baselines), row ``r`` in stream ``r % size``.
            size (int): The group size (``"steps"``) or samples per example
                        (``"samples"``).
            reference (Tensor or tuple[Tensor, ...], optional): The examples
                        (one row each, the inputs of the attribution) whose
                        RMS sets ``sigma="auto"`` for their rows; None: each
                        row's own.
                        Default: None

        Examples::

            >>> est = LREstimator(seed=0)
            >>> ig = IntegratedGradients(model_fn)
            >>> ig.gradient_func = est
            >>> with est.noise_streams("steps", x.shape[0], reference=x):
            ...     attr = ig.attribute(x, target=3, n_steps=16)
        """
        outer = self._stream_layout
        self._stream_layout = _checked_stream_layout(layout, size, reference)
        try:
            yield self
        finally:
            self._stream_layout = outer

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
        _check_values(inputs)
        layout = InputLayout(inputs)
        dtypes = [t.dtype for t in inputs]
        target, args = target_ind, additional_forward_args
        runner = QueryRunner(
            forward_fn,
            layout,
            dtypes,
            target,
            args,
            self.max_batch_size,
            self.count_queries,
        )
        if layout.batch_size == 0:
            return tuple(torch.zeros_like(t) for t in inputs)
        call = plan_call(self, inputs, layout, self._stream_layout, target, args)
        x = layout.flatten(inputs)
        sums = run_queries(
            call, runner, x, self.max_batch_size, self.track_stderr, self.show_progress
        )
        self.last_sigma_scale = sums.sigma_scale
        grads, report = finish_call(call, sums, dtypes)
        self._report(report)
        if not self._warned_accuracy:
            self._warned_accuracy = warn_low_accuracy(call.plan, report.expected_cosine)
        return grads

    def _report(self, last: CallReport) -> None:
        """Sets the ``last_*`` attributes but ``last_sigma_scale`` (and what
        :meth:`project` reads)."""
        self.last_coverage, self.last_stderr = last.coverage, last.stderr
        self.last_design, self.last_contrast_scale = last.design, last.contrast_scale
        self._last_frequency = last.frequency
        self.last_expected_cosine = last.expected_cosine
        self.last_prior_cosine, self._last_surrogate = last.prior_cosine, last.surrogate


def _check_options(est: LREstimator) -> None:
    """The constructor's arguments, as set on ``est``: a clear error for each
    mistake."""
    n_samples, sigma, design = est.n_samples, est.sigma, est.design
    block, feature_mask, prior = est.block, est.feature_mask, est.prior
    antithetic, seed = est.antithetic, est.seed
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
        if not isinstance(prior, (GroupPrior, Surrogate)):
            raise TypeError(
                "prior must be a captum_lr.estimation.priors.GroupPrior (Grid, "
                "SharedChannels, GroupPrior(mask)) or a captum_lr.Surrogate, "
                f"not {prior!r}."
            )
        if isinstance(prior, Surrogate):
            resolve_surrogate_design(design, 1, 1, antithetic)
        if block is not None or feature_mask is not None:
            raise ValueError(
                "a prior shares noise over whole groups; it cannot be combined "
                "with block or feature_mask."
            )
    if antithetic is not None and not isinstance(antithetic, bool):
        raise TypeError(f"antithetic must be None or a bool, not {antithetic!r}.")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"seed must be None or an int, not {seed!r}.")
    _check_batch_size(est.max_batch_size)


def _checked_stream_layout(
    layout: str, size: int, reference: Tensor | Sequence[Tensor] | None
) -> StreamLayout:
    """The checked arguments of :meth:`LREstimator.noise_streams`."""
    if layout not in ("steps", "samples"):
        raise ValueError(f"layout must be 'steps' or 'samples', not {layout!r}.")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}.")
    ref = None if reference is None else _as_tuple(reference)
    return StreamLayout(layout, size, ref)


def _check_batch_size(max_batch_size: Any) -> None:
    if (
        isinstance(max_batch_size, bool)
        or not isinstance(max_batch_size, int)
        or max_batch_size < 1
    ):
        raise ValueError(
            f"max_batch_size must be a positive int, got {max_batch_size!r}."
        )


def _check_values(inputs: tuple[Tensor, ...]) -> None:
    """Meta tensors and non-finite values, before any query is sent."""
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor):
            continue
        if t.is_meta:
            raise ValueError(
                f"input {i} is a meta tensor: it has a shape but no values, and "
                "a forward-only estimator must evaluate the model at the input; "
                "pass a tensor with values (e.g. on 'cpu' or 'cuda')."
            )
        if t.dtype.is_floating_point or t.dtype.is_complex:
            bad = int((~torch.isfinite(t)).sum().item())
            if bad:
                raise ValueError(
                    f"input {i} has {bad} NaN or infinite values (of {t.numel()}); "
                    "the gradient is estimated at the input, so it must be "
                    "finite: check the preprocessing (e.g. a division by a zero "
                    "standard deviation) or replace them (torch.nan_to_num)."
                )


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
