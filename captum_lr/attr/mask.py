r"""Region maps: each feature group's Banzhaf value from random masks, by the
likelihood ratio (:class:`LRMaskGradient`)."""

from __future__ import annotations

import sys
import threading
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
    NoiseTunnel,
    PerturbationAttribution,
)
from captum.log import log_usage
from torch import Tensor

from captum_lr.attr.baselines import broadcasts_to, expand_baselines
from captum_lr.attr.checks import input_tensors
from captum_lr.estimation.layout import InputLayout
from captum_lr.estimation.mask_design import BernoulliDesign, SignDesign
from captum_lr.estimation.masking import MaskEstimate, mask_gradient, mask_regression
from captum_lr.estimation.output_scale import ScaledRunner, check_output_scale
from captum_lr.estimation.priors import GroupPrior
from captum_lr.estimation.queries import QueryRunner


class LRMaskGradient(PerturbationAttribution):
    r"""
    The likelihood-ratio gradient of the model's output over random feature
    masks: each feature group's **Banzhaf value**, from forward queries only.

    Every query keeps each group of ``feature_mask`` (the input's values) or
    replaces it by the baseline, at random with probability 1/2; the
    attribution of a group is the derivative of the expected output with
    respect to its keep probability, estimated by the likelihood ratio of that
    Bernoulli noise (:mod:`captum_lr.estimation.masking`). That derivative is
    the change in the output from keeping the group, averaged over all
    subsets of the other groups kept. The masks come in foldover pairs (a mask
    and its complement, which cancels every even-order interaction between
    groups) drawn from orthogonal blocks
    (:class:`~captum_lr.estimation.mask_design.SignDesign`: exact for outputs
    linear in the groups once a block of ``2N`` rows is complete, ``N`` the
    smallest power of two at least the number of groups).

    ``keep_prob`` chooses the estimand: at a keep probability ``p`` other than
    1/2 the derivative is the group's **p-binomial semivalue** (its marginal
    contributions over subsets of the other groups weighted by ``p^|S| (1 -
    p)^(k - 1 - |S|)``; ``p`` near 1 measures what removing the group from the
    nearly whole input costs), estimated without bias by a cross-fitted
    regression on independent masks
    (:func:`~captum_lr.estimation.masking.mask_regression`); a tuple of keep
    probabilities splits the rows and averages their semivalues.

    ``output_scale`` chooses the scale of the explained output (same queries,
    same estimator): ``"identity"`` (the default) explains ``f`` itself;
    ``"angular"`` the angle ``arcsin(sqrt(f))`` of a probability ``f`` (the
    variance-stabilizing transform of a proportion, which stretches changes
    near 0 and 1), ``"logit"`` its log-odds, and ``"auto"`` the angle when
    every output of the call lies in ``[0, 1]`` and ``f`` otherwise. Measured
    on an image classifier (issue 15), neither transform ranked regions more
    faithfully than ``f`` on the held-out photos, though both did on the
    tuning photos.

    Unlike the gradient classes it explains large perturbations: use it for
    region maps of images (a :class:`~captum_lr.Grid` feature mask and a
    blurred baseline, :func:`~captum_lr.blur_baseline`; the most faithful
    captum_lr map in the benchmarks) and for groups of tabular features. Like
    Captum's perturbation methods it gives every coordinate of a group the
    group's attribution, takes one feature mask for all examples or one per
    example, and takes integer inputs (token ids, category codes): a masked
    query selects each coordinate from the input or the baseline, so it keeps
    the input's dtype and adds no noise. The values need not sum to ``f(x) -
    f(baseline)`` (Banzhaf values are not efficient, Shapley values are).

    Args:

        forward_func (Callable): The forward function of the model or any
                    modification of it; it needs no autograd. It must return
                    scores (floating point): for a classifier that returns
                    labels, wrap it in :class:`~captum_lr.BlackBox` with
                    ``output=LabelIndicator(num_classes)``.
        seed (int, optional): None draws the masks from torch's global random
                    generator; an int makes every call draw the same masks
                    (on any device, however the queries are batched).
                    Default: None

    Attributes:

        queries (int): Forward rows sent so far (assign 0 to reset).
        last_stderr (tuple[Tensor, ...] or Tensor): For the last call, each
                    coordinate's standard error (its group's), shaped like the
                    attributions. With more pairs than groups: the residual
                    of the additive fit (what the blocks do not cancel) plus
                    the incomplete last block's aliasing; with fewer: the
                    larger of that aliasing and the spread of the pairs as if
                    independent (conservative); ``inf`` with one pair (a
                    :class:`~captum_lr.estimation.masking.MaskStderrWarning`
                    says so). See
                    :func:`captum_lr.estimation.masking.mask_stderr`.
        last_output_scale (str): For the last call, the scale its values
                    are on: ``"angular"``, ``"identity"`` or ``"logit"``
                    (what ``output_scale="auto"`` chose).

    Examples::

        >>> from captum_lr import Grid, LRMaskGradient, blur_baseline
        >>> explainer = LRMaskGradient(net, seed=0)
        >>> attribution = explainer.attribute(
        ...     image, baselines=blur_baseline(image), target=285,
        ...     feature_mask=Grid(14), n_samples=1000,
        ... )
        >>> explainer.queries  # 1000 forward rows per image
        >>> # token ids, one grouping per sentence, pad id as the baseline
        >>> LRMaskGradient(classifier).attribute(
        ...     token_ids, baselines=pad_id, feature_mask=word_ids, target=1
        ... )
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
        self.last_output_scale: str | None = None

    def _count(self, rows: int) -> None:
        self.queries += rows

    @staticmethod
    def tensor_mask(
        inputs: TensorOrTupleOfTensorsGeneric,
        feature_mask: GroupPrior,
    ) -> TensorOrTupleOfTensorsGeneric:
        r"""
        The Captum-style tensor feature mask of a :class:`~captum_lr.Grid` (or
        any :class:`~captum_lr.GroupPrior`) for these inputs: what
        ``NoiseTunnel`` needs, since it expands tensor masks only.

        Args:

            inputs (Tensor or tuple[Tensor, ...]): The inputs (only their
                        shapes and device are used).
            feature_mask (GroupPrior): The groups, e.g. ``Grid(14)``.

        Returns:
            *Tensor* or *tuple[Tensor, ...]*: one long tensor per input, shaped
            like a row with a leading 1 (shared by all examples).

        Examples::

            >>> mask = LRMaskGradient.tensor_mask(x, Grid(4))
            >>> NoiseTunnel(LRMaskGradient(model)).attribute(
            ...     x, nt_samples=4, target=0, feature_mask=mask, n_samples=64
            ... )
        """
        if not isinstance(feature_mask, GroupPrior):
            raise TypeError(
                f"feature_mask is a {type(feature_mask).__name__}; tensor_mask "
                "turns a Grid or GroupPrior into tensors."
            )
        is_tuple = isinstance(inputs, tuple)
        xs, _ = input_tensors(inputs)
        layout = InputLayout(_float_proxies(xs))
        masks = feature_mask.mask(layout)
        masks = (masks,) if isinstance(masks, Tensor) else tuple(masks)
        out = tuple(
            m.to(layout.device, torch.long).expand(shape).unsqueeze(0)
            for m, shape in zip(masks, layout.shapes)
        )
        return _format_output(is_tuple, out)  # type: ignore[return-value]

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
        keep_prob: float | tuple[float, ...] = 0.5,
        output_scale: str = "identity",
    ) -> TensorOrTupleOfTensorsGeneric:
        r"""
        Args:

            inputs (Tensor or tuple[Tensor, ...]): The inputs to explain; the
                        first dimension indexes examples. Any dtype: integer
                        and boolean inputs (token ids, category codes) are
                        masked by selection and keep their dtype.
            baselines (scalar, Tensor or tuple, optional): What a masked group
                        becomes, as in Captum's perturbation methods: a scalar
                        or a tensor per input, broadcastable to the input (one
                        row for all examples or one per example). For integer
                        inputs, whole numbers in the dtype's range (a pad or
                        unknown token id). For images a blurred copy
                        (:func:`~captum_lr.blur_baseline`) keeps the masked
                        queries close to photos.
                        Default: 0 for every input
            target (int, tuple, Tensor or list, optional): As in Captum: the
                        output explained, per example.
                        Default: None
            additional_forward_args (Any, optional): As in Captum.
                        Default: None
            feature_mask (Tensor, tuple[Tensor, ...] or GroupPrior, optional):
                        The groups, as in Captum: one integer tensor per input
                        shaped like a row, optionally with a leading 1 (one
                        grouping for all examples) or shaped like the input
                        (one grouping per example); equal values form a group,
                        across inputs. Or a :class:`~captum_lr.Grid` /
                        :class:`~captum_lr.GroupPrior` (through ``NoiseTunnel``,
                        pass :meth:`tensor_mask` of it). None makes every
                        scalar its own group.
                        Default: None
            n_samples (int, optional): Masked queries per example: an even
                        number (foldover pairs), at least 2 (4 for a standard
                        error). These are all the forward rows the call
                        spends.
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
            keep_prob (float or tuple[float, ...], optional): The probability
                        ``p`` that a query keeps a group. 1/2 gives the
                        Banzhaf value (foldover sign design). Another ``p`` in
                        (0, 1) gives ``dF/dp_G`` at ``p``, the **p-binomial
                        semivalue** (marginal contributions over subsets of
                        the other groups weighted by ``p^|S| (1 - p)^(k - 1 -
                        |S|)``: ``p`` near 1 weighs removing the group from
                        the nearly whole input), by least squares with an
                        intercept on independent masks (cross-fitted over
                        ten folds: unbiased), which needs more than ``10 (k
                        + 1) / 9`` rows for ``k`` groups. A tuple splits
                        ``n_samples`` equally between its values and returns
                        the mean of their semivalues: ``(0.5, 0.7)`` is the
                        mean of the Banzhaf value and the 0.7-semivalue.
                        Default: 0.5
            output_scale (str, optional): The scale on which the selected
                        output is explained; the values and
                        :attr:`last_stderr` are those of the transformed
                        output ``g(f)`` (same queries, same estimator):
                        ``"identity"``: ``f``. ``"angular"``:
                        ``arcsin(sqrt(f))`` of a probability ``f``.
                        ``"logit"``: the log-odds ``log(f / (1 - f))``, ``f``
                        clamped to ``[1e-12, 1 - 1e-12]``. ``"auto"``:
                        ``"angular"`` when every output of the call lies in
                        ``[0, 1]``, ``"identity"`` otherwise (both computed
                        from the same queries; the choice is made after the
                        last one and stored in :attr:`last_output_scale`).
                        ``"angular"`` and ``"logit"`` raise a ``ValueError``
                        on an output outside ``[0, 1]``. Measured on an
                        image classifier (issue 15; insertion - deletion at
                        1,000 / 4,000 rows), the angle and the log-odds were
                        ahead of ``f`` on the tuning photos and not on the
                        eval photos (angle: -0.002 / -0.012; log-odds:
                        -0.03 / -0.09), so the default stays ``f``.
                        Default: ``"identity"``

        Returns:
            *Tensor* or *tuple[Tensor, ...]* of **attributions**, shaped like
            the inputs and typed like them (floating point for integer and
            boolean inputs: float32, or wider if another input is): every
            coordinate holds its group's Banzhaf value of the selected output
            on the output scale (its semivalue at ``keep_prob``).

        Examples::

            >>> attribution = LRMaskGradient(model).attribute(
            ...     rows, target=1, feature_mask=groups, n_samples=256
            ... )
        """
        probs = _keep_probs(keep_prob)
        scale = check_output_scale(output_scale)
        _check_budget(n_samples, perturbations_per_eval, probs == (0.5,))
        is_tuple = isinstance(inputs, tuple)
        xs, _ = input_tensors(inputs)
        layout = InputLayout(_float_proxies(xs))
        dtypes = [t.dtype for t in xs]
        out_dtypes = [dt if dt.is_floating_point else layout.dtype for dt in dtypes]
        bases = expand_baselines(baselines, xs)
        index, k = _group_index(feature_mask, layout)
        _check_regression_rows(n_samples, probs, k)
        base_runner = QueryRunner(
            self.forward_func,
            layout,
            dtypes,
            target,
            additional_forward_args,
            perturbations_per_eval * max(layout.batch_size, 1),
            self._count,
        )
        runner = ScaledRunner(base_runner, scale)
        if layout.batch_size == 0:
            return self._no_rows(xs, out_dtypes, is_tuple, runner)
        seed = self.seed
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        generator = torch.Generator().manual_seed(seed)
        flat_dtype = _flat_dtype(dtypes)
        estimate = _estimate_mixture(
            runner,
            (_flatten(xs, flat_dtype), _flatten(bases, flat_dtype), index),
            k,
            probs,
            n_samples,
            generator,
            perturbations_per_eval,
            show_progress,
        )
        self.last_output_scale = runner.chosen
        values = layout.split(_gather(estimate.values, index), out_dtypes)
        stderr = layout.split(_gather(estimate.stderr, index), out_dtypes)
        self.last_stderr = stderr if is_tuple else stderr[0]
        return _format_output(is_tuple, values)

    def _no_rows(
        self,
        xs: tuple[Tensor, ...],
        out_dtypes: list[torch.dtype],
        is_tuple: bool,
        runner: ScaledRunner,
    ) -> Any:
        """Zero attributions and standard errors for inputs with no rows."""
        zeros = tuple(
            torch.zeros(x.shape, dtype=dt, device=x.device)
            for x, dt in zip(xs, out_dtypes)
        )
        stderr = tuple(z.clone() for z in zeros)
        self.last_stderr = stderr if is_tuple else stderr[0]
        self.last_output_scale = runner.chosen
        return _format_output(is_tuple, zeros)


def _check_budget(
    n_samples: Any, perturbations_per_eval: Any, pairs: bool = True
) -> None:
    """``n_samples``: an int >= 2, even with ``pairs`` (keep probability 1/2
    alone: a mixture gives its 1/2 share an even number);
    ``perturbations_per_eval``: an int >= 1."""
    for name, value, low in (
        ("n_samples", n_samples, 2),
        ("perturbations_per_eval", perturbations_per_eval, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, not {value!r}.")
        if value < low:
            raise ValueError(f"{name} must be at least {low}, got {value}.")
    if pairs and n_samples % 2:
        raise ValueError(
            f"n_samples must be even, got {n_samples}: the masks come in "
            "pairs (a mask and its complement); use "
            f"{n_samples - 1} or {n_samples + 1}."
        )


def _keep_probs(keep_prob: Any) -> tuple[float, ...]:
    """``keep_prob`` as a tuple of distinct floats in (0, 1)."""
    probs = keep_prob if isinstance(keep_prob, tuple) else (keep_prob,)
    for p in probs:
        if isinstance(p, bool) or not isinstance(p, (int, float)):
            raise TypeError(f"keep_prob must be a float or a tuple, not {p!r}.")
        if not 0.0 < p < 1.0:
            raise ValueError(f"keep_prob must be in (0, 1), got {p}.")
    if not probs or len(set(probs)) != len(probs):
        raise ValueError(f"keep_prob must hold distinct values, got {keep_prob!r}.")
    return tuple(float(p) for p in probs)


def _split_rows(n_samples: int, probs: tuple[float, ...]) -> list[int]:
    """``n_samples`` split between the keep probabilities: equal shares, even
    for 1/2 (foldover pairs), the remainder to the first other value."""
    rows = [n_samples // len(probs)] * len(probs)
    rows = [r - r % 2 if p == 0.5 else r for r, p in zip(rows, probs)]
    rest = n_samples - sum(rows)
    rows[next((i for i, p in enumerate(probs) if p != 0.5), 0)] += rest
    return rows


def _check_regression_rows(n_samples: int, probs: tuple[float, ...], k: int) -> None:
    """A keep probability other than 1/2 needs more than ``10 (k + 1) / 9``
    rows (a regression on 9 of 10 folds)."""
    rows = _split_rows(n_samples, probs)
    for p, r in zip(probs, rows):
        if p != 0.5 and 9 * r <= 10 * (k + 1):
            raise ValueError(
                f"keep_prob={p} fits a regression on {k} groups on 9 of 10 "
                f"folds and needs more than {10 * (k + 1) // 9} of the rows; it "
                f"gets {r} of n_samples={n_samples}: raise n_samples or use "
                "keep_prob=0.5."
            )
        if p == 0.5 and r < 2:
            raise ValueError(
                f"keep_prob=0.5 gets {r} of n_samples={n_samples} rows and needs "
                "a pair: raise n_samples."
            )


def _estimate_mixture(
    runner: ScaledRunner,
    flat: tuple[Tensor, Tensor, Tensor],
    k: int,
    probs: tuple[float, ...],
    n_samples: int,
    generator: torch.Generator,
    perturbations_per_eval: int,
    show_progress: bool,
) -> MaskEstimate:
    """Every keep probability's estimate on its share of ``n_samples``, on the
    runner's chosen output scale, averaged."""
    estimates = []  # a loop, not a comprehension: the warnings' stacklevel
    for p, rows in zip(probs, _split_rows(n_samples, probs)):
        estimates.append(
            _estimate(
                runner,
                flat,
                k,
                p,
                rows,
                generator,
                perturbations_per_eval,
                show_progress,
            )
        )
    # "auto" chooses after the call's last query, so select only now
    parts = [runner.select(e) for e in estimates]
    return MaskEstimate(
        sum(e.values for e in parts) / len(parts),
        sum(e.stderr.square() for e in parts).sqrt() / len(parts),
    )


