"""The solver loop on small analytic problems: progress, history, early stop, errors."""

from __future__ import annotations

import math

import pytest
import torch

from audiostyle.config import SOLVERS
from audiostyle.errors import ConfigError, NumericalError
from audiostyle.solver import OptimizationResult, optimize

pytestmark = pytest.mark.usefixtures("single_thread")


def quadratic(x: torch.Tensor):
    """Ill-conditioned quadratic with its minimum 0 at x = 1."""
    scales = torch.arange(1, x.numel() + 1, dtype=x.dtype, device=x.device).reshape(x.shape)
    total = (scales * (x - 1) ** 2).sum()
    return total, {"quadratic": total.detach()}


def rosenbrock(x: torch.Tensor, offset: float = 0.0):
    """Chained Rosenbrock function, minimum ``offset`` at x = 1."""
    flat = x.reshape(-1)
    valley = (100 * (flat[1:] - flat[:-1] ** 2) ** 2).sum()
    slope = ((1 - flat[:-1]) ** 2).sum()
    return valley + slope + offset, {"valley": valley.detach(), "slope": slope.detach()}


PROBLEMS = [
    pytest.param("lbfgs", 1.0, quadratic, 30, id="lbfgs-quadratic"),
    pytest.param("lbfgs", 1.0, rosenbrock, 100, id="lbfgs-rosenbrock"),
    pytest.param("adam", 0.1, quadratic, 150, id="adam-quadratic"),
    pytest.param("adam", 0.02, rosenbrock, 300, id="adam-rosenbrock"),
]


@pytest.mark.parametrize("solver, learning_rate, problem, iterations", PROBLEMS)
@pytest.mark.parametrize("shape", [(6,), (2, 3)])
def test_minimises(device, solver, learning_rate, problem, iterations, shape):
    initial = torch.zeros(shape, device=device)
    start = float(problem(initial)[0])
    result = optimize(initial, problem, iterations=iterations, solver=solver, learning_rate=learning_rate, tolerance=0)
    assert isinstance(result, OptimizationResult)
    assert float(problem(result.solution)[0]) < start / 100
    assert result.history[-1]["total"] < start / 100
    assert result.solution.shape == initial.shape
    assert result.solution.dtype == initial.dtype
    assert result.solution.device.type == device.type
    assert not result.solution.requires_grad


