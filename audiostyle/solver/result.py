"""What the solvers share: the result record, the callback types and the finiteness check."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch

from ..errors import NumericalError

__all__ = ["Evaluate", "FinishStep", "LossFunction", "OptimizationResult", "ProgressCallback", "check_finite"]

#: ``progress(step, total, losses)``: called after every step with the named losses as floats.
ProgressCallback = Callable[[int, int, Mapping[str, float]], None]

LossFunction = Callable[[torch.Tensor], tuple[torch.Tensor, Mapping[str, torch.Tensor]]]


@dataclass
class OptimizationResult:
    """The optimised tensor and what happened on the way.

    Attributes
    ----------
    solution : torch.Tensor
        Detached optimised tensor.
    history : list of dict
        Per step: ``total`` and each named loss, as floats (step 0 is the initial point).
    evaluations : int
        Loss-and-gradient evaluations, line-search trials included.
    stopped : str
        ``"iterations"`` or ``"converged"``.
    """

    solution: torch.Tensor
    history: list[dict[str, float]] = field(default_factory=list)
    evaluations: int = 0
    stopped: str = "iterations"


def check_finite(total: float, step: int) -> None:
    if not math.isfinite(total):
        raise NumericalError(
            f"the loss became {total} at step {step}; lower the learning rate or the "
            "style weight, or use solver='lbfgs'"
        )


#: ``evaluate(point)``: the loss and the gradient at ``point``.
Evaluate = Callable[..., tuple[float, torch.Tensor]]
#: ``finish_step(step)``: records a step; True when the run should stop.
FinishStep = Callable[[int], bool]
