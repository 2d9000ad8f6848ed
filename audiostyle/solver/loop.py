"""The solver loop: minimise an objective over a tensor with L-BFGS or Adam."""

from __future__ import annotations

import math

import torch

from ..config import HISTORY_SIZE, MAX_HISTORY_SIZE, SOLVERS
from ..errors import ConfigError
from ..validation import is_int
from .adam import adam
from .lbfgs import lbfgs
from .result import LossFunction, OptimizationResult, ProgressCallback, check_finite

__all__ = ["optimize"]


def optimize(
    initial: torch.Tensor,
    loss_function: LossFunction,
    *,
    iterations: int = 100,
    solver: str = "lbfgs",
    learning_rate: float = 1.0,
    tolerance: float = 1e-4,
    patience: int = 5,
    history_size: int = HISTORY_SIZE,
    progress: ProgressCallback | None = None,
) -> OptimizationResult:
    """Minimise ``loss_function`` starting from ``initial``.

    Parameters
    ----------
    initial : torch.Tensor
        Starting point (not modified); the solution has its shape, dtype and device.
    loss_function : callable
        ``loss_function(x) -> (total, parts)``: a differentiable scalar and a mapping of named
        detached loss terms for reporting.
    iterations : int
        Maximum number of solver iterations (>= 1).
    solver : {"lbfgs", "adam"}
        L-BFGS with strong-Wolfe line search (default), or Adam.
    learning_rate : float
        L-BFGS initial step (1 is standard) or Adam's learning rate.
    tolerance : float
        Stop once the relative decrease of the loss stays below this for ``patience``
        consecutive iterations (0 disables).
    patience : int
        See ``tolerance``.
    history_size : int
        L-BFGS: curvature pairs kept (1..100). Each costs two copies of ``initial`` and four
        passes over it per iteration; fewer pairs make each iteration cheaper and its
        direction cruder. Adam ignores it.
    progress : ProgressCallback, optional
        ``progress(step, iterations, losses)`` after every iteration.

    Returns
    -------
    OptimizationResult

    Raises
    ------
    ConfigError
        Bad solver or parameter.
    NumericalError
        The loss is NaN or infinite at the start, or (Adam) became so at a step. L-BFGS backs
        off from a non-finite line-search trial instead (a step too long).

    Notes
    -----
    Both solvers are written here rather than taken from ``torch.optim``, whose first
    optimizer imports ``torch._dynamo`` (start-up time and memory in every process). Their
    state lives in buffers made once, so a long run does not fragment the heap.
    """
    if solver not in SOLVERS:
        raise ConfigError(f"solver={solver!r} must be one of {SOLVERS}")
    if not is_int(iterations) or iterations < 1:
        raise ConfigError(f"iterations={iterations!r} must be an integer >= 1")
    if not (learning_rate > 0 and math.isfinite(learning_rate)):
        raise ConfigError(f"learning_rate={learning_rate!r} must be a positive number")
    if not (tolerance >= 0 and math.isfinite(tolerance)):
        raise ConfigError(f"tolerance={tolerance!r} must be >= 0")
    if not is_int(history_size) or not 1 <= history_size <= MAX_HISTORY_SIZE:
        raise ConfigError(f"history_size={history_size!r} must be an integer in [1, {MAX_HISTORY_SIZE}]")

    run = _Run(loss_function, initial, iterations=iterations, tolerance=tolerance, patience=patience, progress=progress)
    point = initial.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)
    if solver == "lbfgs":
        lbfgs(point, run.evaluate, run.finish_step, iterations=iterations, learning_rate=learning_rate,
              history_size=history_size, result=run.result)
    else:
        adam(point, run.evaluate, run.finish_step, iterations=iterations, learning_rate=learning_rate, result=run.result)
    run.result.solution = run.best_point
    return run.result


class _Run:
    """One optimisation's bookkeeping: the best point so far, the history, the stopping rule."""

    def __init__(
        self,
        loss_function: LossFunction,
        initial: torch.Tensor,
        *,
        iterations: int,
        tolerance: float,
        patience: int,
        progress: ProgressCallback | None,
    ) -> None:
        self.loss_function = loss_function
        self.iterations, self.tolerance, self.patience, self.progress = iterations, tolerance, patience, progress
        self.result = OptimizationResult(solution=initial.detach().clone(memory_format=torch.contiguous_format))
        self.best_point = self.result.solution  # overwritten in place by every better point
        self.best: dict[str, object] = {}
        self.calm_steps = 0

    def evaluate(self, point: torch.Tensor, *, finite: bool = True) -> tuple[float, torch.Tensor]:
        """Loss and gradient at ``point`` (a leaf that requires grad); the best point is kept.

        A non-finite loss raises, or with ``finite=False`` (a line-search trial, which backs
        off from it) comes back as ``inf``.
        """
        point.grad = None
        with torch.enable_grad():
            total, parts = self.loss_function(point)
            total.backward()
        value = float(total.detach())
        self.result.evaluations += 1
        if not finite and not math.isfinite(value):
            return math.inf, point.grad
        check_finite(value, len(self.result.history))
        if "total" not in self.best or value < self.best["total"]:
            self.best.update(total=value, parts=parts)
            self.best_point.copy_(point.detach())
        return value, point.grad

    def finish_step(self, step: int) -> bool:
        """Record the best point after ``step`` iterations; True when the tolerance says stop."""
        result, best = self.result, self.best
        entry = {"total": best["total"], **{k: float(v) for k, v in best["parts"].items()}}
        previous = result.history[-1]["total"] if result.history else None
        result.history.append(entry)
        if step == 0:
            return False
        if self.progress is not None:
            self.progress(step, self.iterations, dict(entry))  # a copy: the history is not the caller's
        change = (previous - entry["total"]) / max(abs(previous), 1e-30)
        self.calm_steps = self.calm_steps + 1 if change < self.tolerance else 0
        if self.tolerance > 0 and self.calm_steps >= self.patience:
            result.stopped = "converged"
            return True
        return False
