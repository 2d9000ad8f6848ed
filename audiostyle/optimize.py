"""The solver loop: minimise an objective over a tensor with L-BFGS or Adam."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping

import torch

from .errors import ConfigError, NumericalError

__all__ = ["optimize", "OptimizationResult", "ProgressCallback", "SOLVERS"]

SOLVERS = ("lbfgs", "adam")
#: L-BFGS curvature pairs kept (scipy's default). Each pair is two copies of the solved tensor
#: (3.5 MB for a 10 s spectrogram); 20 pairs gave the same losses and quality scores as 10.
HISTORY_SIZE = 10

#: ``progress(step, total, losses)``: called after every step with the named losses as floats.
ProgressCallback = Callable[[int, int, Mapping[str, float]], None]

LossFunction = Callable[[torch.Tensor], "tuple[torch.Tensor, Mapping[str, torch.Tensor]]"]


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


def _check_finite(total: torch.Tensor, step: int) -> None:
    if not math.isfinite(float(total)):
        raise NumericalError(
            f"the loss became {float(total)} at step {step}; lower the learning rate or the "
            "style weight, or use solver='lbfgs'"
        )


def optimize(
    initial: torch.Tensor,
    loss_function: LossFunction,
    *,
    iterations: int = 100,
    solver: str = "lbfgs",
    learning_rate: float = 1.0,
    tolerance: float = 1e-4,
    patience: int = 5,
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
        The loss became NaN or infinite.
    """
    if solver not in SOLVERS:
        raise ConfigError(f"solver={solver!r} must be one of {SOLVERS}")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ConfigError(f"iterations={iterations!r} must be an integer >= 1")
    if not (learning_rate > 0 and math.isfinite(learning_rate)):
        raise ConfigError(f"learning_rate={learning_rate!r} must be a positive number")
    if not (tolerance >= 0 and math.isfinite(tolerance)):
        raise ConfigError(f"tolerance={tolerance!r} must be >= 0")

    x = initial.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)
    result = OptimizationResult(solution=x)
    best: dict[str, object] = {}
    calm_steps = 0

    def evaluate() -> torch.Tensor:
        x.grad = None
        with torch.enable_grad():
            total, parts = loss_function(x)
            total.backward()
        total = total.detach()
        result.evaluations += 1
        _check_finite(total, len(result.history))
        if "total" not in best or float(total) < best["total"]:
            best.update(total=float(total), parts=parts, point=x.detach().clone())
        return total

    def finish_step(step: int) -> None:
        """Record the best point after ``step`` iterations; raise _Stop to end early."""
        nonlocal calm_steps
        entry = {"total": best["total"], **{k: float(v) for k, v in best["parts"].items()}}
        previous = result.history[-1]["total"] if result.history else None
        result.history.append(entry)
        if step == 0:
            return
        if progress is not None:
            progress(step, iterations, entry)
        change = (previous - entry["total"]) / max(abs(previous), 1e-30)
        calm_steps = calm_steps + 1 if change < tolerance else 0
        if tolerance > 0 and calm_steps >= patience:
            result.stopped = "converged"
            raise _Stop

    try:
        if solver == "lbfgs":
            # One step() call runs every iteration: torch's L-BFGS loses its line search when
            # step() is called repeatedly with max_iter=1. Iteration boundaries are seen from
            # inside the closure through the optimizer's own counter.
            optimizer = torch.optim.LBFGS(
                [x],
                lr=learning_rate,
                max_iter=iterations,
                max_eval=iterations * 5 // 2 + 10,
                history_size=HISTORY_SIZE,
                line_search_fn="strong_wolfe",
                tolerance_grad=0.0,
                tolerance_change=0.0,
            )
            state = optimizer.state[x]

            def closure() -> torch.Tensor:
                iteration = state.get("n_iter", 0)
                while len(result.history) < iteration:
                    finish_step(len(result.history))
                return evaluate()

            optimizer.step(closure)
            completed = state.get("n_iter", 0)
            while len(result.history) <= completed:
                finish_step(len(result.history))
            if completed < iterations:
                # L-BFGS ended by itself: zero gradient, no descent direction or no step left.
                result.stopped = "converged"
        else:
            optimizer = torch.optim.Adam([x], lr=learning_rate)
            for step in range(iterations):
                optimizer.zero_grad()
                evaluate()
                finish_step(step)
                optimizer.step()
            evaluate()
            finish_step(iterations)
    except _Stop:
        pass
    result.solution = best["point"]
    return result


class _Stop(Exception):
    """Raised inside the solver loop to end it early."""
