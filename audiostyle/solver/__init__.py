"""The optimisation loop: L-BFGS (two-loop recursion, strong-Wolfe line search) and Adam.

Both are written here rather than taken from ``torch.optim``, whose first optimizer imports
``torch._dynamo`` (start-up time and memory in every process).
"""

from .loop import optimize
from .result import OptimizationResult, ProgressCallback

__all__ = ["OptimizationResult", "ProgressCallback", "optimize"]
