"""Tests for audiostyle.io and audiostyle.dsp.resample: reading, writing, resampling and channel layout."""

from __future__ import annotations

import csv
import os
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiostyle.dsp.resample import resample, to_channels
from audiostyle.io import (
    WRITABLE_EXTENSIONS,
    AudioInfo,
    atomic_write,
    audio_info,
    check_encodable,
    check_output_path,
    load_audio,
    save_audio,
    wav_is_truncated,
)
from audiostyle.errors import AudioFileError, ConfigError

CORPUS = Path(__file__).parents[1].parent / "shared" / "corpus"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20160101)


def sine(rng: np.random.Generator, channels: int, samples: int, rate: int) -> np.ndarray:
    """A quiet random-pitch sine per channel, float32 (channels, samples)."""
    time = np.arange(samples) / rate
    freqs = rng.uniform(100.0, min(2000.0, rate / 4), size=(channels, 1))
    return (0.5 * np.sin(2 * np.pi * freqs * time)).astype(np.float32)


def listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def corpus_files() -> list[Path]:
    """The shared corpus's audio files; skips the calling test when the corpus is absent."""
    if not CORPUS.is_dir():
        pytest.skip(f"corpus folder {CORPUS} not present")
    return sorted(p for p in CORPUS.iterdir() if p.suffix in {".wav", ".flac", ".ogg"})


