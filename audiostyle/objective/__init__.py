"""What the solver minimises: feature (Gram and content) terms, band-envelope texture
statistics and the loudness contour, summed with their weights by :class:`Objective`; and
the source-filter view (:mod:`.source_filter`), in which the style terms read the spectral
envelope and the content term the fine structure.

Each term whose gradient is written by hand (the feature losses, texture and contour
distances) is checked against an autograd reference in the tests.
"""

from .contour import LoudnessContour
from .features import ContentTargets, gram
from .objective import Objective
from .onsets import OnsetContour
from .source_filter import EnvelopeNetwork, FineStructureStatistics, FineStructureTargets, SourceFilterSplit
from .style import StyleStatistics
from .texture import TextureStatistics

__all__ = [
    "ContentTargets",
    "EnvelopeNetwork",
    "FineStructureStatistics",
    "FineStructureTargets",
    "LoudnessContour",
    "Objective",
    "OnsetContour",
    "SourceFilterSplit",
    "StyleStatistics",
    "TextureStatistics",
    "gram",
]
