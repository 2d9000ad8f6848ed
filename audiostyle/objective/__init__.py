"""What the solver minimises: feature (Gram and content) terms, band-envelope texture
statistics and the loudness contour, summed with their weights by :class:`Objective`.

Each term whose gradient is written by hand (the feature losses, texture and contour
distances) is checked against an autograd reference in the tests.
"""

from .contour import LoudnessContour
from .features import ContentTargets, gram
from .objective import Objective
from .style import StyleStatistics
from .texture import TextureStatistics

__all__ = ["ContentTargets", "LoudnessContour", "Objective", "StyleStatistics", "TextureStatistics", "gram"]
