"""The audiostyle command line (installed as the import package ``audiostyle_cli``)."""

import os

# Idle OpenMP threads sleep instead of spinning, so that on a busy machine they do not starve
# the threads doing the work; it must be set before torch starts its thread pool, hence
# here, first. Users may override it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
