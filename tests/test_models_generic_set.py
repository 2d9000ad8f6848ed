"""The shipped generic content set (``audiostyle/models/generic``) that style-model training mixes
with the user's clips: present in the installed package, decodable, and as the README states.

The files are made by ``training/make_generic_set.py``; these tests read the installed copy
through ``importlib.resources``, so a package-data line missing from pyproject.toml fails them
in a non-editable install.
"""

from __future__ import annotations

from contextlib import ExitStack
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

import audiostyle

SAMPLE_RATE = 22050
CATEGORIES = {"speech", "instrument", "drums", "oneshot"}
MAX_TOTAL_BYTES = 1_200_000  # every wheel carries the set
PEAK_DBFS = -3.0

GENERIC = resources.files("audiostyle").joinpath("models", "generic")


def _clip_names() -> list[str]:
    if not GENERIC.is_dir():
        return []
    return sorted(entry.name for entry in GENERIC.iterdir() if entry.name.endswith(".flac"))


CLIP_NAMES = _clip_names()


@pytest.fixture(scope="module")
def clip_paths():
    """Every clip as a file on disk (extracted for the duration if the package is zipped)."""
    with ExitStack() as stack:
        yield {name: stack.enter_context(resources.as_file(GENERIC / name)) for name in CLIP_NAMES}


def test_every_category_is_shipped():
    assert CLIP_NAMES, f"no .flac files in {GENERIC}"
    categories = {name.split("_", 1)[0] for name in CLIP_NAMES}
    assert categories == CATEGORIES


def test_the_set_stays_small():
    total = sum(len((GENERIC / name).read_bytes()) for name in CLIP_NAMES)
    assert 0 < total <= MAX_TOTAL_BYTES


def test_the_readme_lists_every_clip():
    readme = (GENERIC / "README.md").read_text(encoding="utf-8")
    listed = {line.split("`")[1] for line in readme.splitlines() if line.startswith("| `")}
    assert listed == set(CLIP_NAMES)


@pytest.mark.parametrize("name", CLIP_NAMES)
def test_clip_decodes_as_promised(name, clip_paths):
    path: Path = clip_paths[name]
    audio, sample_rate = audiostyle.load_audio(path)
    assert sample_rate == SAMPLE_RATE
    assert audio.shape[0] == 1, "mono"
    assert 1.0 <= audio.shape[1] / sample_rate <= 5.0
    assert np.isfinite(audio).all()
    peak_db = 20 * np.log10(np.abs(audio).max())
    assert peak_db == pytest.approx(PEAK_DBFS, abs=0.05)
    rms_db = 10 * np.log10(np.mean(audio.astype(np.float64) ** 2))
    assert rms_db > -40.0, f"{name} is nearly silent ({rms_db:.1f} dBFS RMS)"
