"""The audiostyle command line (installed as the import package ``audiostyle_cli``)."""

import os

# Idle OpenMP threads sleep instead of spinning. On a quiet machine this costs nothing
# (0.421 vs 0.423 s per loss evaluation, default preset, 10 s clip, 2 cores); on a busy one
# the spinning threads starved the real work: a 10-clip batch took 328 s instead of 48 s at
# load 4. It must be set before torch starts its thread pool, hence here; users may override.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
