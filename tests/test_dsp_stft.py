"""STFT analysis/synthesis: shapes, invertibility, agreement with librosa, documented errors."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from audiostyle.dsp.mel import band_views
from audiostyle.dsp.stft import (
    Spectrogram,
    analyze,
    log_magnitude,
    magnitude_of,
    spectral_convergence,
    stft,
    synthesize,
)
from audiostyle.errors import AudioFileError, ConfigError
from audiostyle.validation import validate_stft_params

pytestmark = pytest.mark.usefixtures("single_thread")

SAMPLE_RATE = 16000
SAMPLES = 4000
STFT_SETTINGS = [(256, 64), (512, 128), (512, 256), (1024, 256), (1024, 512)]


def _noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return (0.3 * rng.standard_normal(shape)).astype(np.float32)


@pytest.mark.parametrize("n_fft, hop_length", STFT_SETTINGS)
@pytest.mark.parametrize("shape", [(SAMPLES,), (1, SAMPLES), (2, SAMPLES)], ids=["1d", "mono", "stereo"])
def test_analyze_shapes(rng, device, shape, n_fft, hop_length):
    waveform = torch.from_numpy(_noise(rng, shape)).to(device)
    spec = analyze(waveform, SAMPLE_RATE, n_fft=n_fft, hop_length=hop_length)
    channels = 1 if len(shape) == 1 else shape[0]
    expected = (channels, n_fft // 2 + 1, 1 + SAMPLES // hop_length)
    assert tuple(spec.log_magnitude.shape) == expected
    assert tuple(spec.phase.shape) == expected
    assert spec.log_magnitude.dtype == torch.float32
    assert spec.phase.is_complex()
    assert spec.log_magnitude.device.type == device.type
    assert (spec.sample_rate, spec.n_fft, spec.hop_length, spec.length) == (
        SAMPLE_RATE,
        n_fft,
        hop_length,
        SAMPLES,
    )
    torch.testing.assert_close(spec.phase.abs(), torch.ones_like(spec.log_magnitude), atol=1e-5, rtol=0)
    assert bool((spec.log_magnitude >= 0).all())


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16], ids=lambda d: d.__name__)
def test_analyze_accepts_numpy_and_works_in_float32(rng, dtype):
    waveform = (_noise(rng, (2, SAMPLES)) * (1000 if dtype is np.int16 else 1)).astype(dtype)
    spec = analyze(waveform, SAMPLE_RATE, n_fft=512, hop_length=128)
    assert spec.log_magnitude.device.type == "cpu"
    assert spec.log_magnitude.dtype == torch.float32
    assert tuple(spec.log_magnitude.shape) == (2, 257, 1 + SAMPLES // 128)


def test_analyze_device_argument_moves_tensors(rng, device):
    spec = analyze(_noise(rng, (1, SAMPLES)), SAMPLE_RATE, n_fft=512, hop_length=128, device=device)
    assert spec.log_magnitude.device.type == device.type
    assert spec.phase.device.type == device.type
    moved = spec.to("cpu")
    assert moved.log_magnitude.device.type == "cpu" and moved.phase.device.type == "cpu"
    torch.testing.assert_close(moved.log_magnitude, spec.log_magnitude.cpu())


@pytest.mark.parametrize("n_fft, hop_length", STFT_SETTINGS)
@pytest.mark.parametrize("channels", [1, 2])
def test_round_trip(rng, device, channels, n_fft, hop_length):
    waveform = torch.from_numpy(_noise(rng, (channels, SAMPLES + 37))).to(device)
    rebuilt = synthesize(analyze(waveform, SAMPLE_RATE, n_fft=n_fft, hop_length=hop_length))
    assert rebuilt.shape == waveform.shape
    assert float((rebuilt - waveform).abs().max()) < 1e-4


def test_round_trip_of_one_dimensional_input_is_one_channel(rng):
    waveform = _noise(rng, (SAMPLES,))
    rebuilt = synthesize(analyze(waveform, SAMPLE_RATE, n_fft=512, hop_length=128))
    assert tuple(rebuilt.shape) == (1, SAMPLES)
    assert float((rebuilt[0] - torch.from_numpy(waveform)).abs().max()) < 1e-4


def test_silence_analyses_to_zero_with_unit_phase():
    spec = analyze(np.zeros((1, 2048), np.float32), SAMPLE_RATE, n_fft=512, hop_length=128)
    assert float(spec.log_magnitude.abs().max()) == 0.0
    assert bool((spec.phase == 1).all())
    assert float(synthesize(spec).abs().max()) == 0.0


@pytest.mark.parametrize("n_fft, hop_length", STFT_SETTINGS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_stft_matches_librosa(rng, device, dtype, n_fft, hop_length):
    waveform = rng.standard_normal(SAMPLES + 11)
    ours = stft(torch.from_numpy(waveform).to(device=device, dtype=dtype), n_fft=n_fft, hop_length=hop_length)
    reference = np.abs(
        librosa.stft(waveform, n_fft=n_fft, hop_length=hop_length, center=True, pad_mode="constant")
    )
    ours = ours.abs().cpu().double().numpy()
    assert ours.shape == reference.shape
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-4 * reference.max())


def test_stft_batch_equals_items(rng, device):
    waveform = torch.from_numpy(_noise(rng, (2, 3, SAMPLES))).to(device)
    batched = stft(waveform, n_fft=512, hop_length=128)
    assert tuple(batched.shape) == (2, 3, 257, 1 + SAMPLES // 128)
    for i in range(2):
        for j in range(3):
            torch.testing.assert_close(batched[i, j], stft(waveform[i, j], n_fft=512, hop_length=128))


def test_log_magnitude_is_log1p(rng, device):
    magnitude = torch.from_numpy(np.abs(rng.standard_normal((3, 129, 20))) * 100).to(device)
    torch.testing.assert_close(log_magnitude(magnitude), torch.log1p(magnitude))
    # A log1p magnitude inverts through Spectrogram.magnitude (expm1).
    spec = Spectrogram(log_magnitude(magnitude), torch.ones_like(magnitude, dtype=torch.complex128), 1, 256, 64, 100)
    torch.testing.assert_close(spec.magnitude, magnitude)


def test_log_magnitude_clamps_negative_values_to_zero(device):
    values = torch.tensor([-3.0, -1e-9, 0.0, 1.0], device=device)
    expected = torch.tensor([0.0, 0.0, 0.0, float(np.log1p(1.0))], device=device)
    torch.testing.assert_close(log_magnitude(values), expected)


@pytest.mark.parametrize("n_fft, hop_length", [(256, 64), (512, 128), (1024, 256)])
def test_spectral_convergence_exact_vs_perturbed(rng, device, n_fft, hop_length):
    spec = analyze(_noise(rng, (1, SAMPLES)), SAMPLE_RATE, n_fft=n_fft, hop_length=hop_length, device=device)
    waveform = synthesize(spec)
    exact = spectral_convergence(waveform, spec.magnitude, n_fft=n_fft, hop_length=hop_length)
    noise = torch.from_numpy(rng.uniform(0.8, 1.2, spec.magnitude.shape).astype(np.float32)).to(device)
    perturbed = spectral_convergence(waveform, spec.magnitude * noise, n_fft=n_fft, hop_length=hop_length)
    assert exact < -60
    assert -40 < perturbed < 0
    assert isinstance(exact, float) and isinstance(perturbed, float)


def test_spectral_convergence_of_silence_target_is_finite():
    silence = torch.zeros(2048)
    value = spectral_convergence(silence, torch.zeros(129, 1 + 2048 // 64), n_fft=256, hop_length=64)
    assert np.isfinite(value)


@pytest.mark.parametrize(
    "n_fft, hop_length, name",
    [
        (3, 1, "n_fft"),
        (0, 1, "n_fft"),
        (-512, 128, "n_fft"),
        (8, 2, "n_fft"),
        (2**17, 128, "n_fft"),
        (512.0, 128, "n_fft"),
        (True, 1, "n_fft"),
        (512, 0, "hop_length"),
        (512, -128, "hop_length"),
        (512, 257, "hop_length"),
        (512, 512, "hop_length"),
        (512, 128.0, "hop_length"),
        (512, True, "hop_length"),
    ],
)
def test_bad_stft_parameters(rng, n_fft, hop_length, name):
    with pytest.raises(ConfigError, match=name):
        validate_stft_params(n_fft, hop_length)
    with pytest.raises(ConfigError, match=name):
        analyze(_noise(rng, (1, SAMPLES)), SAMPLE_RATE, n_fft=n_fft, hop_length=hop_length)


@pytest.mark.parametrize("n_fft, hop_length", [(16, 8), (512, 256), (65536, 32768)])
def test_boundary_stft_parameters_are_valid(n_fft, hop_length):
    validate_stft_params(n_fft, hop_length)
    validate_stft_params(np.int64(n_fft), np.int32(hop_length))


@pytest.mark.parametrize("samples", [1, 100, 511])
def test_waveform_shorter_than_n_fft(samples):
    with pytest.raises(AudioFileError, match="too short"):
        analyze(np.zeros((1, samples), np.float32), SAMPLE_RATE, n_fft=512, hop_length=128)


def test_waveform_of_exactly_n_fft_samples_is_accepted():
    spec = analyze(np.zeros(512, np.float32), SAMPLE_RATE, n_fft=512, hop_length=128)
    assert spec.log_magnitude.shape[-1] == 1 + 512 // 128


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_waveform(rng, device, bad):
    waveform = _noise(rng, (2, SAMPLES))
    waveform[1, 1234] = bad
    with pytest.raises(AudioFileError, match="non-finite"):
        analyze(torch.from_numpy(waveform).to(device), SAMPLE_RATE, n_fft=512, hop_length=128)


@pytest.mark.parametrize("shape", [(1, 1, SAMPLES), (2, 2, 2, SAMPLES)])
def test_waveform_with_too_many_dimensions(shape):
    with pytest.raises(ConfigError, match="channels, samples"):
        analyze(np.zeros(shape, np.float32), SAMPLE_RATE, n_fft=512, hop_length=128)


def test_with_log_magnitude(rng):
    spec = analyze(_noise(rng, (2, SAMPLES)), SAMPLE_RATE, n_fft=512, hop_length=128)
    replacement = torch.zeros_like(spec.log_magnitude)
    changed = spec.with_log_magnitude(replacement)
    assert changed.log_magnitude is replacement
    assert changed.phase is spec.phase
    assert (changed.n_fft, changed.hop_length, changed.length) == (spec.n_fft, spec.hop_length, spec.length)
    assert float(spec.log_magnitude.max()) > 0  # the original is untouched (frozen dataclass)
    assert float(synthesize(changed).abs().max()) == 0.0


@pytest.mark.parametrize("shape", [(1, 257, 32), (2, 256, 32), (2, 257, 31), (257, 32)])
def test_with_log_magnitude_shape_mismatch(rng, shape):
    spec = analyze(_noise(rng, (2, SAMPLES)), SAMPLE_RATE, n_fft=512, hop_length=128)
    with pytest.raises(ConfigError, match="shape"):
        spec.with_log_magnitude(torch.zeros(shape))


@pytest.mark.parametrize(
    "sample_rate, n_fft, n_mels, fmin, fmax, norm",
    [(22050, 2048, 32, 40.0, None, None), (16000, 2048, 128, 0.0, 11025.0, "slaney"), (44100, 1024, 64, 20.0, 8000.0, "slaney")],
)
def test_mel_filters_match_librosa(sample_rate, n_fft, n_mels, fmin, fmax, norm):
    import warnings

    from audiostyle.dsp.mel import mel_filters

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # librosa warns about empty bands above Nyquist
        expected = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, norm=norm)
    ours = mel_filters(sample_rate, n_fft, n_mels, fmin=fmin, fmax=fmax, norm=norm)
    assert ours.shape == expected.shape == (n_mels, n_fft // 2 + 1)
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-7 * expected.max())


def test_resample_matches_librosa_soxr_hq():
    from audiostyle.dsp.resample import resample

    audio = np.random.default_rng(0).standard_normal((2, 16001)).astype(np.float32)
    expected = librosa.resample(audio, orig_sr=16000, target_sr=22050, res_type="soxr_hq")
    np.testing.assert_array_equal(resample(audio, 16000, 22050), expected)


def test_magnitude_of_is_expm1_of_the_clamped_input_with_its_gradient(rng):
    x = torch.from_numpy(rng.standard_normal((2, 9, 7))).requires_grad_(True)
    with torch.no_grad():
        x[0, 0, :3] = torch.tensor([0.0, -0.0, 1e-30], dtype=x.dtype)  # the clamp's edge
    magnitude = magnitude_of(x)
    reference = torch.expm1(x.detach().clamp_min(0))
    torch.testing.assert_close(magnitude, reference, rtol=0, atol=1e-15)
    weights = torch.from_numpy(rng.standard_normal(x.shape))
    (magnitude * weights).sum().backward()
    expected = torch.where(x.detach() >= 0, weights * torch.exp(x.detach()), torch.zeros_like(weights))
    torch.testing.assert_close(x.grad, expected)


@pytest.mark.parametrize("log_rows", [0, 2, 5])
def test_band_views_split_one_product_and_its_gradient(rng, log_rows):
    magnitude = torch.from_numpy(rng.random((2, 9, 7))).requires_grad_(True)
    bands = torch.from_numpy(rng.random((5, 9)))
    levels, linear = band_views(magnitude, bands, log_rows)
    product = bands @ magnitude.detach()
    assert levels.shape == (2, 7, log_rows) and linear.shape == (2, 5 - log_rows, 7)
    torch.testing.assert_close(levels, torch.log1p(product[:, :log_rows]).transpose(1, 2))
    torch.testing.assert_close(linear, product[:, log_rows:])
    assert torch.autograd.gradcheck(lambda m: band_views(m, bands, log_rows), (magnitude,))
    # An unused view contributes no gradient.
    for used in (0, 1):
        magnitude.grad = None
        band_views(magnitude, bands, log_rows)[used].square().sum().backward()
        reference = magnitude.detach().clone().requires_grad_(True)
        full = bands @ reference
        view = torch.log1p(full[:, :log_rows]) if used == 0 else full[:, log_rows:]
        view.square().sum().backward()
        torch.testing.assert_close(magnitude.grad, reference.grad)


def test_analyze_refuses_what_it_cannot_take_with_config_errors():
    import numpy as np

    from audiostyle import ConfigError
    from audiostyle.dsp.stft import analyze

    for waveform, fragment in (
        (np.full((1, 4096), 1e38, np.float32), "would overflow"),
        (np.array([object()] * 4096), "real array"),
        (np.ones(4096, complex), "real samples"),
    ):
        with pytest.raises(ConfigError, match=fragment):
            analyze(waveform, 22050)
