"""The notes test behind style_view="auto": melodies play notes; speech, noise and drums do not."""

from __future__ import annotations

import numpy as np
import pytest

from audiostyle.dsp import notes
from audiostyle.dsp.levels import EXCERPT_BLOCKS, excerpt_blocks
from audiostyle.dsp.notes import (
    CONCENTRATION_THRESHOLD,
    PERSISTENCE_THRESHOLD,
    NoteEvidence,
    blend_evidence,
    note_evidence,
)

RATE = 22050


def _harmonic(f0: np.ndarray, rate: int = RATE, harmonics: int = 12) -> np.ndarray:
    """A harmonic tone following the per-sample fundamental ``f0`` (Hz), partials falling as 1/k."""
    phase = 2 * np.pi * np.cumsum(f0) / rate
    wave = sum(np.sin(k * phase) / k for k in range(1, harmonics + 1) if k * f0.max() < rate / 2)
    return (0.3 * wave / np.abs(wave).max()).astype(np.float32)


def melody(rate: int = RATE, seconds: float = 4.0, semitones: int = 0) -> np.ndarray:
    """Held notes of a pentatonic tune, half a second each, ``semitones`` up."""
    tune = np.array([262, 294, 330, 392, 440, 392, 330, 294]) * 2 ** (semitones / 12)
    note = int(0.5 * rate)
    f0 = np.repeat(np.resize(tune, int(seconds / 0.5)), note).astype(np.float64)
    envelope = np.tile(np.minimum(1.0, np.linspace(0, 12, note)) * np.linspace(1.0, 0.6, note), len(f0) // note)
    return _harmonic(f0, rate) * envelope.astype(np.float32)


def speech_like(seconds: float = 4.0) -> np.ndarray:
    """A voice that glides: the fundamental sweeps 110-220 Hz four times a second, with noisy bursts."""
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = 160 + 55 * np.sin(2 * np.pi * 4 * t) + 20 * np.sin(2 * np.pi * 7.3 * t)
    voiced = _harmonic(f0) * (np.sin(2 * np.pi * 2.5 * t) > -0.3)
    noise = 0.05 * np.random.default_rng(1).standard_normal(t.size) * (np.sin(2 * np.pi * 2.5 * t) <= -0.3)
    return (voiced + noise).astype(np.float32)


def noise(seconds: float = 4.0) -> np.ndarray:
    return (0.1 * np.random.default_rng(0).standard_normal(int(seconds * RATE))).astype(np.float32)


def drums(seconds: float = 4.0) -> np.ndarray:
    """Decaying noise bursts eight times a second."""
    rng = np.random.default_rng(2)
    out = np.zeros(int(seconds * RATE), np.float32)
    hit = (rng.standard_normal(int(0.1 * RATE)) * np.exp(-np.linspace(0, 8, int(0.1 * RATE)))).astype(np.float32)
    for start in range(0, out.size - hit.size, RATE // 8):
        out[start : start + hit.size] += hit
    return out


def inharmonic_cluster(seconds: float = 4.0) -> np.ndarray:
    """Sixty steady partials at random frequencies: lasting, but on every pitch class (a cymbal's wash)."""
    rng = np.random.default_rng(3)
    t = np.arange(int(seconds * RATE)) / RATE
    freqs = np.exp(rng.uniform(np.log(250), np.log(5000), 60))
    wave = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) for f in freqs)
    return (0.3 * wave / np.abs(wave).max()).astype(np.float32)


def test_a_melody_plays_notes():
    evidence = note_evidence(melody(), RATE)
    assert evidence.persistence > PERSISTENCE_THRESHOLD + 0.1
    assert evidence.concentration > CONCENTRATION_THRESHOLD + 0.1
    assert evidence.plays_notes


@pytest.mark.parametrize(
    "make, failing",
    [(speech_like, "persistence"), (noise, "persistence"), (drums, "persistence"), (inharmonic_cluster, "concentration")],
)
def test_speech_noise_drums_and_a_cymbal_wash_do_not(make, failing):
    evidence = note_evidence(make(), RATE)
    assert not evidence.plays_notes
    threshold = PERSISTENCE_THRESHOLD if failing == "persistence" else CONCENTRATION_THRESHOLD
    assert getattr(evidence, failing) < threshold


def test_stereo_is_mixed_and_level_does_not_matter():
    mono = melody()
    stereo = np.stack([mono, 0.5 * mono])
    loud, quiet = note_evidence(stereo, RATE), note_evidence(0.01 * mono, RATE)
    reference = note_evidence(mono, RATE)
    assert loud.persistence == pytest.approx(reference.persistence, abs=1e-3)
    assert quiet.persistence == pytest.approx(reference.persistence, abs=1e-3)
    assert quiet.concentration == pytest.approx(reference.concentration, abs=1e-3)


def test_a_float_file_near_its_largest_value_is_read_without_overflow():
    # A float WAV may hold samples up to 3.4e38, whose float32 spectrum would be infinite.
    loud = melody() * np.float32(1e37)
    with np.errstate(all="raise"):
        evidence = note_evidence(loud, RATE)
    assert evidence.persistence == pytest.approx(note_evidence(melody(), RATE).persistence, abs=5e-3)


def test_another_rate_is_analysed_at_the_analysis_rate():
    at_48k = melody(rate=48000)
    evidence = note_evidence(at_48k, 48000, analysis_rate=RATE)
    reference = note_evidence(melody(), RATE)
    assert evidence.persistence == pytest.approx(reference.persistence, abs=0.05)
    assert evidence.concentration == pytest.approx(reference.concentration, abs=0.1)


def test_silence_and_a_clip_shorter_than_a_window_have_no_notes():
    assert note_evidence(np.zeros(RATE, np.float32), RATE) == NoteEvidence(0.0, 0.0)
    assert not note_evidence(melody()[:1000], RATE).plays_notes


def test_a_long_input_is_read_as_a_bounded_excerpt():
    long = np.tile(melody(seconds=4.0), 30)  # two minutes
    blocks = excerpt_blocks(long[np.newaxis], RATE)
    assert sum(block.size for block in blocks) <= notes.MAX_SECONDS * RATE
    assert len(blocks) == EXCERPT_BLOCKS
    assert blocks[-1][0, -1] == long[-1]  # the blocks reach the end
    assert note_evidence(long, RATE).plays_notes


def test_a_blend_is_the_weighted_mean():
    blended = blend_evidence([NoteEvidence(0.8, 1.5), NoteEvidence(0.2, 0.3)], [3.0, 1.0])
    assert blended.persistence == pytest.approx(0.65)
    assert blended.concentration == pytest.approx(1.2)
