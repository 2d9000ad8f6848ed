"""Inputs made to break audiostyle, shared by the tests and the robustness benchmarks.

Bad waveforms (:func:`make_waveform`, ``SIGNAL_KINDS``), settings at and past their edges
(:func:`random_config_value`, ``TINY_SETTINGS``), hostile files (sample-rate and decoded-size
bombs, headers that lie: :func:`write_hostile_file`), damaged copies of real files
(:func:`mutate`), and judges of what the library and the command line did with them
(:func:`check_load_case`, :func:`check_cli_case`). ``benchmarks/robustness.py`` runs them by
the hundred; the property, fuzz and limit tests run a bounded sample.
"""

from __future__ import annotations

import math
import resource
import struct
import sys
from pathlib import Path

import numpy as np

#: Waveform contents: ordinary, degenerate (silence, DC, full-scale square) and invalid.
SIGNAL_KINDS = (
    "noise",
    "tone",
    "zeros",
    "dc",
    "square",
    "denormal",
    "huge",
    "nan",
    "posinf",
    "neginf",
    "one_nan",
)
#: Ways to damage an audio file's bytes.
MUTATIONS = (
    "none",
    "zero_length",
    "truncate_header",
    "truncate_half",
    "flip_header",
    "flip_data",
    "huge_length",
    "wrong_extension",
    "garbage",
)
#: Rates the tests draw from (the issue's 1 kHz to 192 kHz).
RATES = (1000, 4000, 8000, 11025, 16000, 22050, 32000, 44100, 48000, 96000, 192000)

#: A run cheap enough for hundreds of cases on a laptop core.
TINY_SETTINGS = {
    "sample_rate": 16000,
    "n_fft": 512,
    "hop_length": 128,
    "filters": 48,
    "kernel_widths": (3, 7),
    "iterations": 3,
    "griffin_lim_iters": 4,
    "device": "cpu",
}

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"

