"""Pre-echo suppression: cuts what comes before the content's onsets, and nothing else."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiostyle import StyleConfig, stylize
from audiostyle.dsp import pre_echo
from audiostyle.dsp.pre_echo import suppress_pre_echo

RATE = 16000
N_FFT = 1024  # 64 ms: pre-echo reaches up to that far ahead


def _tone(seconds: float, start: float, *, ramp: float = 0.002, freqs=(440.0, 1320.0, 2750.0)) -> np.ndarray:
    """Partials that start at ``start`` s with a ``ramp`` s fade-in, silence before."""
    t = np.arange(int(seconds * RATE)) / RATE
    wave = sum(np.sin(2 * np.pi * f * t) / (k + 1) for k, f in enumerate(freqs))
    envelope = np.clip((t - start) / ramp, 0.0, 1.0)
    return (0.3 * wave * envelope).astype(np.float64)


def _energy_db(wave: np.ndarray, start: float, stop: float) -> float:
    part = wave[..., int(start * RATE) : int(stop * RATE)]
    return 10 * np.log10(np.mean(part**2) + 1e-20)


def _suppress(
    output: np.ndarray, content: np.ndarray, max_cut_db: float = 18.0, everywhere: bool = False, partials: bool = False
) -> np.ndarray:
    out = suppress_pre_echo(
        torch.as_tensor(np.atleast_2d(output)), torch.as_tensor(np.atleast_2d(content)), RATE,
        n_fft=N_FFT, max_cut_db=max_cut_db, everywhere=everywhere, partials=partials,
    )
    return out.numpy()


def test_energy_ahead_of_an_onset_is_cut_and_the_note_kept():
    content = _tone(1.0, 0.5)
    # The same note starting 50 ms early over a slow swell: what an inconsistent spectrogram
    # rebuilt with 64 ms windows sounds like.
    output = _tone(1.0, 0.45, ramp=0.05)
    fixed = _suppress(output, content)[0]
    before = _energy_db(output, 0.46, 0.49), _energy_db(fixed, 0.46, 0.49)
    assert before[1] < before[0] - 6.0
    # The note itself, once the content plays it, keeps its level.
    assert abs(_energy_db(fixed, 0.6, 0.9) - _energy_db(output, 0.6, 0.9)) < 0.5


def _partial_db(wave: np.ndarray, freq: float, start: float, stop: float) -> float:
    """Peak level (dB) within 20 Hz of ``freq`` of a Hann-windowed excerpt."""
    part = wave[int(start * RATE) : int(stop * RATE)]
    spectrum = np.abs(np.fft.rfft(part * np.hanning(part.size), n=8192))
    near = np.abs(np.fft.rfftfreq(8192, 1.0 / RATE) - freq) < 20.0
    return float(20 * np.log10(spectrum[near].max() + 1e-12))


@pytest.mark.parametrize("everywhere", [False, True])
def test_partial_bands_cut_a_legato_note_ahead_of_its_start_beside_a_held_one(everywhere):
    # A new note 150 Hz above one still sounding: bands wide enough to hold both would hide
    # the new note's early rise under the held note's level.
    held = _tone(1.0, 0.0, freqs=(2000.0,))
    content = held + _tone(1.0, 0.5, freqs=(2150.0,))
    output = held + _tone(1.0, 0.44, ramp=0.05, freqs=(2150.0,))
    fixed = _suppress(output, content, everywhere=everywhere, partials=True)[0]
    assert _partial_db(fixed, 2150.0, 0.44, 0.49) < _partial_db(output, 2150.0, 0.44, 0.49) - 5.0
    for window in ((0.3, 0.44), (0.6, 0.9)):
        assert abs(_partial_db(fixed, 2000.0, *window) - _partial_db(output, 2000.0, *window)) < 0.1


def test_cut_never_deeper_than_asked():
    content = _tone(1.0, 0.5)
    output = _tone(1.0, 0.3, ramp=0.001)
    shallow = _suppress(output, content, max_cut_db=6.0)[0]
    deep = _suppress(output, content, max_cut_db=30.0)[0]
    window = (0.45, 0.49)
    cut_shallow = _energy_db(output, *window) - _energy_db(shallow, *window)
    cut_deep = _energy_db(output, *window) - _energy_db(deep, *window)
    assert 0.5 < cut_shallow <= 6.5
    assert cut_deep > cut_shallow + 3.0


def test_steady_content_leaves_the_output_alone():
    # No onset in the content: a texture that comes and goes in the output is the style's. The
    # content's sidelobes flicker 80 dB down, within the compared range; what that moves stays
    # 40 dB under the texture.
    content = _tone(1.0, 0.0)
    rng = np.random.default_rng(0)
    bursts = rng.standard_normal(RATE) * np.repeat(rng.random(20) > 0.5, RATE // 20) * 0.1
    output = _tone(1.0, 0.0) + bursts
    fixed = _suppress(output, content)[0]
    assert np.max(np.abs(fixed - output)) < 1e-2 * np.max(np.abs(output))
    assert np.sum((fixed - output) ** 2) < 1e-4 * np.sum(bursts**2)


def test_everywhere_turns_down_rises_the_content_lacks_and_keeps_its_own():
    # A steady note with an added pulse (the flutter that reads as an extra onset): the pulse
    # goes, the note stays, and a real onset of the content passes.
    content = _tone(1.0, 0.5)
    pulse = np.zeros(RATE)
    pulse[int(0.7 * RATE) : int(0.72 * RATE)] = 1.0
    output = content * (1.0 + 2.0 * pulse)
    fixed = _suppress(output, content, everywhere=True)[0]
    assert _energy_db(fixed, 0.7, 0.72) < _energy_db(output, 0.7, 0.72) - 2.0  # of 9.5 dB: its own local level rose too
    assert abs(_energy_db(fixed, 0.8, 0.95) - _energy_db(output, 0.8, 0.95)) < 0.5
    onset = _energy_db(fixed, 0.5, 0.55) - _energy_db(fixed, 0.4, 0.48)
    assert onset > 40.0
    # Only ahead of onsets (the default), the pulse stays.
    kept = _suppress(output, content)[0]
    assert abs(_energy_db(kept, 0.7, 0.72) - _energy_db(output, 0.7, 0.72)) < 0.5


def test_everywhere_keeps_the_contents_pauses_silent():
    # The content stops at 0.6 s; the output goes on with a hiss 30 dB under its note.
    content = _tone(1.0, 0.1) * (np.arange(RATE) < 0.6 * RATE)
    hiss = 0.3 * 10 ** (-30 / 20) * np.random.default_rng(0).standard_normal(RATE)
    output = _tone(1.0, 0.1) * (np.arange(RATE) < 0.6 * RATE) + hiss * (np.arange(RATE) >= 0.6 * RATE)
    fixed = _suppress(output, content, everywhere=True)[0]
    assert _energy_db(fixed, 0.75, 0.95) < _energy_db(output, 0.75, 0.95) - 15.0
    assert abs(_energy_db(fixed, 0.3, 0.5) - _energy_db(output, 0.3, 0.5)) < 0.5
    # Only ahead of onsets (the default), the hiss stays.
    assert abs(_energy_db(_suppress(output, content)[0], 0.75, 0.95) - _energy_db(output, 0.75, 0.95)) < 0.5


def test_everywhere_judges_a_rise_against_the_window_before(monkeypatch):
    # The envelope view's case: the output's next note sits in a band the content's barely
    # reaches, and swells in 60 ms early. Around the note's start the local level includes the
    # note, which hides the swell from the centred comparison; the past's level does not. The
    # band holds a quiet sound of its own before (a recording's floor, 50 dB down), so the
    # centred comparison is not simply floored out.
    held = 0.1 * _tone(1.0, 0.0) + 0.003 * _tone(1.0, 0.0, freqs=(3300.0,))
    content = held + _tone(1.0, 0.5, freqs=(660.0,)) + 0.03 * _tone(1.0, 0.5, freqs=(3300.0,))
    output = held + 0.3 * _tone(1.0, 0.44, ramp=0.06, freqs=(660.0,)) + _tone(1.0, 0.44, ramp=0.06, freqs=(3300.0,))
    fixed = _suppress(output, content, everywhere=True)[0]
    monkeypatch.setattr(pre_echo, "_relative_to_past", lambda power, reach: torch.ones_like(power))
    centred = _suppress(output, content, everywhere=True)[0]
    early = (0.45, 0.49)
    assert _energy_db(fixed, *early) < _energy_db(centred, *early) - 2.0
    assert _energy_db(fixed, *early) <= _energy_db(content, *early)
    # The note, once the content plays it, is the same either way.
    assert abs(_energy_db(fixed, 0.6, 0.9) - _energy_db(output, 0.6, 0.9)) < 0.5
    # The stricter gain of the two: never less cut anywhere.
    for start in np.arange(0.0, 0.95, 0.05):
        assert _energy_db(fixed, start, start + 0.05) <= _energy_db(centred, start, start + 0.05) + 0.1


def test_everywhere_cuts_a_swell_far_under_the_loudest_note():
    # 67 dB under the note, in a band the content leaves silent: inaudible next to the note, but
    # it starts the note early in a quiet room and for an onset detector working over 80 dB.
    content = _tone(1.0, 0.5)
    output = content + 1e-3 * _tone(1.0, 0.44, ramp=0.06, freqs=(5000.0,))
    early = (0.45, 0.49)
    assert _energy_db(output, *early) < _energy_db(output, 0.6, 0.9) - 60.0
    fixed = _suppress(output, content, everywhere=True)[0]
    assert _energy_db(fixed, *early) < _energy_db(output, *early) - 12.0
    assert abs(_energy_db(fixed, 0.6, 0.9) - _energy_db(output, 0.6, 0.9)) < 0.5


def test_held_gain_comes_back_at_the_release_rate_or_with_the_content():
    gain_db = torch.tensor([[0.0, -10.0, -10.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    flat = torch.ones(1, 8)
    held = 10.0 * torch.log10(pre_echo._held(10.0 ** (gain_db / 10.0), flat, 2.0))
    torch.testing.assert_close(held, torch.tensor([[0.0, -10.0, -10.0, -8.0, -6.0, -4.0, -2.0, 0.0]]), atol=1e-4, rtol=0)
    # The content rising by 10 dB at frame 3 lets the cut go at once there.
    rising = torch.tensor([[1.0, 1.0, 1.0, 10.0, 10.0, 10.0, 10.0, 10.0]])
    held = 10.0 * torch.log10(pre_echo._held(10.0 ** (gain_db / 10.0), rising, 2.0))
    torch.testing.assert_close(held, torch.zeros(1, 8).index_fill(1, torch.tensor([1, 2]), -10.0), atol=1e-4, rtol=0)


def test_everywhere_cut_eases_off_no_faster_than_its_release(monkeypatch):
    # A struck note (30 dB down in 50 ms, then nearly held) styled as a held note: the output is
    # turned down while the content decays fast. Let go at once when the decay slows, it would
    # come back up 10 dB in 20 ms, a second onset; held, it rises no faster than the release.
    t = np.arange(RATE) / RATE
    after = np.clip(t - 0.2, 0.0, None)
    decay_db = np.minimum(after, 0.05) * 600.0 + np.clip(after - 0.05, 0.0, None) * 5.0
    content = _tone(1.0, 0.2) * 10.0 ** (-decay_db / 20.0)
    output = _tone(1.0, 0.2)

    def steepest_rise(wave: np.ndarray) -> float:  # dB per second, over 50 ms
        levels = np.array([_energy_db(wave, s, s + 0.01) for s in np.arange(0.25, 0.9, 0.01)])
        return float(np.max(levels[5:] - levels[:-5]) / 0.05)

    held = _suppress(output, content, everywhere=True)[0]
    assert steepest_rise(held) <= 1.1 * pre_echo.RELEASE_DB_PER_SECOND
    monkeypatch.setattr(pre_echo, "_held", lambda gain, content_power, release_db: gain)
    let_go = _suppress(output, content, everywhere=True)[0]
    assert steepest_rise(let_go) > 1.5 * pre_echo.RELEASE_DB_PER_SECOND
    # Once the cut has eased off, the note is where it would be without the hold.
    assert abs(_energy_db(held, 0.8, 0.95) - _energy_db(let_go, 0.8, 0.95)) < 0.5


def test_only_attenuates_and_keeps_shape_and_stereo():
    rng = np.random.default_rng(1)
    content = np.stack([_tone(0.8, 0.2), _tone(0.8, 0.5)])
    output = rng.standard_normal((2, content.shape[-1])) * 0.1
    fixed = _suppress(output, content)
    assert fixed.shape == output.shape and np.isfinite(fixed).all()
    for start in np.arange(0.0, 0.75, 0.05):
        assert _energy_db(fixed, start, start + 0.05) <= _energy_db(output, start, start + 0.05) + 0.1
    # One gain for both channels: the channels' level difference per stretch stays.
    for start in (0.1, 0.35, 0.45):
        diff_before = _energy_db(output[0], start, start + 0.05) - _energy_db(output[1], start, start + 0.05)
        diff_after = _energy_db(fixed[0], start, start + 0.05) - _energy_db(fixed[1], start, start + 0.05)
        assert abs(diff_before - diff_after) < 0.5


def test_silent_content_and_silent_output_stay_finite():
    silence = np.zeros((1, RATE // 2))
    assert np.array_equal(_suppress(silence, silence), silence)
    assert np.isfinite(_suppress(_tone(0.5, 0.0)[None], silence)).all()


@pytest.mark.parametrize("samples", [1, 10, 100, 300, N_FFT + 1])
def test_clips_shorter_than_a_window_pass(samples):
    rng = np.random.default_rng(samples)
    output, content = rng.standard_normal((2, 1, samples)) * 0.1
    fixed = _suppress(output, content)
    assert fixed.shape == output.shape and np.isfinite(fixed).all()


CONFIG = StyleConfig(sample_rate=RATE, n_fft=512, hop_length=128, filters=32, kernel_widths=(3,), iterations=3,
                     griffin_lim_iters=4, refine_steps=2, device="cpu")


def test_stylize_applies_it_to_content_runs_only():
    content, style = (_tone(1.0, 0.4)[None].astype(np.float32), RATE), (_tone(1.0, 0.0, freqs=(300.0,))[None].astype(np.float32), RATE)
    plain = stylize(content, style, CONFIG)
    guarded = stylize(content, style, CONFIG.replace(pre_echo_db=18.0))
    assert "pre_echo" in guarded.timings and "pre_echo" in plain.timings
    assert not np.allclose(plain.audio, guarded.audio)
    assert _energy_db(guarded.audio, 0.3, 0.39) < _energy_db(plain.audio, 0.3, 0.39)
    loop = CONFIG.replace(loop=True)
    assert np.array_equal(stylize(None, style, loop, duration=0.5).audio,
                          stylize(None, style, loop.replace(pre_echo_db=18.0), duration=0.5).audio)


def test_the_envelope_view_turns_down_every_rise_partial_by_partial(monkeypatch):
    from audiostyle.pipeline import stages

    seen = []

    def spy(*args, everywhere=False, partials=False, **kwargs):
        seen.append((everywhere, partials))
        return suppress_pre_echo(*args, everywhere=everywhere, partials=partials, **kwargs)

    monkeypatch.setattr(stages, "suppress_pre_echo", spy)
    content, style = (_tone(1.0, 0.4)[None].astype(np.float32), RATE), (_tone(1.0, 0.0, freqs=(300.0,))[None].astype(np.float32), RATE)
    for view in ("spectrum", "envelope"):
        stylize(content, style, CONFIG.replace(pre_echo_db=18.0, style_view=view))
    assert seen == [(False, False), (True, True)]


def test_off_by_default_in_the_engine_and_on_in_the_presets():
    from audiostyle import PRESETS

    assert StyleConfig().pre_echo_db == 0
    assert all(PRESETS[name].pre_echo_db > 0 for name in ("default", "fast", "instrument"))
    assert PRESETS["classic"].pre_echo_db == 0


@pytest.mark.parametrize("value", [-1.0, 61.0, float("inf")])
def test_rejects_out_of_range(value):
    from audiostyle.errors import ConfigError

    with pytest.raises(ConfigError, match="pre_echo_db"):
        StyleConfig(pre_echo_db=value)
