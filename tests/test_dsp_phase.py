"""Griffin-Lim: shapes, batch consistency, convergence, agreement with librosa, errors."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from audiostyle.dsp.phase import griffin_lim
from audiostyle.dsp.stft import spectral_convergence, stft
from audiostyle.errors import ConfigError

pytestmark = pytest.mark.usefixtures("single_thread")

SAMPLE_RATE = 16000
N_FFT = 512
HOP = 128


def _chirps_and_bursts(rng: np.random.Generator, seconds: float = 1.0) -> np.ndarray:
    """A real-ish test signal: two crossing linear chirps, a held tone and noise bursts."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    signal = 0.4 * np.sin(2 * np.pi * (200 * t + 1800 * t**2 / seconds))
    signal += 0.3 * np.sin(2 * np.pi * (3000 * t - 1200 * t**2 / seconds))
    signal += 0.2 * np.sin(2 * np.pi * 440 * t) * (t < seconds / 2)
    bursts = rng.standard_normal(t.size) * 0.3
    envelope = np.zeros_like(t)
    for start in (0.1, 0.45, 0.8):
        envelope += np.exp(-(((t - start * seconds) / 0.02) ** 2))
    return (signal + bursts * envelope).astype(np.float32)


@pytest.fixture
def signal(rng) -> np.ndarray:
    return _chirps_and_bursts(rng)


def _magnitude(waveform, device="cpu") -> torch.Tensor:
    return stft(torch.as_tensor(waveform, device=device), n_fft=N_FFT, hop_length=HOP).abs()


def _random_phase(shape, seed: int = 1) -> torch.Tensor:
    angles = torch.rand(shape, generator=torch.Generator().manual_seed(seed))
    return torch.polar(torch.ones_like(angles), 2 * torch.pi * angles)


def _sc(waveform, magnitude) -> float:
    return spectral_convergence(waveform, magnitude, n_fft=N_FFT, hop_length=HOP)


@pytest.mark.parametrize("n_fft, hop_length", [(256, 64), (512, 128), (1024, 256)])
# Lengths that keep the frame count (1 + length // hop) of the 4000-sample analysis.
@pytest.mark.parametrize("length_change", [0, -20, 20])
def test_output_shape_and_length(rng, device, n_fft, hop_length, length_change):
    samples = 4000
    magnitude = stft(torch.from_numpy(rng.standard_normal(samples).astype(np.float32)), n_fft=n_fft, hop_length=hop_length).abs()
    length = samples + length_change
    out = griffin_lim(magnitude.to(device), n_fft=n_fft, hop_length=hop_length, length=length, n_iter=2)
    assert tuple(out.shape) == (length,)
    assert out.device.type == device.type
    assert not out.is_complex()
    assert bool(torch.isfinite(out).all())


@pytest.mark.filterwarnings("ignore:The length of signal is shorter")
@pytest.mark.parametrize("n_iter", [0, 2])
def test_length_inconsistent_with_frames(rng, n_iter):
    magnitude = stft(torch.from_numpy(rng.standard_normal(4000).astype(np.float32)), n_fft=N_FFT, hop_length=HOP).abs()
    with pytest.raises(ConfigError, match="length"):
        griffin_lim(magnitude, n_fft=N_FFT, hop_length=HOP, length=4000 + 2 * HOP, n_iter=n_iter)


@pytest.mark.parametrize("lead", [(2,), (3,), (2, 2)])
def test_batch_shape(rng, lead):
    samples = 3000
    magnitude = _magnitude(rng.standard_normal((*lead, samples)).astype(np.float32))
    out = griffin_lim(magnitude, n_fft=N_FFT, hop_length=HOP, length=samples, n_iter=1)
    assert tuple(out.shape) == (*lead, samples)


@pytest.mark.parametrize("momentum", [0.0, 0.99])
def test_batch_equals_items(rng, device, momentum):
    waveform = np.stack([_chirps_and_bursts(rng, 0.5), rng.standard_normal(8000).astype(np.float32) * 0.1])
    magnitude = _magnitude(waveform, device)
    init = _random_phase(magnitude.shape).to(device)
    kwargs = dict(n_fft=N_FFT, hop_length=HOP, length=waveform.shape[-1], n_iter=8, momentum=momentum)
    batched = griffin_lim(magnitude, init_phase=init, **kwargs)
    for item in range(2):
        alone = griffin_lim(magnitude[item], init_phase=init[item], **kwargs)
        torch.testing.assert_close(batched[item], alone, atol=1e-5, rtol=1e-4)


def test_momentum_converges_faster(signal, device):
    magnitude = _magnitude(signal, device)
    kwargs = dict(n_fft=N_FFT, hop_length=HOP, length=signal.size, n_iter=32, seed=3)
    fast = _sc(griffin_lim(magnitude, momentum=0.99, **kwargs), magnitude)
    classic = _sc(griffin_lim(magnitude, momentum=0.0, **kwargs), magnitude)
    assert fast < classic - 1.0, (fast, classic)