@pytest.mark.parametrize("solver, learning_rate, problem, iterations", PROBLEMS)
def test_history(solver, learning_rate, problem, iterations):
    initial = torch.zeros(6)
    result = optimize(initial, problem, iterations=iterations, solver=solver, learning_rate=learning_rate, tolerance=0)
    total, parts = problem(initial)
    assert result.history[0] == pytest.approx({"total": float(total), **{k: float(v) for k, v in parts.items()}})
    for entry in result.history:
        assert set(entry) == {"total", *parts}
        assert all(isinstance(value, float) for value in entry.values())
        assert entry["total"] == pytest.approx(sum(v for k, v in entry.items() if k != "total"), rel=1e-5)
    totals = [entry["total"] for entry in result.history]
    # The history records the best point so far, so it never goes up.
    assert all(later <= earlier for earlier, later in zip(totals, totals[1:]))
    if solver == "adam":
        assert len(result.history) == iterations + 1
        assert result.evaluations == iterations + 1
    else:
        assert 2 <= len(result.history) <= iterations + 1
        assert result.evaluations >= len(result.history) - 1
    # The reported solution is the best point, whose loss is the last history entry.
    assert float(problem(result.solution)[0]) == pytest.approx(totals[-1], rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("solver, learning_rate", [("lbfgs", 1.0), ("adam", 0.05)])
def test_progress_callback(solver, learning_rate):
    calls = []
    iterations = 12
    result = optimize(
        torch.zeros(8), lambda x: rosenbrock(x, offset=1.0), iterations=iterations, solver=solver,
        learning_rate=learning_rate, tolerance=0, progress=lambda *args: calls.append(args),
    )
    assert calls, "progress was never called"
    steps = [step for step, _, _ in calls]
    assert steps == list(range(1, len(calls) + 1))
    assert all(total == iterations for _, total, _ in calls)
    assert len(calls) == len(result.history) - 1
    for (_, _, losses), entry in zip(calls, result.history[1:]):
        assert dict(losses) == entry
        assert set(losses) == {"total", "valley", "slope"}
    if solver == "adam":
        assert steps[-1] == iterations


@pytest.mark.parametrize(
    "solver, learning_rate, problem, tolerance",
    [
        pytest.param("lbfgs", 1.0, lambda x: rosenbrock(x, offset=1000.0), 1e-4, id="lbfgs-flat-offset"),
        pytest.param("adam", 1e-3, quadratic, 1e-2, id="adam-tiny-steps"),
    ],
)
@pytest.mark.parametrize("patience", [1, 3])
def test_tolerance_stops_early(solver, learning_rate, problem, tolerance, patience):
    iterations = 200
    result = optimize(
        torch.zeros(10), problem, iterations=iterations, solver=solver, learning_rate=learning_rate,
        tolerance=tolerance, patience=patience,
    )
    assert result.stopped == "converged"
    assert len(result.history) - 1 < iterations
    totals = [entry["total"] for entry in result.history]
    calm = [(a - b) / abs(a) < tolerance for a, b in zip(totals, totals[1:])]
    assert calm[-patience:] == [True] * patience
    assert len(calm) >= patience


def test_lbfgs_ending_early_is_not_reported_as_budget_exhausted():
    iterations = 200
    result = optimize(
        torch.zeros(10), lambda x: ((torch.log(torch.cosh(x - 1))).sum() + 10, {}),
        iterations=iterations, tolerance=1e-4,
    )
    ran = len(result.history) - 1
    assert ran == iterations or result.stopped == "converged", (ran, result.stopped)


@pytest.mark.parametrize("solver, learning_rate", [("lbfgs", 1.0), ("adam", 1e-4)])
def test_tolerance_zero_runs_every_iteration(solver, learning_rate):
    # Adam with a tiny rate barely moves, L-BFGS is still far from Rosenbrock's minimum after
    # 15 steps; with tolerance 0 both run the whole budget.
    result = optimize(torch.zeros(8), rosenbrock, iterations=15, solver=solver, learning_rate=learning_rate, tolerance=0)
    assert result.stopped == "iterations"
    assert len(result.history) == 16


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_loss_at_start(solver, bad):
    with pytest.raises(NumericalError, match="step 0"):
        optimize(torch.zeros(4), lambda x: ((x * 0).sum() + bad, {}), iterations=5, solver=solver)


def _nan_near_the_minimum(x):
    total, parts = quadratic(x)
    # Fine at the start, NaN once the iterate has moved far towards the minimum.
    return torch.where(x.min() > 0.3, torch.full_like(total, float("nan")), total), parts


def test_adam_loss_becoming_nan_raises():
    with pytest.raises(NumericalError, match=r"nan at step [1-9]"):
        optimize(torch.zeros(4), _nan_near_the_minimum, iterations=50, solver="adam", learning_rate=0.5, tolerance=0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_lbfgs_backs_off_from_non_finite_trial_steps(bad):
    """A line-search trial with a non-finite loss is a step too long, not the end of the run."""
    def loss(x):
        total, parts = quadratic(x)
        return torch.where(x.min() > 0.3, torch.full_like(total, bad), total), parts

    start_total = float(quadratic(torch.zeros(4))[0])
    result = optimize(torch.zeros(4), loss, iterations=50, solver="lbfgs", tolerance=0)
    assert torch.isfinite(result.solution).all() and float(result.solution.min()) <= 0.3 + 1e-6
    assert all(math.isfinite(step["total"]) for step in result.history)
    assert result.history[-1]["total"] < start_total
    assert float(loss(result.solution)[0]) == result.history[-1]["total"]


def test_lbfgs_survives_an_overflowing_extrapolation():
    """exp() of a long step overflows to inf; L-BFGS shrinks the step and still converges."""
    target = torch.tensor([3.0, -2.0, 1.0])

    def loss(x):
        return torch.exp(4 * (x - target)).sum() - 4 * (x - target).sum(), {}

    result = optimize(torch.full((3,), -30.0), loss, iterations=100, solver="lbfgs")
    torch.testing.assert_close(result.solution, target, atol=1e-3, rtol=0)


@pytest.mark.parametrize("solver", ["sgd", "LBFGS", "", None])
def test_bad_solver(solver):
    with pytest.raises(ConfigError, match="solver"):
        optimize(torch.zeros(3), quadratic, solver=solver)


@pytest.mark.parametrize("iterations", [0, -1, 1.5, True, "10", None])
def test_bad_iterations(iterations):
    with pytest.raises(ConfigError, match="iterations"):
        optimize(torch.zeros(3), quadratic, iterations=iterations)


@pytest.mark.parametrize("learning_rate", [0.0, -1.0, float("nan"), float("inf")])
@pytest.mark.parametrize("solver", SOLVERS)
def test_bad_learning_rate(solver, learning_rate):
    with pytest.raises(ConfigError, match="learning_rate"):
        optimize(torch.zeros(3), quadratic, solver=solver, learning_rate=learning_rate)


@pytest.mark.parametrize("tolerance", [-1e-4, float("nan"), float("inf")])
def test_bad_tolerance(tolerance):
    with pytest.raises(ConfigError, match="tolerance"):
        optimize(torch.zeros(3), quadratic, tolerance=tolerance)


@pytest.mark.parametrize("history_size", [0, -1, 101, 2.0, True, "5", None])
def test_bad_history_size(history_size):
    with pytest.raises(ConfigError, match="history_size"):
        optimize(torch.zeros(3), quadratic, history_size=history_size)


@pytest.mark.parametrize("solver", SOLVERS)
def test_initial_tensor_is_not_modified(solver):
    initial = torch.linspace(-1, 1, 6)
    before = initial.clone()
    result = optimize(initial, quadratic, iterations=10, solver=solver, learning_rate=0.1, tolerance=0)
    assert torch.equal(initial, before)
    assert initial.grad is None and not initial.requires_grad
    assert not torch.equal(result.solution, initial)
    assert result.solution.data_ptr() != initial.data_ptr()


def test_non_contiguous_initial_gives_same_shape():
    initial = torch.zeros(3, 4).T
    result = optimize(initial, quadratic, iterations=5, tolerance=0)
    assert result.solution.shape == (4, 3)
    assert math.isfinite(result.history[-1]["total"])


@pytest.mark.parametrize("history_size", [1, 3, 10, 100])
def test_lbfgs_follows_torch_lbfgs(history_size):
    """Same algorithm as torch.optim.LBFGS (two-loop recursion, strong-Wolfe line search)."""
    initial = torch.zeros(12, dtype=torch.float64)
    ours = optimize(initial, rosenbrock, iterations=60, tolerance=0, history_size=history_size)

    x = initial.clone().requires_grad_(True)
    reference = torch.optim.LBFGS(
        [x], lr=1.0, max_iter=60, max_eval=160, history_size=history_size, line_search_fn="strong_wolfe",
        tolerance_grad=0.0, tolerance_change=0.0,
    )

    def closure():
        reference.zero_grad()
        total = rosenbrock(x)[0]
        total.backward()
        return total

    reference.step(closure)
    theirs = float(rosenbrock(x.detach())[0])
    # Rounding differences compound over 60 Rosenbrock steps, most with a single pair.
    assert ours.history[-1]["total"] == pytest.approx(theirs, rel=1e-5, abs=1e-9)
    assert abs(ours.evaluations - reference.state[x]["func_evals"]) <= 2


def test_solving_does_not_import_torch_dynamo():
    """torch.optim's first optimizer imports torch._dynamo: ~1 s and 70 MB per process."""
    import subprocess
    import sys

    code = (
        "import sys, torch\n"
        "from audiostyle.solver import optimize\n"
        "for solver in ('lbfgs', 'adam'):\n"
        "    optimize(torch.zeros(4), lambda x: (((x - 1) ** 2).sum(), {}), iterations=3, solver=solver)\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_adam_follows_torch_adam():
    initial = torch.linspace(-1, 2, 7, dtype=torch.float64)
    ours = optimize(initial, quadratic, iterations=25, solver="adam", learning_rate=0.05, tolerance=0)
    x = initial.clone().requires_grad_(True)
    reference = torch.optim.Adam([x], lr=0.05)
    for _ in range(25):
        reference.zero_grad()
        quadratic(x)[0].backward()
        reference.step()
    # The loss falls at every step here, so the best point is the last one.
    torch.testing.assert_close(ours.solution, x.detach(), rtol=1e-12, atol=1e-12)
