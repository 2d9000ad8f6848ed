"""style_view="auto": the envelope view for a melody on a tonal style, the spectrum view otherwise."""

from __future__ import annotations

import numpy as np
import pytest

from audiostyle import ConfigError, prepare_style, stylize
from audiostyle.objective import EnvelopeNetwork
from audiostyle.pipeline.sources import load_source
from audiostyle.pipeline.view import choose_view
from tests.support import RATE, TINY
from tests.test_dsp_notes import drums, melody

AUTO = TINY.replace(style_view="auto", fine_structure_weight=3.0)


def _clip(wave: np.ndarray) -> tuple[np.ndarray, int]:
    return wave[np.newaxis], RATE


@pytest.fixture(scope="module")
def tune():
    return _clip(melody(rate=RATE, seconds=2.0))


@pytest.fixture(scope="module")
def other_tune():
    # The tune a fifth up, on a brighter instrument: a tonal style with other notes.
    wave = melody(rate=RATE, seconds=2.0, semitones=7)
    return _clip(np.clip(3 * wave, -0.3, 0.3))


@pytest.fixture(scope="module")
def beat():
    return _clip(drums(seconds=2.0)[: 2 * RATE])


@pytest.mark.parametrize("view", ["spectrum", "envelope"])
def test_a_fixed_view_is_kept_whatever_the_inputs(view, beat):
    content = load_source(beat, AUTO, "content")
    assert choose_view(AUTO.replace(style_view=view), content, False) == view
    assert choose_view(AUTO.replace(style_view=view), None, None) == view


def test_auto_reads_the_spectrum_for_a_texture_or_a_style_without_notes(tune):
    content = load_source(tune, AUTO, "content")
    assert choose_view(AUTO, None, True) == "spectrum"
    assert choose_view(AUTO, content, False) == "spectrum"
    assert choose_view(AUTO, content, True) == "envelope"


@pytest.mark.parametrize(
    "content, style, expected",
    [("tune", "other_tune", "envelope"), ("beat", "other_tune", "spectrum"), ("tune", "beat", "spectrum")],
)
def test_stylize_chooses_by_both_inputs_and_says_which(content, style, expected, request):
    result = stylize(request.getfixturevalue(content), request.getfixturevalue(style), AUTO)
    assert result.metrics["style_view"] == expected
    assert np.isfinite(result.audio).all() and result.audio.shape == (1, 2 * RATE)
    assert result.history[-1]["style"] < result.history[0]["style"]


def test_a_fixed_view_is_reported_too(beat, tune):
    assert stylize(beat, tune, TINY).metrics["style_view"] == "spectrum"


def test_long_content_is_judged_from_its_original(tune, other_tune):
    # Longer than a segment: no working-rate copy exists, the test reads an excerpt.
    long = _clip(np.tile(tune[0][0], 3))
    config = AUTO.replace(segment_seconds=2.0, iterations=2)
    assert load_source(long, config, "content", may_segment=True).waveform is None
    assert stylize(long, other_tune, config).metrics["style_view"] == "envelope"


def test_a_prepared_auto_style_makes_the_envelope_view_once_when_a_melody_asks(tune, other_tune, beat):
    prepared = prepare_style(other_tune, AUTO)
    assert prepared.plays_notes is True
    assert not isinstance(prepared.network, EnvelopeNetwork) and len(prepared.other_views) == 0
    assert stylize(beat, None, AUTO, prepared=prepared).metrics["style_view"] == "spectrum"
    assert len(prepared.other_views) == 0
    with_prepared = stylize(tune, None, AUTO, prepared=prepared)
    assert with_prepared.metrics["style_view"] == "envelope"
    network, _, _ = prepared.targets("envelope")
    assert isinstance(network, EnvelopeNetwork) and network.network is prepared.network
    assert prepared.targets("envelope")[0] is network  # made once
    # The same output as a run that prepares the style itself.
    np.testing.assert_allclose(with_prepared.audio, stylize(tune, other_tune, AUTO).audio, atol=1e-4)


def test_a_prepared_style_without_notes_never_reads_the_envelope(tune, beat):
    prepared = prepare_style(beat, AUTO)
    assert prepared.plays_notes is False
    assert stylize(tune, None, AUTO, prepared=prepared).metrics["style_view"] == "spectrum"


def test_a_prepared_fixed_view_refuses_the_other(other_tune):
    prepared = prepare_style(other_tune, TINY)
    assert prepared.plays_notes is None
    with pytest.raises(ConfigError, match="style_view='spectrum'"):
        prepared.targets("envelope")
    with pytest.raises(ConfigError, match="style_view"):
        prepared.check(AUTO)