def make_waveform(kind: str, *, channels: int, samples: int, seed: int = 0) -> np.ndarray:
    """A ``(channels, samples)`` float32 waveform of the given ``kind`` (see ``SIGNAL_KINDS``)."""
    rng = np.random.default_rng(seed)
    shape = (channels, samples)
    if kind == "noise":
        return (0.3 * rng.standard_normal(shape)).astype(np.float32)
    if kind == "tone":
        t = np.arange(samples) / max(samples, 1)
        return np.broadcast_to(0.5 * np.sin(2 * np.pi * 40 * t), shape).astype(np.float32)
    if kind == "zeros":
        return np.zeros(shape, np.float32)
    if kind == "dc":
        return np.full(shape, rng.choice([-1.0, 0.25, 1.0]), np.float32)
    if kind == "square":
        period = int(rng.integers(2, 200))
        return np.where((np.arange(samples) // period) % 2 == 0, 1.0, -1.0).astype(np.float32) * np.ones(shape, np.float32)
    if kind == "denormal":
        return (rng.standard_normal(shape) * 1e-40).astype(np.float32)
    if kind == "huge":
        return (rng.standard_normal(shape) * 1e30).astype(np.float32)
    if kind in ("nan", "posinf", "neginf"):
        value = {"nan": np.nan, "posinf": np.inf, "neginf": -np.inf}[kind]
        return np.full(shape, value, np.float32)
    if kind == "one_nan":
        audio = (0.3 * rng.standard_normal(shape)).astype(np.float32)
        if audio.size:
            audio.flat[int(rng.integers(audio.size))] = np.nan
        return audio
    raise ValueError(f"unknown signal kind {kind!r}")


def _huge_declared_length(data: bytearray, suffix: str) -> bytearray:
    if data[:4] == b"RIFF":
        data[4:8] = (0xFFFFFFF0).to_bytes(4, "little")
        index = data.find(b"data", 12)
        if index >= 0:
            data[index + 4 : index + 8] = (0x7FFFFFF0).to_bytes(4, "little")
    elif data[:4] == b"fLaC" and len(data) >= 26:
        # STREAMINFO's 36-bit total-samples field: all ones.
        data[21] |= 0x0F
        data[22:26] = b"\xff\xff\xff\xff"
    elif len(data) >= 8:
        data[4:8] = b"\xff\xff\xff\xff"
    return data


# ------------------------------------------------------------------------ hostile files

#: Files made to make a reader spend memory or time: each costs a few kB to write (the
#: honest size bomb is a sparse file) and claims far more once decoded.
HOSTILE_FILES = (
    "rate_bomb_flac",  # the file: 8 channels at 655 350 Hz claiming 1200 s (23.4 GiB)
    "rate_bomb_wav",  # a WAV header at 655 350 Hz
    "size_bomb_flac",  # 8 channels whose STREAMINFO claims 2**36 - 1 frames
    "size_bomb_vorbis64",  # 64-channel Vorbis whose last page claims 1200 s at 192 kHz (55 GiB)
    "size_bomb_wav_sparse",  # an honest 8-channel 384 kHz 8-bit WAV of 200 s: 2.3 GiB decoded
    "overstated_length_ogg",  # the last page claims 20 times the frames there are
    "understated_length_flac",  # STREAMINFO claims 1000 of its 16000 frames
    "many_channels_vorbis",  # 64 channels (the most allowed), 0.05 s, honest
)
#: The hostile files a reader must refuse (the others may decode, to finite samples).
REFUSED_HOSTILE_FILES = frozenset(
    {"rate_bomb_flac", "rate_bomb_wav", "size_bomb_flac", "size_bomb_vorbis64", "size_bomb_wav_sparse"}
)


def flac_with_total_samples(data: bytes, total: int) -> bytes:
    """A FLAC file's bytes with STREAMINFO's 36-bit total-samples field set to ``total``."""
    buffer = bytearray(data)
    if buffer[:4] != b"fLaC" or len(buffer) < 26:
        raise ValueError("not a FLAC file with a STREAMINFO block first")
    buffer[21] = (buffer[21] & 0xF0) | ((total >> 32) & 0x0F)
    buffer[22:26] = (total & 0xFFFFFFFF).to_bytes(4, "big")
    return bytes(buffer)


def _ogg_crc(page: bytes) -> int:
    # Ogg's CRC-32: polynomial 0x04C11DB7, not reflected, initial value 0.
    crc = 0
    for byte in page:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def ogg_with_last_granule(data: bytes, granule: int) -> bytes:
    """An Ogg file's bytes whose last page claims ``granule`` (the stream's length), CRC fixed.

    Readers take the length from the last page's granule position minus the first audio
    page's, so the file needs at least two audio pages for the lie to show.
    """
    buffer = bytearray(data)
    start = buffer.rfind(b"OggS")
    if start < 0:
        raise ValueError("not an Ogg file")
    segments = buffer[start + 26]
    length = 27 + segments + sum(buffer[start + 27 : start + 27 + segments])
    struct.pack_into("<q", buffer, start + 6, granule)
    struct.pack_into("<I", buffer, start + 22, 0)
    struct.pack_into("<I", buffer, start + 22, _ogg_crc(bytes(buffer[start : start + length])))
    return bytes(buffer)


def sparse_wav(path: Path, *, rate: int, channels: int, frames: int, bits: int = 8) -> Path:
    """An honest PCM WAV of silence, ``frames`` long, written as a sparse file (no data blocks)."""
    block_align = channels * bits // 8
    data_bytes = frames * block_align
    if data_bytes + 36 >= 2**32:
        raise ValueError("a plain WAV holds less than 4 GiB")
    header = (
        b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
        + b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * block_align, block_align, bits)
        + b"data" + struct.pack("<I", data_bytes)
    )
    with open(path, "wb") as handle:
        handle.write(header)
        handle.truncate(len(header) + data_bytes)
    return path


def write_hostile_file(kind: str, folder: Path) -> Path:
    """Write the hostile file ``kind`` (see ``HOSTILE_FILES``) into ``folder``; returns its path."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    suffixes = {"flac": ".flac", "wav": ".wav", "sparse": ".wav", "ogg": ".ogg", "vorbis": ".ogg", "vorbis64": ".ogg"}
    path = folder / (kind + suffixes.get(kind.rsplit("_", 1)[-1], ""))
    if kind == "rate_bomb_flac":
        sf.write(path, np.zeros((4096, 8), np.float32), 655350, subtype="PCM_16")
        path.write_bytes(flac_with_total_samples(path.read_bytes(), 1200 * 655350))
    elif kind == "rate_bomb_wav":
        sf.write(path, np.zeros((4800, 2), np.float32), 48000, subtype="PCM_16")
        header = bytearray(path.read_bytes())
        struct.pack_into("<II", header, 24, 655350, 655350 * 4)  # rate, bytes per second
        path.write_bytes(bytes(header))
    elif kind == "size_bomb_flac":
        sf.write(path, np.zeros((4800, 8), np.float32), 48000, subtype="PCM_16")
        path.write_bytes(flac_with_total_samples(path.read_bytes(), 2**36 - 1))
    elif kind == "size_bomb_vorbis64":
        noise = (0.1 * rng.standard_normal((9600, 64))).astype(np.float32)  # several pages
        sf.write(path, noise, 192000)
        path.write_bytes(ogg_with_last_granule(path.read_bytes(), 1200 * 192000))
    elif kind == "size_bomb_wav_sparse":
        sparse_wav(path, rate=384000, channels=8, frames=200 * 384000)
    elif kind == "overstated_length_ogg":
        sf.write(path, (0.3 * rng.standard_normal((16000, 2))).astype(np.float32), 16000)
        path.write_bytes(ogg_with_last_granule(path.read_bytes(), 20 * 16000))
    elif kind == "understated_length_flac":
        sf.write(path, (0.3 * rng.standard_normal((16000, 2))).astype(np.float32), 16000, subtype="PCM_16")
        path.write_bytes(flac_with_total_samples(path.read_bytes(), 1000))
    elif kind == "many_channels_vorbis":
        sf.write(path, (0.1 * rng.standard_normal((800, 64))).astype(np.float32), 16000)
    else:
        raise ValueError(f"unknown hostile file {kind!r}")
    return path


def mutate(data: bytes, kind: str, *, suffix: str, seed: int = 0) -> tuple[bytes, str]:
    """Damage a file's bytes; returns ``(new bytes, new suffix)`` (see ``MUTATIONS``)."""
    rng = np.random.default_rng(seed)
    buffer = bytearray(data)
    if kind == "none":
        return bytes(buffer), suffix
    if kind == "zero_length":
        return b"", suffix
    if kind == "truncate_header":
        return bytes(buffer[: int(rng.integers(1, 44))]), suffix
    if kind == "truncate_half":
        return bytes(buffer[: len(buffer) // 2]), suffix
    if kind in ("flip_header", "flip_data"):
        if not buffer:
            return b"", suffix
        low, high = (0, min(64, len(buffer))) if kind == "flip_header" else (min(64, len(buffer) - 1), len(buffer))
        for _ in range(int(rng.integers(1, 6))):
            index = int(rng.integers(low, max(high, low + 1)))
            buffer[index] ^= 1 << int(rng.integers(8))
        return bytes(buffer), suffix
    if kind == "huge_length":
        return bytes(_huge_declared_length(buffer, suffix)), suffix
    if kind == "wrong_extension":
        others = {".wav": ".flac", ".flac": ".ogg", ".ogg": ".wav"}
        return bytes(buffer), others.get(suffix.lower(), ".wav")
    if kind == "garbage":
        return rng.integers(0, 256, max(len(buffer) // 8, 16), dtype=np.uint8).tobytes(), suffix
    raise ValueError(f"unknown mutation {kind!r}")


def write_reference_files(folder: Path) -> list[Path]:
    """A short stereo WAV, a mono FLAC and a mono OGG to mutate when the corpus is absent."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(16000) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    paths = [folder / "ref_stereo.wav", folder / "ref_mono.flac", folder / "ref_mono.ogg"]
    sf.write(paths[0], np.stack([tone, -tone], axis=1), 16000, subtype="PCM_16")
    sf.write(paths[1], tone, 16000, subtype="PCM_16")
    sf.write(paths[2], tone, 16000)
    return paths


def corpus_files(limit: int | None = None) -> list[Path]:
    """Audio files of ``../shared/corpus`` (none when it is not there), smallest first."""
    if not CORPUS.is_dir():
        return []
    files = sorted(
        (p for p in CORPUS.iterdir() if p.suffix.lower() in (".wav", ".flac", ".ogg")),
        key=lambda p: (p.stat().st_size, p.name),
    )
    return files[:limit] if limit is not None else files


def leftovers(folder: Path) -> list[Path]:
    """Temporary files atomic_write would leave if it failed to clean up."""
    return sorted(p for p in folder.iterdir() if ".part" in p.name)


def random_config_value(name: str, rng: np.random.Generator):
    """A value for StyleConfig field ``name``: valid, at the edges, or well outside."""
    wild = [None, True, -1, 0, 1, 10**30, -1e-9, math.nan, math.inf, -math.inf, "x", "", [3], (3,), 2.5]
    choices = {
        "sample_rate": [7999, 8000, 16000, 192000, 192001, 16000.0],
        "n_fft": [15, 16, 256, 512, 65537, 511],
        "hop_length": [0, 1, 64, 128, 256, 257],
        "network": ["random", "pretrained", "missing.safetensors", "weights.pt"],
        "filters": [1, 2, 48, 16384, 16385],
        "kernel_widths": [(1,), (3, 7), (2,), (255,), (257,), (), tuple(range(1, 40, 2)), [3, 7]],
        # TINY_SETTINGS has two widths: two dilations fit, one or three do not.
        "kernel_dilations": [(), (1, 1), (1, 3), (2, 5), (3,), (1, 2, 3), (0, 1), (-1, 2), [1, 3], (1, 10**6)],
        "mel_bands": [0, 1, 40, 256, 257, 10**6, -1],
        "envelope_weight": [0.0, 15.0, 1e9, -1.0],
        "refine_steps": [0, 1, 5, 10**6, -1],
        "history_size": [1, 5, 100, 101, 0],
        "seed": [0, 2**63 - 1, 2**63, -5],
        "content_weight": [0.0, 1.0, 1e9, 1e10, -1.0],
        "style_weight": [0.0, 100.0, 1e9, 2e9],
        "iterations": [1, 3, 100001, 0],
        "solver": ["lbfgs", "adam", "sgd", "LBFGS"],
        "learning_rate": [1e-12, 1.0, 1000.0, 1000.5, 0.0],
        "tolerance": [0.0, 1e-4, 0.999, 1.0],
        "init": ["content", "noise", "zeros"],
        "griffin_lim_iters": [0, 4, 10000, 10001],
        "momentum": [0.0, 0.99, 1.49, 1.5],
        "phase_init": ["content", "random", "zero"],
        "loudness": ["rms", "none", "peak"],
        "max_duration": [1e-9, 0.5, 1200.0, 1e300],
        "device": ["cpu", "auto", "cuda:99", "tpu", "mps", 3],
    }
    # Mostly the field's own edge values (about half valid), sometimes anything at all.
    options = choices.get(name) if name in choices and rng.random() < 0.7 else wild
    return options[int(rng.integers(len(options)))]


def check_cli_case(path: Path, folder: Path) -> tuple[str, str]:
    """Run the CLI in-process on ``path`` (as content) and judge it: ``(outcome, detail)``.

    ``outcome`` is ``"ok"`` (exit 0, finite output), ``"clean"`` (exit 3, one line on
    stderr, no traceback, no output), ``"crash"``, ``"nan"`` or ``"partial"``. Only the
    content is damaged, so any other exit code is a crash.
    """
    import soundfile as sf
    from audiostyle_cli.app import app
    from typer.testing import CliRunner

    style = folder / "style.wav"
    if not style.exists():
        sf.write(style, make_waveform("noise", channels=1, samples=16000, seed=3).T, 16000)
    output = folder / "out.wav"
    output.unlink(missing_ok=True)
    args = [str(path), str(style), "-o", str(output), "--preset", "fast", "-q"]
    settings = {"-n": 2, "--filters": 32, "--sample-rate": 16000, "--n-fft": 512, "--hop-length": 128, "--device": "cpu"}
    for flag, value in settings.items():
        args += [flag, str(value)]
    result = CliRunner().invoke(app, args, prog_name="audiostyle")
    if leftovers(folder):
        for leftover in leftovers(folder):
            leftover.unlink()
        return "partial", "a .part file was left"
    if result.exit_code == 0:
        if not output.exists():
            return "crash", "exit 0 without an output file"
        audio, _ = sf.read(output, dtype="float32")
        output.unlink()
        return ("ok", "") if np.isfinite(audio).all() else ("nan", "NaN in the output")
    lines = result.stderr.strip().splitlines()
    if result.exit_code == 3 and len(lines) == 1 and "Traceback" not in result.stderr and not output.exists():
        return "clean", lines[0]
    return "crash", f"exit {result.exit_code}: {result.stderr.strip()[:200]}"


def check_load_case(path: Path) -> tuple[str, str]:
    """Call load_audio on ``path`` and judge it like :func:`check_cli_case`."""
    from audiostyle import AudioStyleError, load_audio

    try:
        audio, rate = load_audio(path)
    except AudioStyleError as error:
        return "clean", str(error)
    except Exception as error:  # noqa: BLE001
        return "crash", f"{type(error).__name__}: {error}"
    if audio.dtype != np.float32 or audio.ndim != 2 or audio.shape[1] == 0 or rate <= 0:
        return "crash", f"shape {audio.shape} dtype {audio.dtype} rate {rate}"
    return ("ok", "") if np.isfinite(audio).all() else ("nan", "non-finite samples returned")


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB since it started (or exec'd).

    Linux: ``VmHWM``, the high-water mark of this process's own address space.
    ``ru_maxrss`` is not used there because a child inherits its parent's RSS at the fork
    into it: a benchmark or test run from a 1 GB pytest process would read 1 GB.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