# --- round trips -------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [8000, 44100, 192000])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("ext", ["wav", "flac", "ogg"])
def test_round_trip(tmp_path, rng, ext, channels, rate):
    audio = sine(rng, channels, rate // 8, rate)
    written = save_audio(tmp_path / f"out.{ext}", audio, rate)

    loaded, loaded_rate = load_audio(written)

    assert written == tmp_path / f"out.{ext}"
    assert loaded.dtype == np.float32
    assert loaded.shape == audio.shape
    assert loaded_rate == rate
    if ext != "ogg":  # lossless at 16 bits
        np.testing.assert_allclose(loaded, audio, atol=1e-4)
    info = audio_info(written)
    assert isinstance(info, AudioInfo)
    assert (info.sample_rate, info.channels, info.frames) == (rate, channels, rate // 8)
    assert info.duration == pytest.approx((rate // 8) / rate)
    assert listing(tmp_path) == [f"out.{ext}"]


@pytest.mark.parametrize("ext", sorted(set(WRITABLE_EXTENSIONS) - {".wav", ".flac", ".ogg"}))
def test_other_writable_extensions(tmp_path, rng, ext):
    audio = sine(rng, 2, 4410, 44100)
    loaded, rate = load_audio(save_audio(tmp_path / f"out{ext}", audio, 44100))
    assert (loaded.shape[0], rate) == (2, 44100)
    assert audio_info(tmp_path / f"out{ext}").format == WRITABLE_EXTENSIONS[ext]


def test_accepts_str_and_path(tmp_path, rng):
    audio = sine(rng, 1, 800, 8000)
    save_audio(str(tmp_path / "a.wav"), audio, 8000)
    from_str, _ = load_audio(str(tmp_path / "a.wav"))
    from_path, _ = load_audio(tmp_path / "a.wav")
    np.testing.assert_array_equal(from_str, from_path)


def test_one_dimensional_audio_is_one_channel(tmp_path, rng):
    save_audio(tmp_path / "a.wav", sine(rng, 1, 800, 8000)[0], 8000)
    assert load_audio(tmp_path / "a.wav")[0].shape == (1, 800)


def test_subtype_kept_when_valid(tmp_path, rng):
    save_audio(tmp_path / "a.flac", sine(rng, 1, 800, 8000), 8000, subtype="PCM_24")
    assert audio_info(tmp_path / "a.flac").subtype == "PCM_24"


def test_subtype_invalid_for_format_falls_back(tmp_path, rng):
    save_audio(tmp_path / "a.ogg", sine(rng, 1, 800, 8000), 8000, subtype="PCM_24")
    assert audio_info(tmp_path / "a.ogg").subtype == sf.default_subtype("OGG")


def test_explicit_format_overrides_extension(tmp_path, rng):
    save_audio(tmp_path / "a.bin", sine(rng, 1, 800, 8000), 8000, format="wav")
    assert audio_info(tmp_path / "a.bin").format == "WAV"
    assert listing(tmp_path) == ["a.bin"]


def test_unknown_format_or_subtype_is_config_error(tmp_path, rng):
    audio = sine(rng, 1, 800, 8000)
    with pytest.raises(ConfigError, match="format='nope'"):
        save_audio(tmp_path / "a.wav", audio, 8000, format="nope")
    with pytest.raises(ConfigError, match="PCM_99"):
        save_audio(tmp_path / "a.wav", audio, 8000, subtype="PCM_99")
    assert listing(tmp_path) == []


# --- resample and channel layout ---------------------------------------------------------


@pytest.mark.parametrize(
    ("orig_sr", "target_sr"),
    [(8000, 44100), (44100, 8000), (44100, 192000), (192000, 44100), (8000, 192000)],
)
def test_resample_length(rng, orig_sr, target_sr):
    audio = sine(rng, 2, orig_sr // 10, orig_sr)
    out = resample(audio, orig_sr, target_sr)
    assert out.dtype == np.float32
    assert out.shape[0] == 2
    assert abs(out.shape[1] - audio.shape[1] * target_sr / orig_sr) <= 1


def test_resample_identity(rng):
    audio = sine(rng, 1, 100, 8000)
    np.testing.assert_array_equal(resample(audio, 8000, 8000), audio)


@pytest.mark.parametrize("bad", [0, -8000, 44100.5, True, "44100"])
def test_resample_bad_rate(rng, bad):
    with pytest.raises(ConfigError, match="must be a positive integer"):
        resample(sine(rng, 1, 100, 8000), 8000, bad)


def test_load_resamples(tmp_path, rng):
    save_audio(tmp_path / "a.wav", sine(rng, 2, 44100 // 4, 44100), 44100)
    audio, rate = load_audio(tmp_path / "a.wav", 8000)
    assert rate == 8000
    assert audio.shape == (2, 2000)
    assert audio.dtype == np.float32


def test_load_mono_averages(tmp_path, rng):
    stereo = sine(rng, 2, 800, 8000)
    save_audio(tmp_path / "a.flac", stereo, 8000)
    mono, _ = load_audio(tmp_path / "a.flac", mono=True)
    assert mono.shape == (1, 800)
    np.testing.assert_allclose(mono[0], stereo.mean(axis=0), atol=1e-4)


@pytest.mark.parametrize(("source", "target"), [(1, 1), (1, 2), (2, 1), (3, 2), (2, 6)])
def test_to_channels(rng, source, target):
    audio = sine(rng, source, 64, 8000)
    out = to_channels(audio, target)
    assert out.shape == (target, 64)
    assert out.dtype == np.float32
    expected = audio if source == target else np.repeat(audio.mean(0, keepdims=True), target, 0)
    np.testing.assert_allclose(out, expected, atol=1e-7)


def test_to_channels_bad_arguments(rng):
    with pytest.raises(ConfigError, match="channels=0"):
        to_channels(sine(rng, 1, 8, 8000), 0)
    with pytest.raises(ConfigError, match="expected"):
        to_channels(np.zeros(8, np.float32), 2)


# --- bad inputs to load ------------------------------------------------------------------


def _write_text(path: Path) -> None:
    path.write_text("this is not audio\n")


def _write_truncated_header(path: Path) -> None:
    sf.write(path, np.zeros(100, np.float32), 8000)
    path.write_bytes(path.read_bytes()[:20])


def _write_random_bytes(path: Path) -> None:
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, np.uint8).tobytes())


def _write_empty(path: Path) -> None:
    sf.write(path, np.zeros((0, 1), np.float32), 8000)


def _write_zero_bytes(path: Path) -> None:
    path.write_bytes(b"")


def _write_nan(path: Path) -> None:
    sf.write(path, np.array([0.0, np.nan, 0.1], np.float32), 8000, subtype="FLOAT")


def _write_inf(path: Path) -> None:
    sf.write(path, np.array([0.0, np.inf, 0.1], np.float32), 8000, subtype="FLOAT")


@pytest.mark.parametrize(
    ("name", "make", "problem"),
    [
        ("missing.wav", None, "does not exist"),
        ("a_folder.wav", Path.mkdir, "is a folder"),
        ("text.wav", _write_text, "not a readable audio file"),
        ("truncated.wav", _write_truncated_header, "not a readable audio file"),
        ("noise.xyz", _write_random_bytes, "not a readable audio file"),
        ("zero_bytes.flac", _write_zero_bytes, "not a readable audio file"),
        ("empty.wav", _write_empty, "no audio samples"),
        ("nan.wav", _write_nan, "non-finite samples (NaN or Inf)"),
        ("inf.wav", _write_inf, "non-finite samples (NaN or Inf)"),
    ],
)
def test_load_bad_input(tmp_path, name, make, problem):
    path = tmp_path / name
    if make is not None:
        make(path)
    before = listing(tmp_path)

    with pytest.raises(AudioFileError) as caught:
        load_audio(path)
    assert name in str(caught.value)
    assert problem in str(caught.value)
    assert "\n" not in str(caught.value)
    if make not in (None, Path.mkdir, _write_nan, _write_inf):
        with pytest.raises(AudioFileError, match=name):
            audio_info(path)
    assert listing(tmp_path) == before


def test_load_over_max_duration(tmp_path, rng):
    save_audio(tmp_path / "long.wav", sine(rng, 1, 16000, 8000), 8000)
    with pytest.raises(AudioFileError, match=r"long\.wav.*1 s limit.*max_duration"):
        load_audio(tmp_path / "long.wav", max_duration=1.0)
    assert load_audio(tmp_path / "long.wav", max_duration=2.0)[0].shape == (1, 16000)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "10"])
def test_load_bad_max_duration(tmp_path, rng, bad):
    save_audio(tmp_path / "a.wav", sine(rng, 1, 80, 8000), 8000)
    with pytest.raises(ConfigError, match="max_duration"):
        load_audio(tmp_path / "a.wav", max_duration=bad)


def test_load_truncated_data_loads_or_raises_audio_file_error(tmp_path, rng):
    path = tmp_path / "cut.wav"
    sf.write(path, sine(rng, 2, 8000, 8000).T, 8000)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 + 3])  # header still claims all 8000 frames
    try:
        audio, rate = load_audio(path)
    except AudioFileError as err:
        assert "cut.wav" in str(err)
    else:
        assert audio.shape[0] == 2
        assert 0 < audio.shape[1] <= 8000
        assert rate == 8000


def test_a_cut_short_wav_loads_what_is_there_and_says_so(tmp_path, rng, caplog):
    path = tmp_path / "cut.wav"
    sf.write(path, sine(rng, 1, 8000, 8000).T, 8000, subtype="PCM_16")
    whole = path.read_bytes()
    path.write_bytes(whole[: 44 + 2 * 3000])  # the header still declares 8000 frames
    assert wav_is_truncated(path)
    with caplog.at_level("WARNING", logger="audiostyle"):
        audio, _ = load_audio(path)
    assert audio.shape == (1, 3000)
    assert [r.getMessage() for r in caplog.records if "cut short" in r.getMessage()] != []
    assert "cut.wav" in caplog.text
    # A whole file says nothing.
    path.write_bytes(whole)
    caplog.clear()
    with caplog.at_level("WARNING", logger="audiostyle"):
        load_audio(path)
    assert not wav_is_truncated(path) and "cut short" not in caplog.text


def test_wav_header_claiming_huge_length(tmp_path):
    path = tmp_path / "liar.wav"
    sf.write(path, np.zeros(100, np.float32), 8000)
    data = bytearray(path.read_bytes())
    data[40:44] = struct.pack("<I", 0x7FFFFFF0)  # data chunk size far past the end
    path.write_bytes(bytes(data))
    try:
        audio, _ = load_audio(path)
    except AudioFileError as err:
        assert "liar.wav" in str(err)
    else:
        assert audio.shape[1] <= 100


def test_unexpected_decoder_exception_is_wrapped(tmp_path, rng, monkeypatch):
    save_audio(tmp_path / "a.wav", sine(rng, 1, 80, 8000), 8000)

    def broken_read(*args, **kwargs):
        raise ValueError("decoder exploded")

    # load_audio decodes block by block through SoundFile.read.
    monkeypatch.setattr(sf.SoundFile, "read", broken_read)
    with pytest.raises(AudioFileError, match=r"a\.wav.*decoder exploded"):
        load_audio(tmp_path / "a.wav")


def test_bad_sample_rate_argument(tmp_path, rng):
    save_audio(tmp_path / "a.wav", sine(rng, 1, 80, 8000), 8000)
    with pytest.raises(ConfigError, match="sample_rate=0"):
        load_audio(tmp_path / "a.wav", 0)


# --- bad outputs -------------------------------------------------------------------------


def test_save_unsupported_extension(tmp_path, rng):
    with pytest.raises(AudioFileError, match=r"out\.xyz.*\.wav.*\.flac"):
        save_audio(tmp_path / "out.xyz", sine(rng, 1, 80, 8000), 8000)
    assert listing(tmp_path) == []


def test_save_missing_folder(tmp_path, rng):
    with pytest.raises(AudioFileError, match=r"out\.wav.*folder does not exist"):
        save_audio(tmp_path / "nope" / "out.wav", sine(rng, 1, 80, 8000), 8000)
    assert listing(tmp_path) == []


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_save_non_finite_writes_nothing(tmp_path, rng, bad_value):
    audio = sine(rng, 2, 80, 8000)
    audio[1, 40] = bad_value
    with pytest.raises(AudioFileError, match=r"out\.wav.*NaN or Inf"):
        save_audio(tmp_path / "out.wav", audio, 8000)
    assert listing(tmp_path) == []


def test_save_empty_audio(tmp_path):
    with pytest.raises(AudioFileError, match=r"out\.wav.*empty"):
        save_audio(tmp_path / "out.wav", np.zeros((1, 0), np.float32), 8000)
    assert listing(tmp_path) == []


@pytest.mark.parametrize(
    "audio",
    [np.zeros((8000, 2), np.float32), np.zeros((1, 2, 3), np.float32), np.zeros((1, 8), int)],
)
def test_save_bad_array(tmp_path, audio):
    with pytest.raises(ConfigError, match="audio has"):
        save_audio(tmp_path / "out.wav", audio, 8000)
    assert listing(tmp_path) == []


@pytest.mark.parametrize(
    ("name", "rate", "channels", "problem"),
    [
        # libvorbis crashes the process above about 200 kHz instead of refusing.
        ("out.ogg", 384000, 1, "OGG Vorbis is written up to 192000 Hz, not 384000"),
        ("out.flac", 8000, 9, "FLAC holds at most 8 channels, not 9"),
        ("out.mp3", 192000, 1, "MP3 has only the rates 8000, "),
        ("out.mp3", 44100, 3, "MP3 holds at most 2 channels, not 3"),
    ],
)
def test_save_refuses_what_the_format_cannot_hold(tmp_path, rng, name, rate, channels, problem):
    if name.endswith(".mp3") and ".mp3" not in WRITABLE_EXTENSIONS:
        pytest.skip("this libsndfile cannot write MP3")
    with pytest.raises(AudioFileError, match=re.escape(problem)) as caught:
        save_audio(tmp_path / name, sine(rng, channels, 800, rate), rate)
    message = str(caught.value)
    assert name in message and ("write .wav" in message or "write .flac" in message)
    assert listing(tmp_path) == []
    # The same check, before any work, from the numbers alone.
    with pytest.raises(AudioFileError, match=re.escape(problem)):
        check_encodable(tmp_path / name, rate, channels)


def test_formats_are_written_up_to_their_limits(tmp_path, rng):
    save_audio(tmp_path / "a.ogg", sine(rng, 2, 800, 192000), 192000)
    save_audio(tmp_path / "b.flac", sine(rng, 8, 800, 384000), 384000)
    save_audio(tmp_path / "c.wav", sine(rng, 64, 800, 384000), 384000)
    assert [audio_info(tmp_path / n).channels for n in ("a.ogg", "b.flac", "c.wav")] == [2, 8, 64]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_named_pipe_is_refused_without_waiting_for_a_writer(tmp_path, rng):
    pipe = tmp_path / "pipe.wav"
    os.mkfifo(pipe)
    for read in (audio_info, load_audio):
        with pytest.raises(AudioFileError, match="pipe.wav: is not a regular file"):
            read(pipe)
    # Nor is one written over: a rename would turn it into a plain file.
    with pytest.raises(AudioFileError, match="is not a regular file"):
        save_audio(pipe, sine(rng, 1, 800, 8000), 8000, overwrite=True)
    assert pipe.is_fifo() and listing(tmp_path) == ["pipe.wav"]


def test_an_output_name_the_file_system_takes_is_written(tmp_path, rng):
    # 254 bytes: legal, though the temporary name beside it could not repeat it whole.
    target = tmp_path / ("b" * 250 + ".wav")
    save_audio(target, sine(rng, 1, 800, 8000), 8000)
    assert listing(tmp_path) == [target.name] and audio_info(target).frames == 800


def test_a_flac_whose_header_gives_no_length_is_read_whole(tmp_path, rng):
    audio = sine(rng, 2, 30000, 16000)
    path = save_audio(tmp_path / "stream.flac", audio, 16000)
    data = bytearray(path.read_bytes())
    # STREAMINFO's 36-bit total-samples field, 0 meaning "unknown" (as a streaming encoder writes).
    at = 8 + 10
    packed = int.from_bytes(data[at : at + 8], "big") & ~((1 << 36) - 1)
    data[at : at + 8] = packed.to_bytes(8, "big")
    data[at + 8 : at + 24] = bytes(16)
    path.write_bytes(bytes(data))
    assert audio_info(path).frames == 30000
    loaded, rate = load_audio(path)
    assert rate == 16000 and loaded.shape == (2, 30000)
    np.testing.assert_allclose(loaded, audio, atol=1e-4)


def _existing_input(folder: Path, rng: np.random.Generator) -> tuple[Path, bytes]:
    path = save_audio(folder / "input.wav", sine(rng, 1, 80, 8000), 8000)
    return path, path.read_bytes()


def test_save_refuses_input_path(tmp_path, rng):
    source, original = _existing_input(tmp_path, rng)
    with pytest.raises(AudioFileError, match=r"input\.wav.*refusing to overwrite an input"):
        save_audio(source, sine(rng, 1, 80, 8000), 8000, protect=[str(source)])
    assert source.read_bytes() == original
    assert listing(tmp_path) == ["input.wav"]


def test_save_refuses_input_through_symlink(tmp_path, rng):
    source, original = _existing_input(tmp_path, rng)
    link = tmp_path / "link.wav"
    link.symlink_to(source)
    with pytest.raises(AudioFileError, match="refusing to overwrite an input"):
        save_audio(link, sine(rng, 1, 80, 8000), 8000, protect=[source])
    with pytest.raises(AudioFileError, match="refusing to overwrite an input"):
        save_audio(source, sine(rng, 1, 80, 8000), 8000, protect=[link])
    assert source.read_bytes() == original
    assert listing(tmp_path) == ["input.wav", "link.wav"]


def test_save_refuses_input_through_folder_symlink_and_dots(tmp_path, rng):
    source, original = _existing_input(tmp_path, rng)
    (tmp_path / "sub").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path)
    target = tmp_path / "sub" / ".." / "alias" / "input.wav"
    with pytest.raises(AudioFileError, match="refusing to overwrite an input"):
        save_audio(target, sine(rng, 1, 80, 8000), 8000, protect=[source])
    assert source.read_bytes() == original


