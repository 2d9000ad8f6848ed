"""Bounded decoding: what a header promises is checked before decoding, and decoding never
grows past it; a failed write keeps the operating system's reason.

The bomb files are a few kB: small real files whose headers are patched to claim a huge
decode (the generators live in ``benchmarks/robustness.py``).
"""

from __future__ import annotations

import errno
import json
import os
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import audiostyle.io.read as read_module
import audiostyle.io.write as write_module
from audiostyle.dsp.resample import to_channels
from audiostyle.errors import AudioFileError, ConfigError
from audiostyle.io import (
    MAX_DECODED_BYTES,
    MAX_SAMPLE_RATE,
    WRITABLE_EXTENSIONS,
    audio_info,
    load_audio,
    probe_audio,
    save_audio,
)
from tests.hostile_inputs import (
    flac_with_total_samples,
    leftovers,
    ogg_with_last_granule,
    write_hostile_file,
)

REPO = Path(__file__).resolve().parents[1]
BLOCK_SAMPLES = read_module._BLOCK_SAMPLES


def noise(frames: int, channels: int, seed: int = 0) -> np.ndarray:
    """Quiet noise as soundfile wants it, ``(frames, channels)`` float32."""
    return (0.3 * np.random.default_rng(seed).standard_normal((frames, channels))).astype(np.float32)


def flac_claiming(path: Path, *, frames: int, channels: int, rate: int, claimed: int) -> Path:
    """A real FLAC of ``frames`` frames whose header claims ``claimed`` frames."""
    sf.write(path, noise(frames, channels), rate, subtype="PCM_16")
    path.write_bytes(flac_with_total_samples(path.read_bytes(), claimed))
    return path


