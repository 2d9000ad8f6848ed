"""audiostyle.scores: the content and style figures of a run, on their anchors and between them."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from audiostyle import AudioFileError, ConfigError
from audiostyle.scores import CONTENT_PARTS, MAX_SECONDS, STYLE_PARTS, score_output

RATE = 16000


def melody(notes: list[float], harmonics: list[float], seconds_per_note: float, *, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """Plucked notes (10 ms attack, exponential decay) with the given harmonic amplitudes, float32 mono."""
    t = np.arange(int(seconds_per_note * RATE)) / RATE
    envelope = np.minimum(1.0, t / 0.01) * np.exp(-3.0 * t)
    wave = np.concatenate([
        envelope * sum(a * np.sin(2 * np.pi * f * (k + 1) * t) for k, a in enumerate(harmonics)) for f in notes
    ])
    wave = wave + noise * np.random.default_rng(seed).standard_normal(wave.size)
    return (0.3 * wave / np.max(np.abs(wave))).astype(np.float32)


@pytest.fixture(scope="module")
def clips() -> tuple[np.ndarray, np.ndarray]:
    """Two seconds each: a bright melody (content) and other notes on a near-pure, breathy tone (style)."""
    content = melody([220, 262, 330, 392, 330, 262, 220, 196], [1, 0.5, 0.33, 0.25, 0.2, 0.16], 0.25)
    style = melody([294, 370, 440, 370, 294, 247], [1, 0, 0.1, 0, 0.05], 0.34, noise=0.05, seed=1)
    return content, style[: content.size]


def score(output: np.ndarray, content: np.ndarray, style: np.ndarray, **kwargs):
    return score_output((output, RATE), (content, RATE), [((style, RATE), 1.0)], **kwargs)


def test_the_content_copy_keeps_everything_and_takes_nothing(clips):
    content, style = clips
    scores = score(content, content, style)
    assert scores.content == 1.0 and scores.style == 0.0
    assert scores.content_parts == dict.fromkeys(CONTENT_PARTS, 1.0)
    assert scores.style_parts == dict.fromkeys(STYLE_PARTS, 0.0)
    assert scores.seconds == pytest.approx(2.0)


def test_the_style_clip_itself_takes_all_the_style(clips):
    content, style = clips
    scores = score(style, content, style)
    assert scores.style == 1.0 and scores.content == 0.0
    # Time-averaged: another length of the same clip still matches it; stereo and another rate too.
    stereo = np.stack([style, style])[:, : style.size // 2]
    assert score_output((stereo, RATE), (content, RATE), [((style, RATE), 1.0)]).style > 0.9


@pytest.mark.parametrize("gain", [0.01, 10.0])
def test_level_does_not_enter_a_figure(clips, gain):
    content, style = clips
    assert score(content * gain, content, style).content == 1.0


def test_mixes_move_from_the_content_to_the_style(clips):
    content, style = clips
    unit = lambda wave: wave / np.sqrt(np.mean(wave**2))  # noqa: E731
    shares = [0.0, 0.25, 0.5, 0.75, 1.0]
    results = [score((1 - a) * unit(content) + a * unit(style), content, style) for a in shares]
    kept = [r.content for r in results]
    taken = [r.style for r in results]
    assert all(a > b for a, b in zip(kept, kept[1:])), kept
    assert all(a < b for a, b in zip(taken, taken[1:])), taken
    for part in CONTENT_PARTS:
        values = [r.content_parts[part] for r in results]
        assert values[0] > values[2] > values[4], (part, values)
    for part in STYLE_PARTS:
        values = [r.style_parts[part] for r in results]
        assert values[0] < values[2] < values[4], (part, values)


def test_a_blend_is_judged_against_its_weighted_style(clips):
    content, style = clips
    other = melody([523, 587, 659, 587], [1, 0.8, 0.6, 0.4, 0.3, 0.2, 0.1], 0.5, noise=0.2, seed=2)
    alone = score(style, content, style)
    blended = score_output((style, RATE), (content, RATE), [((style, RATE), 3.0), ((other, RATE), 0.0)])
    assert blended == alone
    half = score_output((style, RATE), (content, RATE), [((style, RATE), 1.0), ((other, RATE), 1.0)])
    assert 0.0 < half.style < alone.style


def test_only_the_first_max_seconds_are_analysed(clips):
    content, style = clips
    # What follows the first second cannot change a figure: it is never read.
    noisy_tail = np.concatenate([content, np.random.default_rng(3).standard_normal(content.size).astype(np.float32)])
    head = score(content, content, style, max_seconds=1.0)
    assert score(noisy_tail, noisy_tail, style, max_seconds=1.0) == head
    assert head.seconds == 1.0
    long = np.tile(content, int(MAX_SECONDS / 2) + 2)
    assert score(long, long, style).seconds == MAX_SECONDS


def test_files_score_as_their_waveforms(clips, tmp_path):
    content, style = clips
    sf.write(tmp_path / "content.wav", content, RATE, subtype="FLOAT")
    sf.write(tmp_path / "style.flac", style, RATE)
    from_files = score_output((content, RATE), tmp_path / "content.wav", [(str(tmp_path / "style.flac"), 1.0)])
    assert from_files.content == 1.0 and from_files.style == 0.0


def test_a_silent_output_keeps_nothing(clips):
    content, style = clips
    scores = score(np.zeros_like(content), content, style)
    assert scores.content == 0.0 and 0.0 <= scores.style <= 1.0


def test_a_style_equal_to_the_content_has_no_figures(clips):
    content, _ = clips
    scores = score(content, content, content)
    assert scores.content is None and scores.style is None
    assert set(scores.to_dict()) == {"content", "style", "content_parts", "style_parts", "seconds"}


@pytest.mark.parametrize(
    ("styles", "kwargs", "error", "fragment"),
    [
        ([], {}, ConfigError, "at least one style"),
        ([("STYLE", -1.0)], {}, ConfigError, "weight=-1.0"),
        ([("STYLE", 0.0)], {}, ConfigError, "sum to 0"),
        ([("STYLE", float("nan"))], {}, ConfigError, "weight=nan"),
        ([("STYLE", 1.0)], {"max_seconds": 0}, ConfigError, "max_seconds=0"),
        ([((np.zeros(0), RATE), 1.0)], {}, ConfigError, "shape=(0,)"),
        ([((np.full(100, np.nan), RATE), 1.0)], {}, ConfigError, "NaN"),
        ([((np.zeros(100), 0), 1.0)], {}, ConfigError, "sample_rate=0"),
        ([(np.zeros(100), 1.0)], {}, ConfigError, "path or a (waveform, sample_rate)"),
        ([("missing.wav", 1.0)], {}, AudioFileError, "missing.wav"),
    ],
)
def test_bad_inputs_raise_named_errors(clips, tmp_path, monkeypatch, styles, kwargs, error, fragment):
    content, style = clips
    monkeypatch.chdir(tmp_path)
    styles = [((style, RATE) if isinstance(source, str) and source == "STYLE" else source, weight) for source, weight in styles]
    with pytest.raises(error) as caught:
        score_output((content, RATE), (content, RATE), styles, **kwargs)
    assert fragment in str(caught.value)


def test_scores_of_samples_near_the_float32_limit_are_finite():
    from audiostyle.scores import score_output

    rate = 22050
    t = np.arange(rate) / rate
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
    noise = (0.1 * np.random.default_rng(0).standard_normal(rate)).astype(np.float32)[None]
    loud = score_output(((tone * 1e38).astype(np.float32), rate), (tone, rate), [((noise, rate), 1.0)])
    quiet = score_output((tone, rate), (tone, rate), [((noise, rate), 1.0)])
    for name in ("style", "content"):
        assert np.isfinite(getattr(loud, name)) and getattr(loud, name) == pytest.approx(getattr(quiet, name), abs=1e-3)
