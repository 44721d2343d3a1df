r"""A surrogate prior: a differentiable stand-in model whose gradient guides
the estimator (prior-guided random gradient-free estimation, P-RGF, Cheng
et al., NeurIPS 2019).

``LREstimator(prior=Surrogate(fn))``: at each input row the surrogate's
autograd gradient ``s`` gives a unit direction ``p`` (in the estimator's
noise coordinates ``z``, where ``x = x0 + sigma * z``: ``p = s * sigma /
|s * sigma|``). A row's ``n`` samples are

- sample 0: along ``p``, which measures the directional derivative
  ``a = G . p`` of the model (``G = g * sigma``, the gradient in ``z``);
- samples ``1 .. n-1``: ``m = n - 1`` orthonormal directions ``v_i`` of the
  complement of ``p``: the orthogonal design's signed DCT basis vectors
  other than the constant one ``e``, mapped by the Householder reflection
  ``H`` that sends ``e`` to ``p`` (so ``{p, H u_1, ..., H u_{d-1}}`` is an
  orthonormal basis: an orthonormal completion of the prior). They measure
  ``y_i = G . v_i``.

The estimate is ``a p + lambda * (d-1)/m * sum_i y_i v_i``. The second term is
an unbiased estimate of the gradient's part orthogonal to the prior,
``G_perp = G - a p`` (``E[sum_i v_i v_i'] = m/(d-1) (I - p p')`` because the
reflected basis vectors are drawn uniformly without replacement).

The weight ``lambda``. With ``rho = m / (d - 1)`` and the projection
``P`` onto the sampled directions, the error and the cosine of
``a p + mu P G_perp`` are, for every draw, ``|(mu - 1) P G_perp|^2 + |(I - P)
G_perp|^2`` and ``(a^2 + mu |P G_perp|^2) / (|G| sqrt(a^2 + mu^2 |P
G_perp|^2))``: both are best at ``mu = 1`` (Cauchy-Schwarz), whatever the
alignment ``c = cos(p, G)``. Because the prior's component is measured
exactly by its own query, P-RGF's alignment-dependent weight reduces to the
orthogonal projection of the gradient onto the span of everything measured
(``lambda = rho``, the default): expected squared cosine ``c^2 + (1 - c^2)
rho``, never below the prior-free orthogonal design's ``(n - 1) / d`` with the
other ``n - 1`` rows (a useless prior costs one query), ``c^2`` from one
query, exact at ``n = d``. Its expectation is ``a p + rho G_perp``
(:meth:`SurrogatePlan.project`). ``Surrogate(fn, unbiased=True)`` takes
``lambda = 1``: unbiased for the gradient for every prior, expected squared
cosine about ``1 / (c^2 + (1 - c^2) / rho)`` for one call (again never below
the prior-free design with ``n - 1`` rows); it is the better choice where many
independent estimates are averaged (``K`` estimates of the same gradient: the
projection's average stays near ``a p + rho G_perp``, whose cosine is about
``c`` for ``rho`` small, while the unbiased average converges to ``G``).

On ``(C, H, W)`` images below ``n = d`` the complement is sampled with the
strata of the prior-free default instead (the channel strata, or the
frequency strata on photos where ``design="auto"`` picks them for the ``n -
1`` samples after the prior's; :mod:`~captum_lr.estimation.surrogate_strata`):
``a p + lambda (I - p p') T`` with the strata's estimate ``T`` and the
data-driven ``lambda = B / C``, which for the flat design above is exactly
``rho``.

The alignment is estimated from the same queries, ``c^2 ~ a^2 / (a^2 +
sum_i y_i^2 / rho)`` (``LREstimator.last_prior_cosine``), and gives the
expected cosine the estimator reports.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from captum._utils.common import _select_targets
from captum._utils.typing import TargetType
from torch import Tensor

from captum_lr.estimation.designs import Draw
from captum_lr.estimation.layout import InputLayout, Space
from captum_lr.estimation.queries import normalise_target, rows_of
from captum_lr.estimation.strata import dct_rows
from captum_lr.estimation.streams import CounterNoise

SURROGATE_DESIGNS = ("auto", "orthogonal", "surrogate")
r"""The ``design=`` values an estimator with a surrogate prior accepts (they
all mean the prior plus orthonormal directions orthogonal to it)."""


class Surrogate:
    r"""
    A differentiable stand-in for the model (the float source of a quantised
    or exported model, a smaller model of the same task) whose autograd
    gradient at each row guides the estimator: one query per row measures the
    model's derivative along it, the others sample the directions orthogonal
    to it (see :mod:`captum_lr.estimation.surrogate`).

    Args:

        fn (Callable): A differentiable torch function of the same inputs as
                    the model, called as ``fn(*inputs, *additional_forward_args)``
                    and returning outputs indexed like the model's: the same
                    ``target`` selects the output of each row.
        unbiased (bool, optional): False (default) returns the projection of
                    the gradient onto everything measured: the best cosine and
                    squared error of one call, whatever the prior's alignment,
                    and what it estimates is
                    :meth:`~captum_lr.LREstimator.project`. True weights the
                    orthogonal directions to be unbiased for the
                    gradient (for averages of many independent estimates).
                    Default: False

    Examples::

        >>> from captum_lr import LREstimator, LRSaliency, Surrogate
        >>> est = LREstimator(prior=Surrogate(float_model), n_samples=100)
        >>> saliency = LRSaliency(int8_model, estimator=est)
        >>> attr = saliency.attribute(x, target=3)
        >>> est.last_prior_cosine  # estimated cos(surrogate gradient, gradient)
    """

    def __init__(self, fn: Callable[..., Any], unbiased: bool = False) -> None:
        if not callable(fn):
            raise TypeError(
                "Surrogate needs a callable (a torch module or function of the "
                f"model's inputs), not {type(fn).__name__}."
            )
        if not isinstance(unbiased, bool):
            raise TypeError(f"unbiased must be a bool, not {unbiased!r}.")
        self.fn = fn
        self.unbiased = unbiased

    def __repr__(self) -> str:
        name = getattr(self.fn, "__name__", type(self.fn).__name__)
        return f"Surrogate({name}, unbiased={self.unbiased})"

    def gradients(
        self,
        inputs: tuple[Tensor, ...],
        layout: InputLayout,
        target: TargetType,
        additional_forward_args: Any,
        max_batch_size: int,
    ) -> Tensor:
        r"""
        The surrogate's autograd gradient of each row's selected output, as a
        ``(rows, d)`` flat tensor, computed ``max_batch_size`` rows at a time.
        Raises a ValueError or TypeError naming the problem when the surrogate
        does not fit the call (wrong rows, a target that does not index its
        output, no gradient with respect to the inputs).

        Args:

            inputs (tuple[Tensor, ...]): The estimator's inputs.
            layout (InputLayout): Their layout.
            target (TargetType): Captum-style target of the call.
            additional_forward_args (Any): Captum-style extra arguments.
            max_batch_size (int): The most rows per surrogate call.

        Returns:
            *Tensor*: ``(rows, d)`` gradients in the layout's dtype.
        """
        batch = layout.batch_size
        target = normalise_target(target, batch)
        args = _as_args(additional_forward_args)
        parts = []
        for start in range(0, batch, max_batch_size):
            rows = torch.arange(
                start, min(start + max_batch_size, batch), device=layout.device
            )
            chunk = tuple(t.detach().index_select(0, rows) for t in inputs)
            chunk_args = tuple(rows_of(a, batch, rows) for a in args)
            parts.append(
                self._chunk_gradients(
                    chunk, chunk_args, rows_of(target, batch, rows), layout
                )
            )
        return torch.cat(parts) if len(parts) > 1 else parts[0]

    def _chunk_gradients(
        self,
        chunk: tuple[Tensor, ...],
        args: tuple[Any, ...],
        target: TargetType,
        layout: InputLayout,
    ) -> Tensor:
        m = chunk[0].shape[0]
        xs = tuple(t.clone().requires_grad_(True) for t in chunk)
        with torch.enable_grad():
            out = self.fn(*xs, *args)
            score = _selected(out, target, m)
            if not score.requires_grad:
                raise TypeError(
                    "the surrogate's output does not require grad, so it has no "
                    "gradient to use as a prior (computed under torch.no_grad, "
                    "detached, or through numpy?): Surrogate needs a "
                    "differentiable torch function of the inputs."
                )
            grads = torch.autograd.grad(score.sum(), xs, allow_unused=True)
        if all(g is None for g in grads):
            raise TypeError(
                "the surrogate's output does not depend differentiably on the "
                "inputs (autograd gives no gradient for any input tensor): "
                "Surrogate needs a torch function of the same inputs as the model."
            )
        flat = layout.flatten(
            [torch.zeros_like(x) if g is None else g for x, g in zip(xs, grads)]
        )
        bad = int((~torch.isfinite(flat)).sum().item())
        if bad:
            raise ValueError(
                f"the surrogate's gradient has {bad} NaN or infinite values; "
                "check the surrogate at these inputs."
            )
        return flat


def _as_args(additional_forward_args: Any) -> tuple[Any, ...]:
    if additional_forward_args is None:
        return ()
    if isinstance(additional_forward_args, tuple):
        return additional_forward_args
    return (additional_forward_args,)


def _selected(out: Any, target: TargetType, m: int) -> Tensor:
    """The surrogate output's score per row, with a clear error for each way
    it does not fit."""
    if not isinstance(out, Tensor):
        raise TypeError(
            f"the surrogate returned a {type(out).__name__}; it must return a "
            "tensor with one output row per input row, like the model."
        )
    if out.dim() == 0 or out.shape[0] != m:
        got = "a scalar" if out.dim() == 0 else f"{out.shape[0]} rows"
        raise ValueError(
            f"the surrogate returned {got} for a batch of {m} rows; it must "
            "return one output row per input row, indexed like the model's "
            "outputs (do not reduce over the batch)."
        )
    if not out.dtype.is_floating_point:
        raise TypeError(
            f"the surrogate returned {out.dtype} outputs, which have no "
            "gradient; return scores (logits or probabilities)."
        )
    try:
        selected = _select_targets(out, target)
    except (IndexError, RuntimeError) as exc:
        raise ValueError(
            f"the target does not index the surrogate's output of shape "
            f"{tuple(out.shape)}: the surrogate must return outputs indexed "
            "like the model's (the same target selects each row's output)."
        ) from exc
    selected = selected.reshape(m, -1)
    if selected.shape[1] != 1:
        raise ValueError(
            f"the target selects {selected.shape[1]} values per row of the "
            f"surrogate's output of shape {tuple(out.shape)}; it must select "
            "one, as for the model: pass a target (e.g. the class index)."
        )
    return selected[:, 0]


def resolve_surrogate_design(
    design: str, dim: int, n_samples: int, antithetic: bool | None
) -> tuple[str, int, bool]:
    r"""The design, samples per row and antithetic flag of a call with a
    surrogate prior: ``n_samples`` (the prior's one included) up to ``d``,
    one-sided unless asked otherwise."""
    if design not in SURROGATE_DESIGNS:
        raise ValueError(
            f"design={design!r} cannot be combined with a Surrogate prior, "
            "which samples the prior direction and orthonormal directions "
            "orthogonal to it; leave design='auto'."
        )
    return "surrogate", min(n_samples, dim), bool(antithetic)


class SurrogatePlan:
    r"""
    The directions of one call with a surrogate prior: per row, the prior
    direction, then the reflected orthonormal complement. It has the interface
    the query loop and the running sums use (``draw``, ``levels``,
    ``probe_samples``, ``combine``).

    Args:

        space (Space): The flat inputs' coordinates.
        scaled_prior (Tensor): ``(rows, d)`` the surrogate's gradient times
                    each row's noise scale (the prior in noise coordinates).
        n_samples (int): Samples per row, the prior's included (``1 .. d``).
        noise (CounterNoise): The call's random numbers.
        streams (Tensor): ``(rows,)`` each row's noise stream.
        unbiased (bool): The weight of the orthogonal directions (see the
                    module).
    """

    levels = 2
    probe_samples = 0
    probe_level = 1  # the strata's probes follow the prior's sum
    weighted = False
    strata = None
    design = "surrogate"
    finite_population = 1.0

    def __init__(
        self,
        space: Space,
        scaled_prior: Tensor,
        n_samples: int,
        noise: CounterNoise,
        streams: Tensor,
        unbiased: bool,
    ) -> None:
        d = space.dim
        self.space, self.dim, self.n_samples = space, d, n_samples
        self.unbiased = unbiased
        self.m = n_samples - 1
        unique, self.stream_index = torch.unique(streams, return_inverse=True)
        signs = noise.signs(unique, d, scaled_prior.dtype)
        self.signs = signs
        if self.m:
            # the signed DCT vectors other than the constant one, in random order
            order = noise.permutation(unique, d - 1)[:, : self.m] + 1
            self.order = order
        self.direction, self.reflector = reflection(
            scaled_prior, signs.index_select(0, self.stream_index) / math.sqrt(d)
        )
        self.prior_cosine: Tensor | None = None
        self._perp_energy: Tensor | None = None

    @property
    def rho(self) -> float:
        r"""The share ``m / (d - 1)`` of the complement that is sampled."""
        return self.m / (self.dim - 1) if self.dim > 1 else 1.0

    def draw(self, samples: Tensor, rows: Tensor) -> Draw:
        r"""Directions (norm ``sqrt(d)``) and levels (0: the prior, 1: the
        complement) of a chunk of ``(row, sample)`` pairs."""
        d = self.dim
        p = self.direction.index_select(0, rows)
        level = (samples > 0).long()
        if not self.m:
            return Draw(p * math.sqrt(d), None, level)
        table = self.stream_index.index_select(0, rows)
        picked = self.order[table, (samples - 1).clamp_min(0)]
        u = dct_rows(picked, d, p.dtype) * self.signs.index_select(0, table)
        q = self.reflector.index_select(0, rows)
        v = u - (u * q).sum(1, keepdim=True) * q
        v = torch.where((samples == 0).unsqueeze(1), p, v)
        return Draw(v * math.sqrt(d), None, level)

    def adapt(self, energy: Tensor, probe_sums: Tensor) -> None:
        r"""Never called: the design has no probes."""

    def combine(
        self, numerator: Tensor, squares: Tensor | None
    ) -> tuple[Tensor, Tensor | None, Tensor]:
        r"""
        The estimate (times sigma), its variance and the samples per
        coordinate, from the running sums of the two levels.
        """
        d, m = self.dim, self.m
        rows = numerator.shape[0] // 2
        prior_part, perp = numerator[:rows] / d, numerator[rows:] / d
        a = (prior_part * self.direction).sum(1)
        measured = perp.square().sum(1)  # sum_i y_i^2 (orthonormal v_i)
        weight = 1.0 / self.rho if (self.unbiased and m) else 1.0
        grads = prior_part + weight * perp
        self._perp_energy = measured / self.rho if m else None
        if m:
            total = a.square() + self._perp_energy
            self.prior_cosine = (a.abs() / total.sqrt().clamp_min(1e-300)).where(
                total > 0, torch.ones_like(a)
            )
        counts = torch.full_like(grads, self.n_samples)
        if squares is None:
            return grads, None, counts
        return grads, self._variance(numerator[rows:], squares[rows:], weight), counts

    def _variance(self, total: Tensor, squares: Tensor, weight: float) -> Tensor:
        """Per coordinate, the variance of ``weight * sum_i y_i v_i`` from the
        spread of the ``m`` complement samples (without replacement)."""
        m, d = self.m, self.dim
        if m < 2:
            return torch.full_like(total, math.inf)
        mean = total / m
        spread = ((squares - m * mean.square()) / (m - 1)).clamp_min(0)
        scale = (weight * m / d) ** 2
        return scale * spread / m * (1.0 - self.rho)

    def expected_cosine(self) -> Tensor | None:
        r"""Per row, the expected cosine with the gradient of a linear function,
        from the estimated alignment ``c``: ``sqrt(c^2 + (1 - c^2) rho)`` for the
        projection, ``1 / sqrt(c^2 + (1 - c^2) / rho)`` unbiased; None with the
        prior's query only."""
        if self.prior_cosine is None:
            return None
        c2 = self.prior_cosine.square()
        if self.unbiased:
            return (c2 + (1 - c2) / self.rho).rsqrt()
        return (c2 + (1 - c2) * self.rho).sqrt()

    def project(self, scaled: Tensor) -> Tensor:
        r"""What the estimate's expectation is for a linear function with
        gradient ``scaled`` (``(rows, d)``, times sigma): ``a p + rho G_perp``
        for the projection, the gradient itself unbiased."""
        if self.unbiased and self.m:
            return scaled
        a = (scaled * self.direction).sum(1, keepdim=True)
        along = a * self.direction
        return along + self.rho * (scaled - along)


def reflection(scaled_prior: Tensor, e: Tensor) -> tuple[Tensor, Tensor]:
    r"""
    Per row, the unit prior direction ``p`` and the vector ``q`` of the
    Householder reflection ``H = I - q q'`` that sends ``e`` (the constant
    signed DCT vector, sign chosen so that ``e . p <= 0``: ``|e - p|^2 >= 2``)
    to ``p``. A row whose prior is 0 takes ``p = e`` and ``q = 0`` (the plain
    orthogonal design).
    """
    norm = scaled_prior.norm(dim=1, keepdim=True)
    valid = norm > 0
    p = torch.where(valid, scaled_prior / norm.clamp_min(1e-300), e)
    flip = torch.where((e * p).sum(1, keepdim=True) > 0, -1.0, 1.0).to(e.dtype)
    q = e * flip - p
    q = q * (math.sqrt(2.0) / q.norm(dim=1, keepdim=True).clamp_min(1e-300))
    return p, torch.where(valid, q, torch.zeros_like(q))


def surrogate_project(
    plan: SurrogatePlan | None,
    layout: InputLayout,
    grads: Sequence[Tensor],
    sigmas: Tensor | None,
) -> Tensor:
    r"""``(rows, d)`` what the last call with a surrogate estimated of
    ``grads`` (see :meth:`SurrogatePlan.project`)."""
    if plan is None or sigmas is None or sigmas.shape[0] != layout.batch_size:
        raise ValueError(
            "with a Surrogate prior what is estimated depends on each row's "
            "prior direction: call the estimator on these inputs first, then "
            "project."
        )
    flat = layout.flatten(grads)
    return plan.project(flat * sigmas) / sigmas
