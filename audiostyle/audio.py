"""Temporary: the old module path, kept only until cli/ and batch import ``audiostyle.io``.

Deleted by the restructuring (issue 21) once no front end imports it; do not use.
"""

from .dsp.resample import resample, to_channels
from .io import *  # noqa: F401,F403
from .io import __all__ as _io_all

__all__ = [*_io_all, "resample", "to_channels"]