def _estimate(
    runner: ScaledRunner,
    flat: tuple[Tensor, Tensor, Tensor],
    k: int,
    keep_prob: float,
    rows: int,
    generator: torch.Generator,
    perturbations_per_eval: int,
    show_progress: bool,
) -> MaskEstimate:
    """One keep probability's estimate: foldover signs at 1/2, regression on
    independent masks otherwise."""
    inputs, baselines, index = flat
    if keep_prob == 0.5:
        design = SignDesign(k, generator, inputs.device)
        return mask_gradient(
            runner,
            inputs,
            baselines,
            index,
            rows // 2,
            design,
            max(1, perturbations_per_eval // 2),
            show_progress,
        )
    design = BernoulliDesign(k, keep_prob, generator, inputs.device)
    return mask_regression(
        runner,
        inputs,
        baselines,
        index,
        rows,
        design,
        perturbations_per_eval,
        show_progress,
    )


def _float_proxies(xs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """Stand-ins for the inputs with a floating dtype, for :class:`InputLayout`
    (which needs only shapes, devices and dtypes; no memory is allocated)."""
    return tuple(
        t
        if t.dtype.is_floating_point
        else torch.zeros((), dtype=torch.float32, device=t.device).expand(t.shape)
        for t in xs
    )


def _flat_dtype(dtypes: list[torch.dtype]) -> torch.dtype:
    """A dtype that holds every input's values exactly (float64 when integer
    and floating inputs mix)."""
    out = dtypes[0]
    for dt in dtypes[1:]:
        out = torch.promote_types(out, dt)
    if out.is_floating_point and not all(dt.is_floating_point for dt in dtypes):
        return torch.float64
    return out


def _flatten(tensors: tuple[Tensor, ...], dtype: torch.dtype) -> Tensor:
    rows = tensors[0].shape[0]
    return torch.cat([t.detach().reshape(rows, -1).to(dtype) for t in tensors], 1)


def _gather(values: Tensor, index: Tensor) -> Tensor:
    """Each coordinate's group value: ``(rows, k)`` to ``(rows, d)``."""
    if index.dim() == 1:
        return values.index_select(1, index)
    return values.gather(1, index)


def _group_index(
    feature_mask: Tensor | tuple[Tensor, ...] | GroupPrior | None,
    layout: InputLayout,
) -> tuple[Tensor, int]:
    """The group (``0 .. k - 1``) of every flat coordinate: ``(d,)`` when the
    rows share one grouping, ``(rows, d)`` otherwise; and ``k``, the most
    groups of a row. Ids are numbered in increasing order within each row."""
    if feature_mask is None:
        return torch.arange(layout.dim, device=layout.device), layout.dim
    if isinstance(feature_mask, GroupPrior):
        feature_mask = feature_mask.mask(layout)
    if isinstance(feature_mask, list):
        raise TypeError(
            "feature_mask is a list; pass a tensor or a tuple with one integer "
            "tensor per input."
        )
    masks = (feature_mask,) if isinstance(feature_mask, Tensor) else feature_mask
    if not isinstance(masks, tuple) or len(masks) != len(layout.shapes):
        got = len(masks) if isinstance(masks, tuple) else type(masks).__name__
        raise ValueError(
            f"the feature mask has {got} tensors but the inputs have "
            f"{len(layout.shapes)}; give one mask per input tensor."
        )
    batch = layout.batch_size
    flat = []  # per input: (1 or rows, coordinates)
    for i, (fm, shape) in enumerate(zip(masks, layout.shapes)):
        if not isinstance(fm, Tensor) or fm.dtype.is_floating_point:
            what = fm.dtype if isinstance(fm, Tensor) else type(fm).__name__
            raise ValueError(
                f"feature mask {i} must be an integer tensor of group ids, not {what}."
            )
        per_row = fm.dim() == len(shape) + 1
        lead = fm.shape[0] if per_row else 1
        if lead not in (1, batch):
            raise ValueError(
                f"feature mask {i} has first dimension {lead} but the inputs have "
                f"{batch} rows; use 1 (one grouping for all examples) or {batch} "
                "(one per example)."
            )
        row_shape = fm.shape[1:] if per_row else fm.shape
        if not broadcasts_to(row_shape, shape):
            raise ValueError(
                f"feature mask {i} has shape {tuple(fm.shape)}, which does not "
                f"broadcast to input {i}'s row shape {tuple(shape)}; use one "
                f"shaped {tuple(shape)}, {(1, *shape)} or {(batch, *shape)} "
                "(one grouping per example)."
            )
        fm = fm.reshape(lead, *row_shape).expand(lead, *shape)
        flat.append(fm.reshape(lead, -1).to(layout.device, torch.long))
    if layout.dim == 0 or batch == 0:
        return torch.zeros(layout.dim, dtype=torch.long, device=layout.device), 1
    if all(f.shape[0] == 1 for f in flat):
        ids = torch.cat([f[0] for f in flat])
    else:
        ids = torch.cat([f.expand(batch, -1) for f in flat], 1)  # (rows, d)
        if bool((ids == ids[:1]).all()):  # one grouping repeated: share it
            ids = ids[0]
    if ids.dim() == 1:
        dense = torch.unique(ids, return_inverse=True)[1]
        return dense, int(dense.max().item()) + 1
    ranked, order = ids.sort(1)
    new = torch.ones_like(ranked, dtype=torch.bool)
    new[:, 1:] = ranked[:, 1:] != ranked[:, :-1]
    rank = new.long().cumsum(1) - 1
    dense = torch.empty_like(rank).scatter_(1, order, rank)
    return dense, int(rank[:, -1].max().item()) + 1


# ------------------------------------------------------------ NoiseTunnel guard

_guard_lock = threading.Lock()


def _refuse_group_priors(original: Callable[..., Any]) -> Callable[..., Any]:
    def _expand_and_update_feature_mask(n_samples: int, kwargs: dict) -> None:
        mask = kwargs.get("feature_mask")
        if isinstance(mask, GroupPrior):
            raise TypeError(
                f"NoiseTunnel expands feature masks as tensors and cannot take "
                f"{mask!r}; pass its tensor mask instead: "
                f"feature_mask=LRMaskGradient.tensor_mask(inputs, {mask!r})."
            )
        original(n_samples, kwargs)

    _expand_and_update_feature_mask.__wrapped__ = original  # type: ignore[attr-defined]
    _expand_and_update_feature_mask._captum_lr_guard = True  # type: ignore[attr-defined]
    return _expand_and_update_feature_mask


def guard_noise_tunnel_feature_masks() -> None:
    r"""
    Makes ``NoiseTunnel.attribute(..., feature_mask=Grid(4))`` raise a
    ``TypeError`` that says to pass :meth:`LRMaskGradient.tensor_mask` instead
    of Captum's bare assertion ("`inputs` must be a torch.Tensor ...").

    NoiseTunnel expands the feature mask (``_expand_and_update_feature_mask``
    in its module) before it calls the wrapped attribution, so the attribution
    cannot check it first. This replaces that name in NoiseTunnel's module with
    a wrapper that checks for a :class:`~captum_lr.GroupPrior` and otherwise
    calls Captum's function unchanged. Idempotent; importing
    :mod:`captum_lr.attr.mask` calls it.

    Examples::

        >>> from captum_lr.attr.mask import guard_noise_tunnel_feature_masks
        >>> guard_noise_tunnel_feature_masks()
    """
    with _guard_lock:
        module = sys.modules.get(NoiseTunnel.__module__)
        original = getattr(module, "_expand_and_update_feature_mask", None)
        if original is None or getattr(original, "_captum_lr_guard", False):
            return  # another Captum layout, or installed already
        module._expand_and_update_feature_mask = _refuse_group_priors(original)


guard_noise_tunnel_feature_masks()