def test_save_refuses_input_differing_in_case(tmp_path, rng):
    source, original = _existing_input(tmp_path, rng)
    with pytest.raises(AudioFileError, match="refusing to overwrite an input"):
        save_audio(tmp_path / "INPUT.WAV", sine(rng, 1, 80, 8000), 8000, protect=[source])
    assert source.read_bytes() == original
    assert listing(tmp_path) in (["input.wav"], ["INPUT.WAV"])  # case-insensitive FS: one file


def test_save_overwrite_false(tmp_path, rng):
    source, original = _existing_input(tmp_path, rng)
    with pytest.raises(AudioFileError, match=r"input\.wav.*exists; pass overwrite=True"):
        save_audio(source, sine(rng, 1, 160, 8000), 8000, overwrite=False)
    assert source.read_bytes() == original
    save_audio(source, sine(rng, 1, 160, 8000), 8000)  # overwrite=True is the default
    assert audio_info(source).frames == 160
    assert listing(tmp_path) == ["input.wav"]


def test_save_onto_folder(tmp_path, rng):
    (tmp_path / "x.wav").mkdir()
    with pytest.raises(AudioFileError, match=r"x\.wav.*is a folder"):
        save_audio(tmp_path / "x.wav", sine(rng, 1, 80, 8000), 8000)
    assert listing(tmp_path) == ["x.wav"]