@pytest.fixture
def reads(monkeypatch) -> list[int]:
    """The frame count of every ``SoundFile.read`` call made while the test runs."""
    calls: list[int] = []
    real_read = sf.SoundFile.read

    def counting_read(self, frames=-1, *args, **kwargs):
        calls.append(frames if frames >= 0 else self.frames)
        return real_read(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", counting_read)
    return calls


@pytest.fixture
def plenty_of_memory(monkeypatch) -> None:
    """Free memory as a roomy machine reports it, so the fixed cap is the limit that binds."""
    monkeypatch.setattr(read_module, "available_cpu_memory", lambda: 64 * 2**30)


# --- limits checked from the header, before decoding --------------------------------------


def test_sample_rate_over_the_limit_is_refused(tmp_path: Path) -> None:
    # An honest 0.01 s FLAC at 655 350 Hz, the rate of the issue's bomb.
    path = tmp_path / "fast.flac"
    sf.write(path, noise(6553, 8), 655350, subtype="PCM_16")
    expected = rf"fast\.flac: sample rate 655350 Hz is over the {MAX_SAMPLE_RATE} Hz limit"
    with pytest.raises(AudioFileError, match=expected):
        load_audio(path)
    with pytest.raises(AudioFileError, match=expected):
        probe_audio(path)
    assert audio_info(path).sample_rate == 655350  # the header alone is still readable


def test_the_issues_flac_bomb_is_refused_before_any_allocation(tmp_path: Path, reads: list[int]) -> None:
    path = write_hostile_file("rate_bomb_flac", tmp_path)
    assert audio_info(path).frames == 1200 * 655350  # 23.4 GiB of 8 channels once decoded
    with pytest.raises(AudioFileError, match="655350 Hz is over the 384000 Hz limit"):
        load_audio(path, max_duration=1200)
    assert reads == []


@pytest.mark.parametrize("kind", ["size_bomb_flac", "size_bomb_vorbis64", "size_bomb_wav_sparse"])
def test_decoded_size_over_the_cap_is_refused(kind: str, tmp_path: Path, reads: list[int], plenty_of_memory) -> None:
    path = write_hostile_file(kind, tmp_path)
    info = audio_info(path)
    assert info.frames * info.channels * 4 > MAX_DECODED_BYTES
    for load in (load_audio, probe_audio):
        with pytest.raises(AudioFileError) as caught:
            load(path)
        message = str(caught.value)
        assert message.startswith(f"{path}: would decode to ") and "\n" not in message
        assert f"({info.channels} ch × " in message and message.endswith("over the 2.0 GiB limit")
    assert reads == []


def test_vorbis_64_channels_message(tmp_path: Path, plenty_of_memory) -> None:
    path = write_hostile_file("size_bomb_vorbis64", tmp_path)
    with pytest.raises(AudioFileError, match=r"would decode to 54\.9 GiB \(64 ch × 230 M frames\), over the 2\.0 GiB limit"):
        load_audio(path)


def test_mono_counts_one_channel_and_an_overstated_length_is_trimmed(tmp_path: Path, plenty_of_memory) -> None:
    # 8 channels x 10 M frames = 305 MiB, over a 128 MiB cap; mono needs 38 MiB of it.
    path = flac_claiming(tmp_path / "eight.flac", frames=4800, channels=8, rate=48000, claimed=10_000_000)
    with pytest.raises(AudioFileError, match=r"\(8 ch × 10 M frames\), over the 0\.1 GiB limit"):
        load_audio(path, max_bytes=2**27)
    with pytest.raises(AudioFileError, match="over the 0.1 GiB limit"):
        probe_audio(path, max_bytes=2**27)
    mono, rate = load_audio(path, mono=True, max_bytes=2**27)
    assert rate == 48000
    assert mono.shape == (1, 4800) and mono.flags.c_contiguous
    decoded = flac_claiming(tmp_path / "honest.flac", frames=4800, channels=8, rate=48000, claimed=4800)
    np.testing.assert_array_equal(mono, to_channels(sf.read(decoded, dtype="float32")[0].T, 1))


def test_resampled_copy_counts_toward_the_cap(tmp_path: Path, plenty_of_memory) -> None:
    # 2 ch x 16 M frames at 8 kHz: 122 MiB decoded and 244 MiB more resampled to 16 kHz,
    # over a 256 MiB cap; in mono, half of that.
    path = flac_claiming(tmp_path / "slow.flac", frames=8000, channels=2, rate=8000, claimed=16_000_000)
    assert load_audio(path, max_bytes=2**28)[0].shape == (2, 8000)
    with pytest.raises(AudioFileError, match=r"\(2 ch × 16 M frames, resampled to 16000 Hz\), over the 0\.2 GiB limit"):
        load_audio(path, 16000, max_bytes=2**28)
    audio, rate = load_audio(path, 16000, mono=True, max_bytes=2**28)
    assert (audio.shape, rate) == ((1, 16000), 16000)


def test_free_memory_is_a_limit_too(tmp_path: Path, monkeypatch) -> None:
    path = flac_claiming(tmp_path / "big.flac", frames=4800, channels=8, rate=48000, claimed=10_000_000)
    monkeypatch.setattr(read_module, "available_cpu_memory", lambda: 100 * 2**20)
    with pytest.raises(AudioFileError, match=r"big\.flac: would decode to 0\.3 GiB \(8 ch × 10 M frames\) but only 0\.1 GiB of memory is free"):
        load_audio(path)
    with pytest.raises(AudioFileError, match="of memory is free"):
        probe_audio(path)
    assert load_audio(path, mono=True)[0].shape == (1, 4800)  # 38 MiB fits


def test_an_allocation_the_process_cannot_make_is_an_audio_file_error(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "a.wav"
    sf.write(path, noise(800, 2), 8000)

    def no_memory(shape, dtype=float):
        raise MemoryError

    monkeypatch.setattr(read_module.np, "empty", no_memory)
    with pytest.raises(AudioFileError, match=r"a\.wav: would decode to .*more memory than this process can allocate"):
        load_audio(path)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "1"])
def test_bad_max_bytes(tmp_path: Path, bad) -> None:
    path = tmp_path / "a.wav"
    sf.write(path, noise(80, 1), 8000)
    with pytest.raises(ConfigError, match="max_bytes"):
        load_audio(path, max_bytes=bad)
    with pytest.raises(ConfigError, match="max_bytes"):
        probe_audio(path, max_bytes=bad)


