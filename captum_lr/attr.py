r"""Captum's gradient attributions with the likelihood-ratio estimator as engine.

Each class is the Captum class of the same name without ``LR``; only the
gradient engine differs. ``attribute`` and every argument are inherited, so
``internal_batch_size``, ``return_convergence_delta``, targets, tuple inputs,
``additional_forward_args`` and :class:`captum.attr.NoiseTunnel` behave as in
Captum.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

import torch
from captum._utils.common import _format_output
from captum._utils.typing import (
    BaselineType,
    TargetType,
    TensorOrTupleOfTensorsGeneric,
)
from captum.attr import (
    GradientShap,
    InputXGradient,
    IntegratedGradients,
    PerturbationAttribution,
    Saliency,
)
from captum.log import log_usage
from torch import Tensor

from captum_lr.estimator import LREstimator
from captum_lr.layout import InputLayout
from captum_lr.mask_design import SignDesign
from captum_lr.masking import mask_gradient
from captum_lr.priors import GroupPrior
from captum_lr.queries import CountingForward, QueryRunner


class _UsesEstimator:
    """Installs an :class:`LREstimator` as the instance's ``gradient_func``.

    Captum's Saliency and InputXGradient set ``requires_grad`` on the inputs and
    warn when they did not have it; the estimator needs no gradients, so the LR
    classes silence that one warning.
    """

    estimator: LREstimator

    def _install(self, estimator: LREstimator | None) -> None:
        if estimator is None:
            estimator = LREstimator()
        elif not callable(estimator):
            raise TypeError(
                "estimator must be an LREstimator (or a callable with the "
                f"signature of Captum's compute_gradients), not {estimator!r}."
            )
        self.estimator = estimator
        # Captum's GradientAttribution.__init__ sets gradient_func on the
        # instance; it must be replaced after super().__init__().
        self.gradient_func = estimator
        # Rows Captum sends itself (convergence delta) count with the
        # estimator's; the estimator unwraps this and counts its own rows once.
        counter = getattr(estimator, "_count", None)
        if counter is not None:
            self.forward_func = CountingForward(self.forward_func, counter)

    @property
    def queries(self) -> int:
        r"""Forward rows spent so far: the estimator's queries and the rows Captum
        sends directly (e.g. for the convergence delta)."""
        return self.estimator.queries


_REQUIRES_GRAD = r"Input Tensor \d+ did not already require gradients"


def _without_requires_grad_warning(method: Callable[..., Any]) -> Callable[..., Any]:
    """Captum's ``attribute`` minus its requires-grad warning (``__wrapped__`` is
    kept, which NoiseTunnel calls)."""

    @functools.wraps(method)
    def attribute(self: Any, *args: Any, **kwargs: Any) -> Any:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_REQUIRES_GRAD)
            return method(self, *args, **kwargs)

    return attribute


class LRSaliency(_UsesEstimator, Saliency):
    r"""
    Captum's :class:`~captum.attr.Saliency` with gradients estimated from forward
    queries only, so the forward function needs no autograd.

    Args:

        forward_func (Callable): The forward function of the model or any
                    modification of it.
        estimator (LREstimator, optional): The gradient estimator. Its
                    ``n_samples`` and ``sigma`` set the cost (forward rows) and
                    the accuracy of the map.
                    Default: ``LREstimator()``

    Examples::

        >>> net = ImageClassifier()  # forward may run under torch.no_grad
        >>> saliency = LRSaliency(net, estimator=LREstimator(n_samples=1000, seed=0))
        >>> attribution = saliency.attribute(input, target=3)
        >>> saliency.queries  # forward rows spent
    """

    def __init__(
        self, forward_func: Callable[..., Any], estimator: LREstimator | None = None
    ) -> None:
        super().__init__(forward_func)
        self._install(estimator)

    attribute = _without_requires_grad_warning(Saliency.attribute)


class LRInputXGradient(_UsesEstimator, InputXGradient):
    r"""
    Captum's :class:`~captum.attr.InputXGradient` with gradients estimated from
    forward queries only.

    Args:

        forward_func (Callable): The forward function of the model or any
                    modification of it.
        estimator (LREstimator, optional): The gradient estimator.
                    Default: ``LREstimator()``

    Examples::

        >>> ixg = LRInputXGradient(net)
        >>> attribution = ixg.attribute(input, target=3)
    """

    def __init__(
        self, forward_func: Callable[..., Any], estimator: LREstimator | None = None
    ) -> None:
        super().__init__(forward_func)
        self._install(estimator)

    attribute = _without_requires_grad_warning(InputXGradient.attribute)


class LRIntegratedGradients(_UsesEstimator, IntegratedGradients):
    r"""
    Captum's :class:`~captum.attr.IntegratedGradients` with the path gradients
    estimated from forward queries only. Each of the ``n_steps`` points of the
    path costs ``estimator.queries_for`` rows per example; the convergence delta
    costs two more rows per example, as in Captum.

    Args:

        forward_func (Callable): The forward function of the model or any
                    modification of it.
        multiply_by_inputs (bool, optional): As in Captum: whether to multiply
                    the integrated gradients by ``inputs - baselines``.
                    Default: True
        estimator (LREstimator, optional): The gradient estimator.
                    Default: ``LREstimator()``
        completeness (bool, optional): Opt-in correction that makes each
                    example's attributions sum to ``f(x) - f(baseline)`` at the
                    cost of the two forward rows per example that measure it. The
                    gap is spread over the coordinates in proportion to
                    ``(x - baseline)^2``, which is the least-variance (BLUE)
                    correction when the gradient estimate's error is isotropic,
                    as it is for the Gaussian and orthogonal designs. Requires
                    ``multiply_by_inputs=True``. The gap that was spread is kept in
                    ``last_completeness_gap``.
                    Default: False

    Examples::

        >>> ig = LRIntegratedGradients(net, estimator=LREstimator(seed=0))
        >>> attributions, delta = ig.attribute(
        ...     input, target=3, n_steps=32, return_convergence_delta=True
        ... )
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        multiply_by_inputs: bool = True,
        estimator: LREstimator | None = None,
        completeness: bool = False,
    ) -> None:
        if completeness and not multiply_by_inputs:
            raise ValueError(
                "completeness=True needs multiply_by_inputs=True: only then do "
                "the attributions sum to f(x) - f(baseline)."
            )
        super().__init__(forward_func, multiply_by_inputs=multiply_by_inputs)
        self._install(estimator)
        self.completeness = completeness
        self.last_completeness_gap: Tensor | None = None

    @log_usage()
    def attribute(  # type: ignore[override]
        self,
        inputs: Tensor | tuple[Tensor, ...],
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        n_steps: int = 50,
        method: str = "gausslegendre",
        internal_batch_size: int | None = None,
        return_convergence_delta: bool = False,
    ) -> Any:
        r"""
        Captum's ``IntegratedGradients.attribute`` (same arguments and returns,
        see its documentation), plus the completeness correction when the class
        was built with ``completeness=True``.

        Args:

            inputs (Tensor or tuple[Tensor, ...]): As in Captum.
            baselines (scalar, Tensor or tuple, optional): As in Captum.
            target (int, tuple, Tensor or list, optional): As in Captum.
            additional_forward_args (Any, optional): As in Captum.
            n_steps (int, optional): As in Captum. Default: 50
            method (str, optional): As in Captum. Default: "gausslegendre"
            internal_batch_size (int, optional): As in Captum. Default: None
            return_convergence_delta (bool, optional): As in Captum; after the
                        correction the delta is the float rounding left.
                        Default: False

        Returns:
            Attributions (and the convergence delta), as in Captum.

        Examples::

            >>> ig = LRIntegratedGradients(net, completeness=True)
            >>> attr, delta = ig.attribute(x, target=1, return_convergence_delta=True)
        """
        run = IntegratedGradients.attribute.__wrapped__  # type: ignore[attr-defined]
        args = (inputs, baselines, target, additional_forward_args, n_steps, method)
        if not self.completeness:
            return run(self, *args, internal_batch_size, return_convergence_delta)
        attributions, gap = run(self, *args, internal_batch_size, True)
        is_tuple = isinstance(attributions, tuple)
        attrs = attributions if is_tuple else (attributions,)
        xs = inputs if isinstance(inputs, tuple) else (inputs,)
        if baselines is None:
            bases: tuple[Any, ...] = tuple(0.0 for _ in xs)
        elif isinstance(baselines, tuple):
            bases = baselines
        else:
            bases = (baselines,)
        diffs = tuple((x - b).detach().to(a.dtype) for x, b, a in zip(xs, bases, attrs))
        gap = gap.to(attrs[0].dtype)
        energy = sum(d.flatten(1).square().sum(1) for d in diffs)
        share = torch.where(energy > 0, gap / energy.clamp_min(1e-30), 0.0)
        corrected = tuple(
            a - d.square() * share.view(-1, *([1] * (a.dim() - 1)))
            for a, d in zip(attrs, diffs)
        )
        self.last_completeness_gap = gap
        out = corrected if is_tuple else corrected[0]
        if return_convergence_delta:
            residual = gap - share * energy
            return out, residual
        return out