def test_more_iterations_do_not_hurt(signal):
    magnitude = _magnitude(signal)
    kwargs = dict(n_fft=N_FFT, hop_length=HOP, length=signal.size, momentum=0.0, seed=3)
    few = _sc(griffin_lim(magnitude, n_iter=4, **kwargs), magnitude)
    many = _sc(griffin_lim(magnitude, n_iter=32, **kwargs), magnitude)
    assert many < few


@pytest.mark.parametrize("momentum", [0.0, 0.99])
@pytest.mark.parametrize("n_iter", [0, 1, 16])
def test_true_phase_reconstructs(signal, device, momentum, n_iter):
    spec = stft(torch.from_numpy(signal).to(device), n_fft=N_FFT, hop_length=HOP)
    magnitude = spec.abs()
    true_phase = spec / magnitude.clamp_min(1e-30)
    out = griffin_lim(
        magnitude, n_fft=N_FFT, hop_length=HOP, length=signal.size, n_iter=n_iter,
        momentum=momentum, init_phase=true_phase,
    )
    assert _sc(out, magnitude) < -40
    assert float((out.cpu() - torch.from_numpy(signal)).abs().max()) < 1e-3


@pytest.mark.parametrize("momentum", [0.0, 0.99])
def test_comparable_to_librosa(signal, momentum):
    magnitude = _magnitude(signal)
    ours = griffin_lim(magnitude, n_fft=N_FFT, hop_length=HOP, length=signal.size, n_iter=32, momentum=momentum)
    reference = librosa.griffinlim(
        magnitude.numpy(), n_iter=32, hop_length=HOP, n_fft=N_FFT, window="hann", center=True,
        length=signal.size, pad_mode="constant", momentum=momentum, init="random", random_state=0,
    )
    ours_sc = _sc(ours, magnitude)
    reference_sc = _sc(torch.from_numpy(reference), magnitude)
    # Different random starting phases (seed-to-seed spread is about 1 dB here): allow a
    # small margin, and demand a real reconstruction.
    assert ours_sc < reference_sc + 1.5, (ours_sc, reference_sc)
    assert ours_sc < -12


def test_same_as_librosa_from_the_same_start(signal):
    """Same starting phase and momentum: the iterations are the same algorithm step for step."""
    magnitude = _magnitude(signal).double()
    init = _random_phase(magnitude.shape).to(torch.complex128)
    ours = griffin_lim(
        magnitude, n_fft=N_FFT, hop_length=HOP, length=signal.size, n_iter=8, momentum=0.99, init_phase=init
    )
    # librosa.griffinlim takes no initial phase: run its loop body (librosa 0.11) from the same start.
    angles = init.numpy().copy()
    mag = magnitude.numpy()
    previous = 0.0
    for _ in range(8):
        inverse = librosa.istft(mag * angles, hop_length=HOP, n_fft=N_FFT, length=signal.size)
        rebuilt = librosa.stft(inverse, n_fft=N_FFT, hop_length=HOP, pad_mode="constant")
        angles = rebuilt - (0.99 / 1.99) * previous
        angles = angles / (np.abs(angles) + 1e-16)
        previous = rebuilt
    reference = librosa.istft(mag * angles, hop_length=HOP, n_fft=N_FFT, length=signal.size)
    np.testing.assert_allclose(ours.numpy(), reference, atol=1e-6)


def test_defaults_as_librosa(signal):
    """griffin_lim(magnitude) alone: n_fft from the bins, hop n_fft // 4, length from the frames."""
    assert HOP == N_FFT // 4
    magnitude = _magnitude(signal).double()
    init = _random_phase(magnitude.shape).to(torch.complex128)
    ours = griffin_lim(magnitude, n_iter=4, init_phase=init)
    frames = magnitude.shape[-1]
    assert ours.shape == (HOP * (frames - 1),)
    explicit = griffin_lim(magnitude, n_fft=N_FFT, hop_length=HOP, length=HOP * (frames - 1), n_iter=4, init_phase=init)
    torch.testing.assert_close(ours, explicit, rtol=0, atol=0)
    # librosa's loop body with its own defaults (no n_fft, hop_length or length given).
    angles, mag, previous = init.numpy().copy(), magnitude.numpy(), 0.0
    for _ in range(4):
        rebuilt = librosa.stft(librosa.istft(mag * angles), n_fft=N_FFT, pad_mode="constant")
        angles = rebuilt - (0.99 / 1.99) * previous
        angles, previous = angles / (np.abs(angles) + 1e-16), rebuilt
    np.testing.assert_allclose(ours.numpy(), librosa.istft(mag * angles), atol=1e-6)
    assert griffin_lim(magnitude[..., :5], n_iter=1).shape == (4 * HOP,)


def test_defaults_need_a_two_dimensional_magnitude():
    with pytest.raises(ConfigError, match="expected"):
        griffin_lim(torch.ones(257))


