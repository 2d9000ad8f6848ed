"""Style models: the causal network, the rate grid, streaming equal to offline, files, training."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import soundfile as sf
import pytest
import torch

from audiostyle import PRESETS, StyleModel, train_style_model
from audiostyle.errors import AudioFileError, ConfigError, WeightsError
from audiostyle.models import TransformNet
from audiostyle.models.grid import RateGrid
from audiostyle.models.stream import PEAK_CEILING

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
#: A small network over the fast preset's grid: quick to build, train and apply in tests.
SMALL = {"mel_bands": 32, "channels": 16, "kernel": 3, "dilations": [1, 2]}
CONFIG = PRESETS["fast"].replace(filters=64, device="cpu")


def _dark_colour(bands: int) -> torch.Tensor:
    """Band shares falling 1 dB per band: a dark style's long-term colour."""
    shares = 10 ** (-torch.arange(bands, dtype=torch.float32) / 10)
    return shares / shares.sum()


def _model(seed: int = 0, *, scale: float = 0.3) -> StyleModel:
    """A model whose output heads are random (an untrained model is the identity), with a dark style colour."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = TransformNet(dict(SMALL, sample_rate=CONFIG.sample_rate, n_fft=CONFIG.n_fft))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        network.output.weight.copy_(torch.randn(network.output.weight.shape, generator=generator) * scale)
        network.style_colour.copy_(_dark_colour(network.style_colour.shape[0]))
    return StyleModel(network, CONFIG, style_names=("style.wav",), style_weights=(1.0,), training={"steps": 0})


def _tone(rate: int, seconds: float, channels: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    notes = 0.2 * np.sin(2 * np.pi * 330 * t) * (1 + np.sin(2 * np.pi * 2 * t)) / 2
    return np.stack([notes + 0.02 * rng.standard_normal(t.size) for _ in range(channels)]).astype(np.float32)


def test_an_untrained_network_is_the_identity_and_causal():
    network = TransformNet(dict(SMALL, sample_rate=22050, n_fft=2048))
    assert network.bands.shape == (32, 1025) and network.spread.shape == (1025, 32)
    torch.testing.assert_close(network.spread.sum(-1), torch.ones(1025))
    magnitude = torch.rand(2, 32, 30)
    gains, noise, _ = network(magnitude)
    assert gains.shape == noise.shape == (2, 32, 30) and torch.all(gains == 0)
    torch.testing.assert_close(noise, torch.full_like(noise, -12.0))  # far below hearing
    torch.nn.init.normal_(network.output.weight)
    whole, _, _ = network(magnitude)
    first, _, state = network(magnitude[..., :11])
    rest, _, _ = network(magnitude[..., 11:], state)
    torch.testing.assert_close(torch.cat((first, rest), -1), whole, rtol=1e-5, atol=1e-5)
    # Causal: changing a later frame leaves earlier gains alone.
    changed = magnitude.clone()
    changed[..., 20:] += 1
    later, _, _ = network(changed)
    torch.testing.assert_close(later[..., :20], whole[..., :20])
    assert not torch.allclose(later[..., 20:], whole[..., 20:])


@pytest.mark.parametrize("rate", [16000, 22050, 44100, 48000])
def test_the_grid_keeps_a_sound_s_magnitude_at_every_rate(rate):
    grid = RateGrid.at(rate, grid_rate=22050, grid_n_fft=2048, grid_hop=512)
    assert abs(grid.n_fft / rate - 2048 / 22050) < 2e-3 and grid.n_fft == 4 * grid.hop_length
    t = torch.arange(grid.n_fft) / rate
    frame = torch.sin(2 * torch.pi * 1000.0 * t) * torch.hann_window(grid.n_fft, periodic=True)
    magnitude = torch.fft.rfft(frame).abs()[:, None]
    on_grid = grid.to_grid(magnitude)[:, 0]
    assert on_grid.shape == (1025,)
    assert int(on_grid.argmax()) == round(1000 / (22050 / 2048))
    # A Hann-windowed unit sine peaks at a quarter of the grid's size; off a bin, up to 1.4 dB less.
    assert 2048 / 4 * 0.84 <= float(on_grid.max()) <= 2048 / 4 * 1.01
    gains = torch.linspace(-1, 1, 1025)[:, None]
    spread = grid.from_grid(gains)[:, 0]
    assert spread.shape == (grid.n_bins,)
    hz = np.arange(grid.n_bins) * rate / grid.n_fft
    inside = hz <= 11025
    np.testing.assert_allclose(spread[inside].numpy(), np.interp(hz[inside], np.arange(1025) * 22050 / 2048, gains[:, 0].numpy()), atol=1e-4)
    if rate > 22050:  # above the grid: the mean gain of its top octave
        assert torch.allclose(spread[~torch.from_numpy(inside)], gains[512:].mean())


def test_added_noise_comes_back_from_the_stft_at_the_level_the_network_asks():
    network = TransformNet(dict(SMALL, sample_rate=22050, n_fft=2048))
    level = 0.05
    with torch.no_grad():
        # Move the noise half of the output bias until the network asks for log(level) everywhere.
        for _ in range(30):
            _, now, _ = network(torch.zeros(1, 32, 1))
            network.output.bias[32:].add_(float(np.log(level) - now.mean()))
    model = StyleModel(network, CONFIG)
    silent = np.zeros((1, 22050 * 3), np.float32)
    stream = model.stream(22050, 1)
    out = np.concatenate([stream.process(silent), stream.flush()], axis=1)
    from audiostyle import analyze

    spec = analyze(out, 22050, n_fft=2048, hop_length=512).log_magnitude.expm1()[..., 8:-8]
    assert float(spec.square().mean().sqrt()) == pytest.approx(level, rel=0.1)


def test_an_untrained_model_gives_the_content_back():
    model = StyleModel(TransformNet(dict(SMALL, sample_rate=22050, n_fft=2048)), CONFIG)
    audio = _tone(44100, 1.3, channels=2)
    result = model.apply((audio, 44100))
    assert result.audio.shape == audio.shape and result.sample_rate == 44100
    np.testing.assert_allclose(result.audio, audio, atol=1e-5)


@pytest.mark.parametrize("rate, channels", [(22050, 1), (48000, 2), (16000, 1)])
def test_streaming_equals_offline_apply_for_any_blocks(rate, channels):
    model = _model()
    audio = _tone(rate, 1.7, channels)
    offline = model.apply((audio, rate)).audio
    assert offline.shape == audio.shape and np.isfinite(offline).all()
    assert not np.allclose(offline, audio, atol=1e-3)  # the model does change it
    from audiostyle.dsp.levels import analysis_gain

    stream = model.stream(rate, channels, input_gain=analysis_gain(audio))
    rng = np.random.default_rng(1)
    pieces, begin = [], 0
    while begin < audio.shape[-1]:
        size = int(rng.choice([1, 7, 300, 1024, 5000]))
        pieces.append(stream.process(audio[:, begin : begin + size]))
        begin += size
    pieces.append(stream.flush())
    streamed = np.concatenate(pieces, axis=1)
    assert streamed.shape == offline.shape
    np.testing.assert_allclose(streamed, offline, atol=2e-5)
    assert stream.flush().shape == (channels, 0)
    with pytest.raises(ConfigError, match="flushed"):
        stream.process(audio[:, :10])


def _band_shares_db(network: TransformNet, audio: np.ndarray) -> np.ndarray:
    """Long-term power per band of ``audio`` (22.05 kHz mono), as shares in dB."""
    from audiostyle.dsp.stft import analyze

    magnitude = torch.exp(analyze(audio, 22050, n_fft=2048, hop_length=512).log_magnitude) - 1
    power = (network.bands @ magnitude[0].square()).mean(-1)
    return (10 * torch.log10(power / power.sum())).numpy()


def test_the_colour_match_moves_the_output_colour_towards_the_style_s():
    network = TransformNet(dict(SMALL, sample_rate=22050, n_fft=2048))  # the identity, but for the colour
    model = StyleModel(network, CONFIG)
    noise = (0.1 * np.random.default_rng(0).standard_normal((1, 22050 * 4))).astype(np.float32)
    # No style colour known (a new network), or a colour match of 0: the content comes back.
    np.testing.assert_allclose(model.apply((noise, 22050)).audio, noise, atol=1e-5)
    with torch.no_grad():
        network.style_colour.copy_(_dark_colour(32))
    np.testing.assert_allclose(model.apply((noise, 22050), colour_match=0).audio, noise, atol=1e-5)
    target = 10 * np.log10(_dark_colour(32).numpy())
    inner = slice(2, 28)  # bands far from the gain limit and the band edges
    before = _band_shares_db(network, noise[:, 22050:])[inner] - target[inner]
    ratios = []
    for strength in (0.5, 1.0):
        output = model.apply((noise, 22050), colour_match=strength).audio
        assert output.shape == noise.shape and np.isfinite(output).all()
        after = _band_shares_db(network, output[:, 22050:])[inner] - target[inner]  # once the running colour has settled
        # The spread of the shares' error (their mean is a level, which shares do not have).
        ratios.append(np.std(after) / np.std(before))
    # Half the way at 0.5; at 1 the 12 dB limit and the third-octave smoothing leave some.
    assert ratios[0] == pytest.approx(0.5, abs=0.12) and ratios[1] < 0.35
    with pytest.raises(ConfigError, match="colour_match"):
        model.stream(22050, 1, colour_match=1.5)


def test_stream_latency_is_what_it_states():
    model = _model()
    rate = 44100
    stream = model.stream(rate, 1)
    assert stream.latency_samples / rate <= 0.1  # the target at 44.1 kHz
    audio = _tone(rate, 1.0)
    released, worst = 0, 0
    for begin in range(0, audio.shape[-1], 64):
        released += stream.process(audio[:, begin : begin + 64]).shape[-1]
        worst = max(worst, min(begin + 64, audio.shape[-1]) - released)
    assert stream.latency_samples - 64 <= worst <= stream.latency_samples
    assert released + stream.flush().shape[-1] == audio.shape[-1]


def test_apply_follows_the_content_level_and_limits_peaks():
    model = _model()
    audio = _tone(22050, 1.2)
    # Both below the soft limiter's knee, where the output is linear in the input's level.
    loud = model.apply((audio * 0.1, 22050)).audio
    quiet = model.apply((audio * 0.01, 22050)).audio
    assert np.abs(loud).max() < 0.7
    np.testing.assert_allclose(quiet * 10, loud, atol=2e-5)
    hot = model.apply((audio * 20, 22050)).audio
    assert np.abs(hot).max() <= PEAK_CEILING + 1e-6
    # A float file may hold samples up to 3.4e38: its spectrum is taken at the network's level.
    for scale in (1e19, 1e37):
        extreme = model.apply(((audio * scale).astype(np.float32), 22050)).audio
        assert np.isfinite(extreme).all() and np.abs(extreme).max() <= PEAK_CEILING + 1e-6


def test_stream_and_apply_refuse_bad_input():
    model = _model()
    stream = model.stream(22050, 2)
    with pytest.raises(ConfigError, match=r"\(2, samples\)"):
        stream.process(np.zeros((1, 100), np.float32))
    with pytest.raises(ConfigError, match="non-finite"):
        stream.process(np.full((2, 10), np.nan, np.float32))
    with pytest.raises(ConfigError, match="array of numbers"):
        stream.process("not audio")
    with pytest.raises(ConfigError, match="too loud"):
        stream.process(np.full((2, 10), 1e30, np.float32))
    for gain in (0.0, math.nan, 1e308, "1"):
        with pytest.raises(ConfigError, match="input_gain"):
            model.stream(22050, 1, input_gain=gain)
    with pytest.raises(ConfigError, match="sample_rate"):
        model.stream(10, 1)
    with pytest.raises(AudioFileError, match="missing.wav"):
        model.apply("missing.wav")


def test_a_saved_model_loads_the_same(tmp_path):
    model = _model()
    path = model.save(tmp_path / "style.safetensors")
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["digest"] == model.digest and sidecar["styles"] == ["style.wav"]
    assert sidecar["config_digest"] == CONFIG.digest()
    loaded = StyleModel.load(path, device="cpu")
    assert loaded.digest == model.digest and loaded.config == model.config
    audio = _tone(22050, 1.0)
    np.testing.assert_array_equal(loaded.apply((audio, 22050)).audio, model.apply((audio, 22050)).audio)
    assert _model(seed=1).digest != model.digest
    with pytest.raises(AudioFileError, match="exists"):
        model.save(path, overwrite=False)
    with pytest.raises(ConfigError, match="safetensors"):
        model.save(tmp_path / "style.pt")


def _saved(tmp_path: Path) -> Path:
    return _model().save(tmp_path / "m.safetensors")


def _edit_sidecar(path: Path, change) -> None:
    sidecar = json.loads(path.with_suffix(".json").read_text())
    change(sidecar)
    path.with_suffix(".json").write_text(json.dumps(sidecar))


def _edit_tensors(path: Path, change) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path))


@pytest.mark.parametrize(
    "spoil, message",
    [
        (lambda p: p.with_suffix(".json").unlink(), "model description not found"),
        (lambda p: p.write_bytes(b"\x80\x04garbage" * 10), "not a readable safetensors"),
        (lambda p: torch.save({"x": torch.zeros(1)}, p), "not a readable safetensors"),
        (lambda p: p.with_suffix(".json").write_text("{not json"), "not valid JSON"),
        (lambda p: p.with_suffix(".json").write_bytes(b" " * (2 * 1024 * 1024)), "at most"),
        (lambda p: _edit_sidecar(p, lambda s: s.update(version=99)), "version 99"),
        (lambda p: _edit_sidecar(p, lambda s: s.update(format="other")), "not a style model"),
        (lambda p: _edit_sidecar(p, lambda s: s["architecture"].update(channels=10**6)), "over the limit"),
        (lambda p: _edit_sidecar(p, lambda s: s["config"].update(n_fft=3)), "do not validate"),
        (lambda p: _edit_tensors(p, lambda t: t.__setitem__("output.bias", torch.full_like(t["output.bias"], float("nan")))), "NaN"),
        (lambda p: _edit_tensors(p, lambda t: t.__setitem__("input.bias", torch.zeros(3))), "shape"),
        (lambda p: _edit_tensors(p, lambda t: t.pop("output.bias")), "missing tensor"),
        (lambda p: _edit_tensors(p, lambda t: t.__setitem__("style_colour", -t["style_colour"])), "style_colour"),
        (lambda p: _edit_tensors(p, lambda t: t.__setitem__("extra", torch.zeros(1))), "unexpected tensor"),
    ],
)
def test_bad_model_files_are_refused_naming_the_file(tmp_path, spoil, message):
    path = _saved(tmp_path)
    spoil(path)
    with pytest.raises(WeightsError, match=message) as caught:
        StyleModel.load(path, device="cpu")
    assert "m.safetensors" in str(caught.value) or "m.json" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_load_refuses_a_missing_or_non_safetensors_file(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        StyleModel.load(tmp_path / "none.safetensors")
    with pytest.raises(WeightsError, match=r"\.safetensors"):
        StyleModel.load(tmp_path / "model.pt")


def _clip(path: str, seconds: float) -> tuple[np.ndarray, int]:
    from audiostyle import load_audio

    audio, rate = load_audio(SAMPLES / path, mono=True)
    return audio[:, : int(seconds * rate)], rate


def test_a_tiny_model_trains_in_seconds_and_lowers_its_loss(tmp_path):
    reports = []
    model = train_style_model(
        _clip("violin.wav", 2.0),
        [_clip("voice.flac", 3.0), _clip("drums.wav", 2.0), _clip("violin.wav", 1.5)],
        CONFIG.replace(iterations=3, refine_steps=2),
        generic=False,
        minutes=1.0,
        max_steps=25,
        seed=3,
        architecture=SMALL,
        progress=lambda step, total, losses: reports.append((step, total, losses)),
    )
    figures = model.training
    teacher = [losses for step, _, losses in reports if step == 0]
    steps = [(step, total, losses) for step, total, losses in reports if step > 0]
    assert [losses["teacher"] for losses in teacher] == [1.0, 2.0, 3.0]  # every excerpt taught
    assert figures["steps"] == 25 and [s for s, _, _ in steps] == list(range(1, 26))
    assert all(step <= total <= 25 for step, total, _ in steps) and steps[-1][1] == 25
    assert {"distance", "eta"} <= set(steps[-1][2])
    assert figures["validation_last"] < figures["validation_first"]
    assert figures["distance_last"] < figures["distance_first"]
    assert figures["clips"] == 3 and figures["teacher_seconds"] > 0
    assert model.style_names == ("<style array>",)
    colour = model.network.style_colour
    assert torch.all(colour >= 0) and float(colour.sum()) == pytest.approx(1.0, abs=1e-5)
    assert float(colour[:16].sum()) > 0.7  # most of a violin's power lies in the lower half of the mel bands
    result = model.apply(_clip("voice.flac", 1.0))
    assert result.audio.shape == (1, 16000) and np.isfinite(result.audio).all()
    path = model.save(tmp_path / "violin.safetensors")
    assert StyleModel.load(path).digest == model.digest


def test_training_skips_unreadable_contents_and_refuses_bad_settings(tmp_path, caplog):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio")
    model = train_style_model(
        _clip("violin.wav", 1.0),
        [broken, _clip("drums.wav", 1.0)],
        CONFIG.replace(iterations=2, refine_steps=0),
        generic=False,
        max_steps=1,
        architecture=SMALL,
    )
    assert model.training["steps"] == 1 and "broken.wav" in caplog.text
    # An "auto" preset teaches the spectrum view: one network serves every content.
    assert CONFIG.style_view == "auto" and model.config.style_view == "spectrum"
    named = train_style_model(SAMPLES / "violin.wav", [_clip("drums.wav", 1.0)], CONFIG.replace(iterations=2, refine_steps=0), generic=False, max_steps=1, architecture=SMALL)
    assert named.style_names == ("violin.wav",)  # no folders in a shareable file
    with pytest.raises(ConfigError, match="minutes"):
        train_style_model(_clip("violin.wav", 1.0), [], CONFIG, minutes=0)
    with pytest.raises(ConfigError, match="no training contents"):
        train_style_model(_clip("violin.wav", 1.0), [], CONFIG, generic=False)
    with pytest.raises(ConfigError, match="no usable training contents"):
        train_style_model(_clip("violin.wav", 1.0), [broken], CONFIG, generic=False)


def test_training_reads_only_the_head_of_a_long_file(tmp_path, monkeypatch):
    import soundfile as sf

    from audiostyle.models import training_data

    long = tmp_path / "long.flac"
    rng = np.random.default_rng(0)
    sf.write(long, (0.1 * rng.standard_normal(22050 * 40)).astype(np.float32), 22050)
    asked = []
    real = training_data.load_audio
    monkeypatch.setattr(training_data, "load_audio", lambda *a, **k: asked.append(k) or real(*a, **k))
    # Over the settings' max_duration as a whole file, yet its first seconds are read.
    clips = training_data.load_clips([long], CONFIG.replace(max_duration=30.0), generic=False)
    assert asked == [{"max_seconds": training_data.MAX_SECONDS_PER_FILE}]
    assert len(clips) == 1 and clips[0].waveform.shape == (1, int(training_data.EXCERPT_SECONDS * CONFIG.sample_rate))


@pytest.mark.parametrize("rate", [16000, 44100, 48000])
def test_reading_bands_at_a_rate_equals_reading_them_on_the_grid(rate):
    grid = RateGrid.at(rate, grid_rate=22050, grid_n_fft=2048, grid_hop=512)
    bands = torch.rand(7, 1025)
    magnitude = torch.rand(grid.n_bins, 5)
    torch.testing.assert_close(grid.reading(bands) @ magnitude, bands @ grid.to_grid(magnitude), rtol=1e-4, atol=1e-4)


def test_training_contents_given_as_one_folder_read_that_folder_and_at_most_max_scanned(tmp_path, monkeypatch):
    from audiostyle.models import training_data

    for index in range(5):
        sf.write(tmp_path / f"{index}.wav", np.zeros(100, np.float32), 8000)
    # One folder given alone is that folder, not one source per character of its name.
    assert training_data._expand(str(tmp_path)) == sorted(tmp_path.glob("*.wav"))
    monkeypatch.setattr(training_data, "MAX_SCANNED", 3)
    assert len(training_data._expand([tmp_path])) == 3


@pytest.mark.parametrize(
    "arguments, fragment",
    [
        ({"architecture": {"channels": 0}}, "channels=0"),
        ({"architecture": {"channels": 10**9}}, "over the limit"),
        ({"architecture": {"dilations": [10**6]}}, "dilations"),
        ({"architecture": {"bogus": 1}}, "unknown keys"),
        ({"architecture": 5}, "dict of overrides"),
        ({"seed": 1.5}, "seed"),
        ({"progress": 5}, "progress"),
    ],
)
def test_training_settings_are_checked_before_any_work(arguments, fragment, monkeypatch):
    from audiostyle.models import train

    monkeypatch.setattr(train, "prepare_style", lambda *a, **k: pytest.fail("the work started"))
    clip = (np.zeros((1, 22050), np.float32) + 0.1, 22050)
    with pytest.raises(ConfigError, match=fragment):
        train_style_model(clip, [clip], generic=False, **arguments)


def test_training_contents_may_be_none_one_array_or_several_paths(tmp_path):
    from audiostyle.models import training_data

    clip = (np.zeros((1, 100), np.float32), 8000)
    assert training_data._expand(()) == [] and training_data._expand(clip) == [clip]
    assert training_data._expand(("a.wav", "b.wav")) == ["a.wav", "b.wav"]


def test_apply_feeds_blocks_of_bounded_size_whatever_the_channels(monkeypatch):
    from audiostyle.models import model as model_module
    from audiostyle.models.stream import ModelStream

    sizes = []
    process = ModelStream.process
    monkeypatch.setattr(ModelStream, "process", lambda self, block: sizes.append(block.size) or process(self, block))
    monkeypatch.setattr(model_module, "MAX_BLOCK_SAMPLES", 8 * 4096)
    audio = np.tile(_tone(22050, 1.0), (8, 1))
    whole = _model().apply((audio, 22050), block_seconds=10.0).audio
    assert max(sizes) <= 8 * 4096 and len(sizes) > 1
    monkeypatch.setattr(model_module, "MAX_BLOCK_SAMPLES", 2**30)
    np.testing.assert_allclose(_model().apply((audio, 22050), block_seconds=10.0).audio, whole, atol=1e-5)