class LRGradientShap(_UsesEstimator, GradientShap):
    r"""
    Captum's :class:`~captum.attr.GradientShap` with gradients estimated from
    forward queries only. Captum draws the baselines and path points with
    NumPy's and torch's global random generators; seed those for a
    reproducible map.

    Args:

        forward_func (Callable): The forward function of the model or any
                    modification of it.
        multiply_by_inputs (bool, optional): As in Captum.
                    Default: True
        estimator (LREstimator, optional): The gradient estimator.
                    Default: ``LREstimator()``

    Examples::

        >>> gs = LRGradientShap(net)
        >>> baselines = torch.randn(20, 3, 32, 32)
        >>> attribution = gs.attribute(input, baselines, n_samples=8, target=5)
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        multiply_by_inputs: bool = True,
        estimator: LREstimator | None = None,
    ) -> None:
        super().__init__(forward_func, multiply_by_inputs=multiply_by_inputs)
        self._install(estimator)


class LRMaskGradient(PerturbationAttribution):
    r"""
    The likelihood-ratio gradient of the model's output over random feature
    masks: each feature group's **Banzhaf value**, from forward queries only.

    Every query keeps each group of ``feature_mask`` (the input's values) or
    replaces it by the baseline, at random with probability 1/2; the
    attribution of a group is the derivative of the expected output with
    respect to its keep probability, estimated by the likelihood ratio of that
    Bernoulli noise (:mod:`captum_lr.masking`). That derivative is the change in
    the output from keeping the group, averaged over all subsets of the other
    groups kept. The masks come in foldover pairs (a mask and its complement,
    which cancels every even-order interaction between groups) drawn from
    orthogonal blocks (:class:`~captum_lr.mask_design.SignDesign`: exact for
    outputs linear in the groups once a block of ``2N`` rows is complete, ``N``
    the smallest power of two above the number of groups).

    Unlike the gradient classes it explains large perturbations: use it for
    region maps of images (a :class:`~captum_lr.Grid` feature mask and a
    blurred baseline, :func:`~captum_lr.blur_baseline`; the most faithful
    captum_lr map in the benchmarks) and for groups of tabular features. Like
    Captum's perturbation methods it gives every coordinate of a group the
    group's attribution. The values need not sum to ``f(x) - f(baseline)``
    (Banzhaf values are not efficient, Shapley values are).

    Args:

        forward_func (Callable): The forward function of the model or any
                    modification of it; it needs no autograd.
        seed (int, optional): None draws the masks from torch's global random
                    generator; an int makes every call draw the same masks.
                    Default: None

    Attributes:

        queries (int): Forward rows sent so far (assign 0 to reset).
        last_stderr (tuple[Tensor, ...] or Tensor): For the last call, each
                    coordinate's standard error (its group's), shaped like the
                    inputs. With more pairs than groups: the residual of the
                    additive fit (what the blocks do not cancel) plus the
                    incomplete last block's aliasing, calibrated; with fewer:
                    the spread of the pairs as if independent, conservative
                    (see :func:`captum_lr.masking.mask_gradient`).

    Examples::

        >>> from captum_lr import Grid, LRMaskGradient, blur_baseline
        >>> explainer = LRMaskGradient(net, seed=0)
        >>> attribution = explainer.attribute(
        ...     image, baselines=blur_baseline(image), target=285,
        ...     feature_mask=Grid(14), n_samples=1000,
        ... )
        >>> explainer.queries  # 1000 forward rows per image
    """

    def __init__(
        self, forward_func: Callable[..., Any], seed: int | None = None
    ) -> None:
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed must be an int or None, not {seed!r}.")
        super().__init__(forward_func)
        self.seed = seed
        self.queries = 0
        self.last_stderr: Tensor | tuple[Tensor, ...] | None = None

    def _count(self, rows: int) -> None:
        self.queries += rows

    @log_usage()
    def attribute(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        feature_mask: Tensor | tuple[Tensor, ...] | GroupPrior | None = None,
        n_samples: int = 1000,
        perturbations_per_eval: int = 16,
        show_progress: bool = False,
    ) -> TensorOrTupleOfTensorsGeneric:
        r"""
        Args:

            inputs (Tensor or tuple[Tensor, ...]): The inputs to explain; the
                        first dimension indexes examples.
            baselines (scalar, Tensor or tuple, optional): What a masked group
                        becomes, as in Captum's perturbation methods: a scalar
                        or a tensor per input, broadcastable to the input (one
                        row for all examples or one per example). For images a
                        blurred copy (:func:`~captum_lr.blur_baseline`) keeps
                        the masked queries close to photos.
                        Default: 0 for every input
            target (int, tuple, Tensor or list, optional): As in Captum: the
                        output explained, per example.
                        Default: None
            additional_forward_args (Any, optional): As in Captum.
                        Default: None
            feature_mask (Tensor, tuple[Tensor, ...] or GroupPrior, optional):
                        The groups, as in Captum (one integer tensor per input
                        shaped like a row, optionally with a leading 1; equal
                        values form a group, across inputs), or a
                        :class:`~captum_lr.Grid` / :class:`~captum_lr.GroupPrior`.
                        None makes every scalar its own group.
                        Default: None
            n_samples (int, optional): Masked queries per example: an even
                        number (foldover pairs), at least 2. These are all the
                        forward rows the call spends.
                        Default: 1000
            perturbations_per_eval (int, optional): As in Captum: each forward
                        call gets at most ``perturbations_per_eval`` masked
                        copies of every example. The masks are built a pair at
                        a time, so an even number fills every call; memory is
                        about ``max(2, perturbations_per_eval)`` copies of the
                        inputs.
                        Default: 16
            show_progress (bool, optional): A tqdm bar over the forward rows.
                        Default: False

        Returns:
            *Tensor* or *tuple[Tensor, ...]* of **attributions**, shaped and
            typed like the inputs: every coordinate holds its group's Banzhaf
            value of the selected output.

        Examples::

            >>> attribution = LRMaskGradient(model).attribute(
            ...     rows, target=1, feature_mask=groups, n_samples=256
            ... )
        """
        for name, value, low in (
            ("n_samples", n_samples, 2),
            ("perturbations_per_eval", perturbations_per_eval, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, not {value!r}.")
            if value < low:
                raise ValueError(f"{name} must be at least {low}, got {value}.")
        if n_samples % 2:
            raise ValueError(
                f"n_samples must be even, got {n_samples}: the masks come in "
                "pairs (a mask and its complement); use "
                f"{n_samples - 1} or {n_samples + 1}."
            )
        is_tuple = isinstance(inputs, tuple)
        xs = inputs if is_tuple else (inputs,)
        layout = InputLayout(xs)
        dtypes = [t.dtype for t in xs]
        bases = _expand_baselines(baselines, xs)
        groups = _group_prior(feature_mask).bind(layout)
        runner = QueryRunner(
            self.forward_func,
            layout,
            dtypes,
            target,
            additional_forward_args,
            perturbations_per_eval * max(layout.batch_size, 1),
            self._count,
        )
        if layout.batch_size == 0:
            zeros = tuple(torch.zeros_like(t) for t in xs)
            self.last_stderr = tuple(z.clone() for z in zeros)
            if not is_tuple:
                self.last_stderr = self.last_stderr[0]
            return _format_output(is_tuple, zeros)
        generator = torch.Generator()
        generator.manual_seed(
            int(torch.randint(0, 2**62, (1,)).item())
            if self.seed is None
            else self.seed
        )
        design = SignDesign(groups.space.dim, generator, layout.device)
        estimate = mask_gradient(
            runner,
            layout.flatten(xs),
            layout.flatten(bases),
            groups.index,
            n_samples // 2,
            design,
            max(1, perturbations_per_eval // 2),
            show_progress,
        )
        values = layout.split(groups.gather(estimate.values), dtypes)
        stderr = layout.split(groups.gather(estimate.stderr), dtypes)
        self.last_stderr = stderr if is_tuple else stderr[0]
        return _format_output(is_tuple, values)


def _group_prior(
    feature_mask: Tensor | tuple[Tensor, ...] | GroupPrior | None,
) -> GroupPrior:
    """The groups of a Captum-style feature mask (None: every coordinate)."""
    if isinstance(feature_mask, GroupPrior):
        return feature_mask
    if feature_mask is None:
        return _EveryCoordinate()
    return GroupPrior(feature_mask)


class _EveryCoordinate(GroupPrior):
    """One group per scalar of the inputs (Captum's default feature mask)."""

    def mask(self, layout: InputLayout) -> tuple[Tensor, ...]:
        ids = torch.arange(layout.dim, device=layout.device)
        return layout.split(ids.view(1, -1), [torch.long] * len(layout.shapes))


def _expand_baselines(
    baselines: BaselineType, inputs: tuple[Tensor, ...]
) -> tuple[Tensor, ...]:
    """One baseline tensor per input, expanded to the input's shape."""
    if baselines is None:
        return tuple(torch.zeros_like(x) for x in inputs)
    given = baselines if isinstance(baselines, tuple) else (baselines,)
    if len(given) != len(inputs):
        raise ValueError(
            f"{len(given)} baselines for {len(inputs)} inputs; give one baseline "
            "(a scalar or a tensor) per input tensor."
        )
    out = []
    for i, (b, x) in enumerate(zip(given, inputs)):
        if isinstance(b, (int, float)) and not isinstance(b, bool):
            out.append(torch.full_like(x, float(b)))
            continue
        if not isinstance(b, Tensor):
            raise TypeError(
                f"baseline {i} is a {type(b).__name__}; use a number or a tensor."
            )
        if b.dim() == x.dim() - 1:
            b = b.unsqueeze(0)
        try:
            out.append(b.to(x.device, x.dtype).expand_as(x))
        except RuntimeError as exc:
            raise ValueError(
                f"baseline {i} has shape {tuple(b.shape)}, which does not "
                f"broadcast to input {i}'s shape {tuple(x.shape)}; use one row "
                "for all examples or one per example."
            ) from exc
    return tuple(out)
