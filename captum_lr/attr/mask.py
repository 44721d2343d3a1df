r"""Region maps: each feature group's Banzhaf value from random masks, by the
likelihood ratio (:class:`LRMaskGradient`)."""

from __future__ import annotations

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
    PerturbationAttribution,
)
from captum.log import log_usage
from torch import Tensor

from captum_lr.estimation.layout import InputLayout
from captum_lr.estimation.mask_design import SignDesign
from captum_lr.estimation.masking import mask_gradient
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
    subsets of the other
    groups kept. The masks come in foldover pairs (a mask and its complement,
    which cancels every even-order interaction between groups) drawn from
    orthogonal blocks (:class:`~captum_lr.estimation.mask_design.SignDesign`: exact for
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
                    (see :func:`captum_lr.estimation.masking.mask_gradient`).

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