# --- atomic writes -----------------------------------------------------------------------


def _failing_write(error: BaseException):
    real_write = sf.write

    def write(file, data, *args, **kwargs):
        real_write(file, data[: len(data) // 2], *args, **kwargs)  # a partial file first
        raise error

    return write


def test_disk_full_leaves_no_temp_and_target_untouched(tmp_path, rng, monkeypatch):
    target, original = _existing_input(tmp_path, rng)
    monkeypatch.setattr(sf, "write", _failing_write(OSError(28, "No space left on device")))
    with pytest.raises(AudioFileError, match=r"input\.wav.*could not write.*No space left"):
        save_audio(target, sine(rng, 1, 800, 8000), 8000)
    assert target.read_bytes() == original
    assert listing(tmp_path) == ["input.wav"]


def test_interrupt_leaves_no_temp(tmp_path, rng, monkeypatch):
    monkeypatch.setattr(sf, "write", _failing_write(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        save_audio(tmp_path / "out.flac", sine(rng, 1, 800, 8000), 8000)
    assert listing(tmp_path) == []


def test_atomic_write_bytes(tmp_path):
    target = tmp_path / "report.json"
    with atomic_write(target) as tmp:
        assert tmp.parent == tmp_path
        assert tmp.name.startswith(".report.json.") and tmp.name.endswith(".part.json")
        tmp.write_bytes(b'{"ok": true}')
        assert not target.exists()
    assert target.read_bytes() == b'{"ok": true}'
    assert listing(tmp_path) == ["report.json"]


def test_atomic_write_error_in_block(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert listing(tmp_path) == ["report.json"]


def test_atomic_write_file_mode_follows_umask(tmp_path):
    umask = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "a.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(umask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644


# --- the shared corpus -------------------------------------------------------------------


def test_unwritable_folder_found_before_any_work(tmp_path):
    # /proc refuses new files even to root, for whom permission bits say nothing.
    if not Path("/proc/self").is_dir():
        pytest.skip("needs Linux /proc")
    with pytest.raises(AudioFileError, match=r"out\.wav.*cannot write to its folder"):
        check_output_path("/proc/out.wav")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes anywhere")
def test_read_only_folder_found_before_any_work(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(AudioFileError, match="cannot write to its folder"):
            check_output_path(folder / "out.wav")
    finally:
        folder.chmod(0o700)


def test_output_path_check_leaves_nothing(tmp_path):
    assert check_output_path(tmp_path / "out.wav") == tmp_path / "out.wav"
    assert list(tmp_path.iterdir()) == []


def test_corpus_files_load():
    files = corpus_files()
    manifest = {}
    if (CORPUS / "MANIFEST.tsv").exists():
        with open(CORPUS / "MANIFEST.tsv", newline="") as handle:
            manifest = {row["file"]: row for row in csv.DictReader(handle, delimiter="\t")}
    assert files
    for path in files:
        audio, rate = load_audio(path)
        assert audio.dtype == np.float32
        assert audio.ndim == 2 and audio.shape[1] > 0
        assert np.isfinite(audio).all()
        row = manifest.get(path.name)
        if row is not None:
            assert rate == int(row["sample_rate"]), path.name
            assert audio.shape[0] == int(row["channels"]), path.name
            assert audio.shape[1] / rate == pytest.approx(float(row["duration_s"]), abs=0.05)


@pytest.mark.parametrize("subtype", ["PCM_16", "FLOAT"])
def test_max_seconds_decodes_only_the_head_and_checks_only_it(tmp_path: Path, subtype: str) -> None:
    path = tmp_path / "long.flac" if subtype == "PCM_16" else tmp_path / "long.wav"
    rng = np.random.default_rng(0)
    sf.write(path, (0.1 * rng.standard_normal((48000 * 12, 2))).astype(np.float32), 48000, subtype=subtype)
    whole, _ = load_audio(path)
    head, rate = load_audio(path, max_seconds=2.5)
    assert rate == 48000 and head.shape == (2, 120000)
    np.testing.assert_array_equal(head, whole[:, :120000])
    # The whole file is over max_duration, its head is not: the head is read, the file refused.
    with pytest.raises(AudioFileError, match="over the 10 s limit"):
        load_audio(path, max_duration=10)
    assert load_audio(path, max_duration=10, max_seconds=5, mono=True)[0].shape == (1, 240000)
    # Longer than the file: the whole file; resampled heads keep their length.
    assert load_audio(path, max_seconds=60)[0].shape == whole.shape
    assert load_audio(path, 16000, max_seconds=1.0)[0].shape == (2, 16000)
    with pytest.raises(ConfigError, match="max_seconds"):
        load_audio(path, max_seconds=0)


def test_a_protected_path_given_alone_is_protected(tmp_path, rng):
    source, original = _existing_input(tmp_path, rng)
    for protect in (str(source), source):
        with pytest.raises(AudioFileError, match="refusing to overwrite an input"):
            save_audio(source, sine(rng, 1, 80, 8000), 8000, protect=protect)
        with pytest.raises(AudioFileError, match="refusing to overwrite an input"):
            with atomic_write(source, protect=protect) as tmp:
                tmp.write_text("{}")
    assert source.read_bytes() == original


@pytest.mark.parametrize("path", [None, 5, 3.5])
def test_a_path_that_is_no_path_is_a_config_error(tmp_path, rng, path):
    for call in (lambda: load_audio(path), lambda: audio_info(path), lambda: save_audio(path, sine(rng, 1, 80, 8000), 8000)):
        with pytest.raises(ConfigError, match="must be a str or os.PathLike"):
            call()


def test_bytes_and_overlong_names_are_handled(tmp_path, rng):
    path = save_audio(os.fsencode(tmp_path / "b.wav"), sine(rng, 1, 800, 8000), 8000)
    assert load_audio(os.fsencode(path))[0].shape == (1, 800)
    long = tmp_path / ("x" * 300 + ".wav")
    with pytest.raises(AudioFileError, match="File name too long|cannot be read"):
        load_audio(long)
    with pytest.raises(AudioFileError):
        save_audio(long, sine(rng, 1, 800, 8000), 8000)


def test_limits_past_a_float_are_refused_or_mean_no_limit(tmp_path, rng):
    path = save_audio(tmp_path / "a.wav", sine(rng, 1, 800, 8000), 8000)
    assert load_audio(path, max_seconds=1e308)[0].shape == (1, 800)
    assert load_audio(path, max_bytes=10**400)[0].shape == (1, 800)
    with pytest.raises(ConfigError, match="max_duration"):
        load_audio(path, max_duration=10**400)