def test_n_iter_zero_is_inverse_of_initial_phase(signal):
    magnitude = _magnitude(signal)
    init = _random_phase(magnitude.shape)
    calls = []
    out = griffin_lim(
        magnitude, n_fft=N_FFT, hop_length=HOP, length=signal.size, n_iter=0, init_phase=init,
        callback=lambda i, n: calls.append((i, n)),
    )
    expected = torch.istft(
        magnitude * init, n_fft=N_FFT, hop_length=HOP, window=torch.hann_window(N_FFT), length=signal.size
    )
    torch.testing.assert_close(out, expected)
    assert calls == []


def test_callback_reports_each_iteration(signal):
    magnitude = _magnitude(signal)
    calls = []
    griffin_lim(magnitude, n_fft=N_FFT, hop_length=HOP, length=signal.size, n_iter=5,
                callback=lambda i, n: calls.append((i, n)))
    assert calls == [(i, 5) for i in range(1, 6)]


def test_seed_reproducibility(signal, device):
    magnitude = _magnitude(signal, device)
    kwargs = dict(n_fft=N_FFT, hop_length=HOP, length=signal.size, n_iter=3)
    first = griffin_lim(magnitude, seed=7, **kwargs)
    again = griffin_lim(magnitude, seed=7, **kwargs)
    other = griffin_lim(magnitude, seed=8, **kwargs)
    assert torch.equal(first, again)
    assert float((first - other).abs().max()) > 1e-3


def test_does_not_modify_inputs(signal):
    magnitude = _magnitude(signal)
    init = _random_phase(magnitude.shape)
    magnitude_before, init_before = magnitude.clone(), init.clone()
    griffin_lim(magnitude, n_fft=N_FFT, hop_length=HOP, length=signal.size, n_iter=3, init_phase=init)
    assert torch.equal(magnitude, magnitude_before)
    assert torch.equal(init, init_before)


@pytest.mark.parametrize("n_iter", [-1, 1.5, True, "8", None])
def test_bad_n_iter(signal, n_iter):
    with pytest.raises(ConfigError, match="n_iter"):
        griffin_lim(_magnitude(signal), n_fft=N_FFT, hop_length=HOP, length=signal.size, n_iter=n_iter)


@pytest.mark.parametrize("momentum", [-0.1, 1.5, 2.0, float("nan"), float("inf")])
def test_bad_momentum(signal, momentum):
    with pytest.raises(ConfigError, match="momentum"):
        griffin_lim(_magnitude(signal), n_fft=N_FFT, hop_length=HOP, length=signal.size, momentum=momentum)


@pytest.mark.parametrize("trim", [(slice(None), slice(0, -1)), (slice(0, -1), slice(None))], ids=["frames", "bins"])
def test_bad_init_phase_shape(signal, trim):
    magnitude = _magnitude(signal)
    init = _random_phase(magnitude.shape)[trim]
    with pytest.raises(ConfigError, match="init_phase"):
        griffin_lim(magnitude, n_fft=N_FFT, hop_length=HOP, length=signal.size, init_phase=init)


def test_init_phase_batch_shape_mismatch(signal):
    magnitude = _magnitude(np.stack([signal, signal]))
    with pytest.raises(ConfigError, match="init_phase"):
        griffin_lim(magnitude, n_fft=N_FFT, hop_length=HOP, length=signal.size,
                    init_phase=_random_phase(magnitude.shape[1:]))


def test_magnitude_with_wrong_number_of_bins(signal):
    magnitude = _magnitude(signal)
    with pytest.raises(ConfigError, match="frequency bins"):
        griffin_lim(magnitude, n_fft=1024, hop_length=HOP, length=signal.size)


@pytest.mark.parametrize("n_fft, hop_length, name", [(3, 1, "n_fft"), (512, 0, "hop_length"), (512, 300, "hop_length")])
def test_bad_stft_settings(signal, n_fft, hop_length, name):
    with pytest.raises(ConfigError, match=name):
        griffin_lim(_magnitude(signal), n_fft=n_fft, hop_length=hop_length, length=signal.size)


def test_griffin_lim_takes_arrays_and_integers_and_refuses_what_is_no_magnitude():
    import numpy as np

    from audiostyle import ConfigError

    assert griffin_lim(np.ones((65, 9), np.float32), n_iter=2).shape == (256,)  # hop 32, 8 hops
    assert griffin_lim(torch.ones((65, 9), dtype=torch.int64), n_iter=2).shape == (256,)
    for magnitude, fragment in (
        (torch.full((65, 9), float("nan")), "finite and non-negative"),
        (-torch.ones((65, 9)), "finite and non-negative"),
        (torch.ones((65, 9), dtype=torch.complex64), "real and non-negative"),
    ):
        with pytest.raises(ConfigError, match=fragment):
            griffin_lim(magnitude, n_iter=2)
    with pytest.raises(ConfigError, match="seed"):
        griffin_lim(torch.ones((65, 9)), seed=2**70)
    with pytest.raises(ConfigError, match="callback"):
        griffin_lim(torch.ones((65, 9)), callback=5)
