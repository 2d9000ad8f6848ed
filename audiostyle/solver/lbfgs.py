"""L-BFGS: the two-loop recursion over ring buffers of curvature pairs, and a strong-Wolfe line search."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .result import Evaluate, FinishStep, OptimizationResult

__all__ = ["lbfgs"]


def lbfgs(
    point: torch.Tensor, evaluate: Evaluate, finish_step: FinishStep, *, iterations: int,
    learning_rate: float, history_size: int, result: OptimizationResult,
) -> None:
    """L-BFGS (Nocedal & Wright, algorithm 7.4) with a strong-Wolfe line search.

    The curvature pairs live in two ring buffers of ``history_size`` rows (no more rows than
    iterations, which could never fill them). It ends by
    itself ("converged") when the gradient is zero, the direction is not a descent direction
    or the line search finds no lower point, which is where float32 precision runs out. A
    trial step whose loss is not finite (an extrapolated step can overflow ``expm1`` of a
    log-spectrogram) is a step too long: the line search backs off from it. Only a
    non-finite loss at the starting point raises.
    """
    flat = point.detach().view(-1)
    size = flat.numel()
    history_size = min(history_size, iterations)
    steps = point.new_empty(history_size, size)  # s_k = x_{k+1} - x_k
    changes = point.new_empty(history_size, size)  # y_k = g_{k+1} - g_k
    curvatures: list[float] = []  # 1 / (y_k . s_k), oldest first
    newest = -1
    start = torch.empty_like(flat)
    direction = torch.empty_like(flat)
    max_evaluations = iterations * 5 // 2 + 10

    def trial(step_size: float) -> tuple[float, torch.Tensor]:
        """Loss (inf where it is not finite) and flat gradient at ``start + step_size * direction``."""
        with torch.no_grad():
            torch.add(start, direction, alpha=step_size, out=flat)
        value, gradient = evaluate(point, finite=False)
        return value, gradient.reshape(-1)

    value, gradient = evaluate(point)
    gradient = gradient.reshape(-1)
    if finish_step(0):
        return
    for step in range(1, iterations + 1):
        # Two-loop recursion: direction = -H gradient, newest pair first, then oldest first.
        # Its coefficients stay 0-dim tensors, so a GPU runs it without waiting on the host.
        direction.copy_(gradient).neg_()
        order = [(newest - i) % history_size for i in range(len(curvatures))]
        alphas = []
        for slot, rho in zip(order, reversed(curvatures)):
            alpha = (steps[slot] @ direction) * rho
            direction.addcmul_(changes[slot], alpha, value=-1)
            alphas.append(alpha)
        if curvatures:
            direction.mul_((changes[newest] @ steps[newest]) / (changes[newest] @ changes[newest]))
        for slot, rho, alpha in zip(reversed(order), curvatures, reversed(alphas)):
            beta = (changes[slot] @ direction) * rho
            direction.addcmul_(steps[slot], alpha - beta)
        slope = float(gradient @ direction)
        if slope >= 0:
            break  # a stationary point (zero gradient), or rounding has the upper hand
        first_step = learning_rate * (min(1.0, 1.0 / float(torch.linalg.vector_norm(gradient, 1))) if step == 1 else 1.0)
        start.copy_(flat)

        step_size, new_value, new_gradient, new_slope = _strong_wolfe(
            trial, value, gradient, slope, direction, first_step,
            max_trials=min(25, max(1, max_evaluations - result.evaluations)),
        )
        with torch.no_grad():
            torch.add(start, direction, alpha=step_size, out=flat)
        if step_size == 0 or not new_value < value:
            break  # no lower point along the direction
        # y . s = step * (new slope - slope), known before anything is stored.
        curvature = step_size * (new_slope - slope)
        if curvature > 1e-10:  # else the pair would make H indefinite: skip it
            newest = (newest + 1) % history_size
            torch.mul(direction, step_size, out=steps[newest])
            torch.sub(new_gradient, gradient, out=changes[newest])
            curvatures = (curvatures + [1.0 / curvature])[-history_size:]
        value, gradient = new_value, new_gradient
        if finish_step(step):
            return
        if result.evaluations >= max_evaluations and step < iterations:
            result.stopped = "converged"
            return
    else:
        return
    # L-BFGS ended by itself in this step (zero gradient, no descent direction, no lower
    # point): the history still gets it.
    finish_step(len(result.history))
    result.stopped = "converged"


def _cubic_minimum(
    x1: float, f1: float, g1: float, x2: float, f2: float, g2: float, bounds: tuple[float, float] | None = None
) -> float:
    """Minimiser of the cubic through two points with their slopes, clipped to ``bounds``."""
    low, high = bounds if bounds is not None else (min(x1, x2), max(x1, x2))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    discriminant = d1 * d1 - g1 * g2
    if discriminant < 0:
        return (low + high) / 2
    d2 = math.sqrt(discriminant)
    if x1 <= x2:
        position = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        position = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(position, low), high)


def _strong_wolfe(
    trial: Callable[[float], tuple[float, torch.Tensor]],
    value: float,
    gradient: torch.Tensor,
    slope: float,
    direction: torch.Tensor,
    step_size: float,
    *,
    sufficient: float = 1e-4,
    curvature: float = 0.9,
    max_trials: int = 25,
) -> tuple[float, float, torch.Tensor, float]:
    """A step along ``direction`` meeting the strong Wolfe conditions (Nocedal & Wright 3.5-3.6).

    Bracketing by cubic extrapolation, then zooming by cubic interpolation with a safeguard
    against steps too close to the bracket's ends (as in minFunc and torch.optim.LBFGS).
    Returns the step and the loss, gradient and slope there; the best step found when the
    budget runs out first, 0 when none is lower than the start.
    """
    # max |d| from one min/max pass, cheaper than vector_norm(inf).
    low, high = torch.aminmax(direction)
    direction_norm = float(torch.maximum(high, -low))
    trials = 0

    def probe(step: float, finite_step: float) -> tuple[float, float, torch.Tensor, float]:
        """(step, loss, gradient, slope) at ``step``, halved towards ``finite_step`` (where the
        loss is known to be finite) while the loss is not finite and trials remain."""
        nonlocal trials
        while True:
            loss, grad = trial(step)
            trials += 1
            if math.isfinite(loss) or trials >= max_trials:
                break
            step = finite_step + (step - finite_step) / 2
        return step, loss, grad, float(grad @ direction) if math.isfinite(loss) else math.nan

    # Bracket: (step, loss, gradient, slope) of its two ends.
    previous = (0.0, value, gradient, slope)
    step_size, new_value, new_gradient, new_slope = probe(step_size, 0.0)
    bracket = None
    while trials < max_trials:
        if new_value > value + sufficient * step_size * slope or (trials > 1 and new_value >= previous[1]):
            bracket = [previous, (step_size, new_value, new_gradient, new_slope)]
            break
        if abs(new_slope) <= -curvature * slope:
            return step_size, new_value, new_gradient, new_slope
        if new_slope >= 0:
            bracket = [previous, (step_size, new_value, new_gradient, new_slope)]
            break
        # Still going down: extrapolate, at least a little and at most 10x further.
        bounds = (step_size + 0.01 * (step_size - previous[0]), step_size * 10)
        next_step = _cubic_minimum(previous[0], previous[1], previous[3], step_size, new_value, new_slope, bounds)
        previous = (step_size, new_value, new_gradient, new_slope)
        step_size, new_value, new_gradient, new_slope = probe(next_step, previous[0])
    if bracket is None:
        # Out of trials while still descending: keep the lower of the last two points.
        last = (step_size, new_value, new_gradient, new_slope)
        return _lower(previous, last, (0.0, value, gradient, slope))

    # Zoom until the strong Wolfe conditions hold inside the bracket.
    low, high = (0, 1) if bracket[0][1] <= bracket[1][1] else (1, 0)
    stalled = False
    while trials < max_trials:
        ends = (bracket[0][0], bracket[1][0])
        if abs(ends[1] - ends[0]) * direction_norm < 1e-9:
            break
        if math.isfinite(bracket[high][1]):
            step_size = _cubic_minimum(*bracket[0][:2], bracket[0][3], *bracket[1][:2], bracket[1][3])
        else:
            step_size = (ends[0] + ends[1]) / 2  # no slope at a non-finite end: bisect
        step_size, stalled = _safeguarded(step_size, ends, stalled)
        point = probe(step_size, bracket[low][0])
        step_size, new_value, new_gradient, new_slope = point
        if new_value > value + sufficient * step_size * slope or new_value >= bracket[low][1]:
            bracket[high] = point
        else:
            if abs(new_slope) <= -curvature * slope:
                return point
            if new_slope * (bracket[high][0] - bracket[low][0]) >= 0:
                bracket[high] = bracket[low]
            bracket[low] = point
        low, high = (0, 1) if bracket[0][1] <= bracket[1][1] else (1, 0)
    return bracket[low]


def _safeguarded(step_size: float, ends: tuple[float, float], stalled: bool) -> tuple[float, bool]:
    """A zoom step kept off the bracket's ends, and whether it was left near one this time.

    A step within 10 % of an end makes little progress: the second time in a row (or when it
    falls outside the bracket) it is moved that far inwards.
    """
    margin = 0.1 * (max(ends) - min(ends))
    if not min(max(ends) - step_size, step_size - min(ends)) < margin:
        return step_size, False
    if stalled or step_size >= max(ends) or step_size <= min(ends):
        nearer_top = abs(step_size - max(ends)) < abs(step_size - min(ends))
        return (max(ends) - margin if nearer_top else min(ends) + margin), False
    return step_size, True


def _lower(first: tuple, second: tuple, start: tuple) -> tuple[float, float, torch.Tensor, float]:
    """The lower of two line-search points (step, loss, gradient, slope); ``start`` if neither is."""
    chosen = first if first[1] <= second[1] else second
    return chosen if chosen[1] < start[1] else start
