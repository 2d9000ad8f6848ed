"""Adam (Kingma & Ba 2015), on one tensor, with its state in buffers made once."""

from __future__ import annotations

import torch

from .result import Evaluate, FinishStep, OptimizationResult

__all__ = ["adam"]


def adam(
    point: torch.Tensor, evaluate: Evaluate, finish_step: FinishStep, *, iterations: int,
    learning_rate: float, result: OptimizationResult, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
) -> None:
    """Adam (Kingma & Ba 2015) with bias correction, as torch.optim.Adam without weight decay."""
    first, second = torch.zeros_like(point), torch.zeros_like(point)
    for step in range(1, iterations + 1):
        _, gradient = evaluate(point)
        if finish_step(step - 1):
            return
        first.lerp_(gradient, 1 - betas[0])
        second.mul_(betas[1]).addcmul_(gradient, gradient, value=1 - betas[1])
        denominator = (second / (1 - betas[1] ** step)).sqrt_().add_(eps)
        with torch.no_grad():
            point.addcdiv_(first, denominator, value=-learning_rate / (1 - betas[0] ** step))
    evaluate(point)
    finish_step(iterations)
