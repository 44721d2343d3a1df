r"""The scale on which :class:`~captum_lr.LRMaskGradient` explains an output.

The masked queries are the same on every scale; a monotone transform ``g``
of each query's output ``f`` changes the estimand to the Banzhaf value (or
semivalue) of ``g(f)``:

- ``"identity"``: ``f`` itself (the default).
- ``"angular"``: ``arcsin(sqrt(f))`` of a probability ``f`` in ``[0, 1]``,
  the variance-stabilizing transform of a proportion (a probability's
  changes near 0 and near 1, where the masked queries of an image spend most
  of their time, weigh more than on ``f``; bounded, unlike the log-odds).
- ``"logit"``: the log-odds ``log(f / (1 - f))``, ``f`` clamped to
  ``[eps, 1 - eps]``.
- ``"auto"``: ``"angular"`` when every output of the call lies in ``[0,
  1]``, ``"identity"`` otherwise. Both are estimated from the same queries
  (the runner returns both columns) and the choice is made when the call's
  last query is in, so no query is spent twice or thrown away.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from captum_lr.estimation.masking import MaskEstimate
from captum_lr.estimation.queries import QueryRunner

OUTPUT_SCALES = ("auto", "identity", "angular", "logit")


def check_output_scale(output_scale: Any) -> str:
    r"""
    ``output_scale`` checked: one of :data:`OUTPUT_SCALES`.

    Args:

        output_scale (Any): The user's value.

    Returns:
        *str*: the scale.

    Examples::

        >>> check_output_scale("auto")
        'auto'
    """
    if not isinstance(output_scale, str):
        raise TypeError(f"output_scale must be a str, not {output_scale!r}.")
    if output_scale not in OUTPUT_SCALES:
        raise ValueError(
            f"output_scale must be one of {OUTPUT_SCALES}, got {output_scale!r}."
        )
    return output_scale


def angular(p: Tensor) -> Tensor:
    r"""
    ``arcsin(sqrt(p))`` of probabilities (clamped to ``[0, 1]``).

    Args:

        p (Tensor): Probabilities.

    Returns:
        *Tensor*: the angles, in ``[0, pi / 2]``.

    Examples::

        >>> angular(torch.tensor([0.0, 0.5, 1.0]))  # 0, pi / 4, pi / 2
    """
    return torch.asin(p.clamp(0.0, 1.0).sqrt())


class ScaledRunner:
    r"""
    A :class:`~captum_lr.estimation.queries.QueryRunner` whose scores are on
    an output scale (float64).

    For ``"angular"`` and ``"logit"`` an output outside ``[0, 1]`` raises a
    ``ValueError`` that names the scale to use instead. For ``"auto"`` each
    call returns ``(rows, 2)`` scores, the output and its angle, and
    :attr:`chosen` says which column the call's estimate takes:
    ``"angular"`` while every output so far was in ``[0, 1]``.

    Args:

        runner (QueryRunner): Gives the outputs.
        scale (str): One of :data:`OUTPUT_SCALES`.
        eps (float, optional): The logit's clamp. Default: 1e-12

    Examples::

        >>> scaled = ScaledRunner(runner, "auto")
        >>> scores = scaled(flat_rows, owners)  # (rows, 2)
        >>> estimate = scaled.select(mask_gradient(scaled, ...))
    """

    def __init__(self, runner: QueryRunner, scale: str, eps: float = 1e-12) -> None:
        self.runner = runner
        self.scale = check_output_scale(scale)
        self.eps = eps
        self._outside: Tensor | None = None  # "auto": any output outside [0, 1]

    @property
    def columns(self) -> int:
        """Scores per row: 2 for ``"auto"``, 1 otherwise."""
        return 2 if self.scale == "auto" else 1

    @property
    def chosen(self) -> str:
        """The scale of the estimate (``"auto"`` resolved)."""
        if self.scale != "auto":
            return self.scale
        outside = self._outside is not None and bool(self._outside)
        return "identity" if outside else "angular"

    def __call__(self, flat: Tensor, rows: Tensor) -> Tensor:
        f = self.runner(flat, rows).to(torch.float64)
        if self.scale == "identity":
            return f
        outside = (f < 0) | (f > 1)
        if self.scale == "auto":  # kept on the device: read once, by chosen
            seen = outside.any()
            self._outside = seen if self._outside is None else self._outside | seen
            return torch.stack([f, angular(f)], -1)
        if bool(outside.any()):
            bad = f[outside][0].item()
            raise ValueError(
                f"output_scale={self.scale!r} explains probabilities, but the "
                f"forward function returned {bad} for a masked query; return "
                'probabilities in [0, 1] (e.g. a softmax) or use "identity".'
            )
        if self.scale == "angular":
            return angular(f)
        return torch.logit(f, eps=self.eps)

    def select(self, estimate: MaskEstimate) -> MaskEstimate:
        r"""
        The chosen column of an estimate made from this runner's scores.

        Args:

            estimate (MaskEstimate): ``(rows, k)`` values, or ``(rows, 2,
                        k)`` for ``"auto"``.

        Returns:
            *MaskEstimate*: ``(rows, k)`` values and standard errors.
        """
        if self.scale != "auto":
            return estimate
        col = 1 if self.chosen == "angular" else 0
        return MaskEstimate(estimate.values[:, col], estimate.stderr[:, col])

    def check_finite(self, advice: str) -> None:
        self.runner.check_finite(advice)
