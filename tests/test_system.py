"""audiostyle.system: the thread policy set on import, before torch loads OpenMP."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support import TORCH_POLICY_PROBE

_PROBE = TORCH_POLICY_PROBE + """
import audiostyle
print(seen[0] if seen else "torch never imported", os.environ.get("OMP_WAIT_POLICY"))
"""


def _run(env_policy: str | None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if env_policy is not None:
        env["OMP_WAIT_POLICY"] = env_policy
    done = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_importing_audiostyle_lets_idle_threads_sleep_before_torch_loads():
    # stylize() from Python then runs with the same policy as the CLI.
    assert _run(None) == ["PASSIVE", "PASSIVE"]


@pytest.mark.parametrize("policy", ["ACTIVE"])
def test_a_policy_from_the_environment_is_kept(policy):
    assert _run(policy) == [policy, policy]