# --- block decoding ------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 2, 6])
@pytest.mark.parametrize("subtype", ["PCM_16", "FLOAT"])
def test_block_decoding_matches_soundfile(tmp_path: Path, reads: list[int], channels: int, subtype: str) -> None:
    frames = 3 * BLOCK_SAMPLES // channels + 123  # several blocks and a short last one
    path = tmp_path / f"x.{'wav' if subtype == 'FLOAT' else 'flac'}"
    sf.write(path, noise(frames, channels), 44100, subtype=subtype)
    expected = sf.read(path, dtype="float32", always_2d=True)[0].T
    reads.clear()

    audio, rate = load_audio(path)
    assert rate == 44100 and audio.dtype == np.float32 and audio.flags.c_contiguous
    np.testing.assert_array_equal(audio, expected)
    assert len(reads) > 1 and max(reads) <= BLOCK_SAMPLES // channels  # never the whole file at once

    mono, _ = load_audio(path, mono=True)
    np.testing.assert_array_equal(mono, to_channels(expected, 1))


def test_nan_in_a_later_block_stops_the_decode_there(tmp_path: Path, reads: list[int]) -> None:
    frames_per_block = BLOCK_SAMPLES // 2
    data = noise(10 * frames_per_block, 2)
    data[frames_per_block + 17, 1] = np.nan  # in the second block
    path = tmp_path / "nan.wav"
    sf.write(path, data, 16000, subtype="FLOAT")
    for mono in (False, True):
        reads.clear()
        with pytest.raises(AudioFileError, match=r"nan\.wav: contains non-finite samples"):
            load_audio(path, mono=mono)
        assert len(reads) == 2, "the blocks after the bad one are not decoded"


def test_a_file_yielding_more_frames_than_declared(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "under.wav"
    sf.write(path, noise(8000, 2), 8000, subtype="FLOAT")
    expected = sf.read(path, dtype="float32", always_2d=True)[0].T
    # Compressed formats estimate their length; a decoder may yield more than it said.
    monkeypatch.setattr(sf.SoundFile, "frames", property(lambda self: 1000))
    audio, _ = load_audio(path)
    np.testing.assert_array_equal(audio, expected)
    with pytest.raises(AudioFileError, match=r"under\.wav: decodes to more than the 1,000 frames its header declares, past the 0\.5 s limit"):
        load_audio(path, max_duration=0.5)
    with pytest.raises(AudioFileError, match="frames its header declares, past the"):
        load_audio(path, max_bytes=4000 * 2 * 4)


def test_overstated_ogg_length_decodes_what_is_there(tmp_path: Path, reads: list[int]) -> None:
    path = tmp_path / "liar.ogg"
    sf.write(path, noise(16000, 2), 16000)
    honest = load_audio(path)[0]
    path.write_bytes(ogg_with_last_granule(path.read_bytes(), 20 * 16000))
    assert audio_info(path).frames == 20 * 16000
    reads.clear()
    audio, _ = load_audio(path)
    assert max(reads) <= BLOCK_SAMPLES // 2  # the claimed length is never requested at once
    # Without the true end position, the last packet's padding is kept: a few ms at most.
    assert honest.shape[1] <= audio.shape[1] <= honest.shape[1] + 2048
    assert audio.base is None  # trimmed to a fresh array, not a view of the claimed length
    np.testing.assert_array_equal(audio[:, : honest.shape[1]], honest)


# --- probe_audio ---------------------------------------------------------------------------


def test_probe_reads_the_header_and_decodes_only_the_start(tmp_path: Path, reads: list[int]) -> None:
    path = tmp_path / "long.flac"
    sf.write(path, noise(16000 * 20, 2), 16000, subtype="PCM_16")
    reads.clear()
    info = probe_audio(path, seconds=2.0, max_duration=30)
    assert info == audio_info(path)
    assert sum(reads) <= 2 * 16000
    with pytest.raises(AudioFileError, match=r"long\.flac: is 20\.0 s long, over the 10 s limit"):
        probe_audio(path, max_duration=10)


def test_probe_finds_nan_in_the_start_only(tmp_path: Path) -> None:
    data = noise(16000 * 5, 1)
    data[16000 * 4, 0] = np.inf
    path = tmp_path / "late.wav"
    sf.write(path, data, 16000, subtype="FLOAT")
    assert probe_audio(path, seconds=2.0).frames == 16000 * 5
    with pytest.raises(AudioFileError, match=r"late\.wav: contains non-finite samples"):
        probe_audio(path, seconds=4.5)
    with pytest.raises(AudioFileError, match="non-finite"):
        load_audio(path)


@pytest.mark.parametrize(
    ("content", "problem"),
    [(b"", "not a readable audio file"), (b"RIFF not really", "not a readable audio file")],
)
def test_probe_unreadable(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AudioFileError, match=problem):
        probe_audio(path)
    with pytest.raises(AudioFileError, match="does not exist"):
        probe_audio(tmp_path / "missing.wav")


@pytest.mark.parametrize("bad", [0, -2.0, float("nan"), float("inf"), "2"])
def test_probe_bad_seconds(tmp_path: Path, bad) -> None:
    path = tmp_path / "a.wav"
    sf.write(path, noise(80, 1), 8000)
    with pytest.raises(ConfigError, match="seconds"):
        probe_audio(path, seconds=bad)


# --- through the command line, under a memory limit ------------------------------------------


def _limit_address_space() -> None:
    limit = 3 * 2**30
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


@pytest.mark.parametrize(
    ("kind", "role", "limit"),
    [
        ("rate_bomb_flac", "content", "over the 384000 Hz limit"),
        ("size_bomb_vorbis64", "style", "over the 2.0 GiB limit"),
    ],
)
def test_cli_refuses_a_bomb_under_a_memory_limit(kind: str, role: str, limit: str, tmp_path: Path) -> None:
    bomb = write_hostile_file(kind, tmp_path)
    other = tmp_path / "other.wav"
    sf.write(other, noise(16000, 1), 16000)
    content, style = (bomb, other) if role == "content" else (other, bomb)
    output = tmp_path / "out.wav"
    completed = subprocess.run(
        [sys.executable, "-m", "audiostyle_cli", str(content), str(style), "-o", str(output), "-q", "-n", "2", "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        preexec_fn=_limit_address_space,
    )
    assert completed.returncode == 3, completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in completed.stderr, completed.stderr
    assert str(bomb) in lines[0] and limit in lines[0]
    assert not output.exists() and leftovers(tmp_path) == []


# --- a full disk keeps its reason ------------------------------------------------------------

_FILE_SIZE_LIMIT_SCRIPT = textwrap.dedent(
    """
    import json, resource, signal, sys
    import numpy as np
    from audiostyle.io import save_audio
    from audiostyle.errors import AudioFileError

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
    audio = (0.3 * np.random.default_rng(0).standard_normal((2, 100_000))).astype(np.float32)
    errors = {}
    for path in sys.argv[1:]:
        try:
            save_audio(path, audio, 44100)
            errors[path] = None
        except AudioFileError as error:
            errors[path] = str(error)
    print(json.dumps(errors))
    """
)


def test_file_size_limit_is_named_and_leaves_nothing(tmp_path: Path) -> None:
    targets = []
    for ext in WRITABLE_EXTENSIONS:
        target = tmp_path / f"out{ext}"
        target.write_bytes(b"old")  # an earlier output: left as it was
        targets.append(target)
    completed = subprocess.run(
        [sys.executable, "-c", _FILE_SIZE_LIMIT_SCRIPT, *map(str, targets)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == ""
    errors = json.loads(completed.stdout)
    for target in targets:
        assert errors[str(target)] == f"{target}: could not write: {os.strerror(errno.EFBIG)}"
        assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(t.name for t in targets)


class _FillingFile:
    """A file on a disk with ``room`` bytes left: writes past it fail with ENOSPC."""

    def __init__(self, handle, room: int) -> None:
        self._handle = handle
        self._room = room

    def write(self, data: bytes) -> int:
        if self._handle.tell() + len(data) > self._room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self._handle.write(data)

    def __getattr__(self, name: str):
        return getattr(self._handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self._handle.close()


@pytest.mark.parametrize("ext", sorted(WRITABLE_EXTENSIONS))
def test_full_disk_is_named_and_leaves_nothing(ext: str, tmp_path: Path, monkeypatch) -> None:
    real_open = open
    monkeypatch.setattr(write_module, "open", lambda file, mode="r": _FillingFile(real_open(file, mode), 2000), raising=False)
    target = tmp_path / f"out{ext}"
    with pytest.raises(AudioFileError) as caught:
        save_audio(target, noise(100_000, 2).T, 44100)
    assert str(caught.value) == f"{target}: could not write: No space left on device"
    assert list(tmp_path.iterdir()) == []
