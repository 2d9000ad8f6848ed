"""Reading audio files: the header, a bounded probe, and a block-by-block bounded decode."""

from __future__ import annotations

import logging
import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf

from ..dsp.resample import resample
from ..errors import AudioFileError
from ..system import available_cpu_memory, format_gib
from ..validation import positive_int, positive_seconds
from .formats import (
    FLOAT_BYTES,
    MAX_CHANNELS,
    MAX_DECODED_BYTES,
    MAX_SAMPLE_RATE,
    READABLE_FORMATS,
    AudioInfo,
    PathLike,
    as_path,
    decode_reason,
)

__all__ = ["audio_info", "load_audio", "probe_audio", "wav_is_truncated"]

logger = logging.getLogger("audiostyle")

#: Chunks :func:`wav_is_truncated` reads before the data chunk at most.
_MAX_RIFF_CHUNKS = 1024
#: Containers whose header gives the exact length (a compressed stream's is an estimate).
_EXACT_LENGTH_FORMATS = frozenset({"WAV", "WAVEX", "RF64", "W64", "AIFF", "FLAC", "CAF"})

# Samples (all channels) per decoded block: a few hundred kB, small enough to stay in cache
# while it is checked and copied into place.
_BLOCK_SAMPLES = 2**17


def _check_readable_path(path: Path) -> None:
    try:
        exists = path.exists()
    except OSError as exc:  # a name too long for the file system, a loop of links...
        raise AudioFileError(path, f"cannot be read: {exc.strerror or exc}") from exc
    if not exists:
        raise AudioFileError(path, "file does not exist")
    if path.is_dir():
        raise AudioFileError(path, "is a folder, not an audio file")
    if not path.is_file():
        # Opening a named pipe blocks until something writes to it: possibly forever.
        raise AudioFileError(path, "is not a regular file (a pipe, device or socket); save the audio to a file first")


class _ForwardReader(sf.SoundFile):
    """A sound file read front to back, without soundfile's seek after every read.

    libsndfile advances its own position as it decodes; the seek soundfile adds to a
    seekable file fails at the end of a FLAC whose header overstates its length, and the
    frames that did decode are lost with it.
    """

    def seekable(self) -> bool:
        return False


def _open_for_reading(path: Path) -> sf.SoundFile:
    _check_readable_path(path)
    try:
        return _ForwardReader(str(path))
    except Exception as exc:  # libsndfile and its codecs fail in many ways; all mean "unreadable"
        raise AudioFileError(
            path,
            f"is not a readable audio file ({decode_reason(exc)}); "
            f"readable formats: {READABLE_FORMATS}",
        ) from exc


#: What libsndfile reports as the length of a stream whose header does not say it (a FLAC
#: whose STREAMINFO holds 0 samples, which the format allows).
_UNKNOWN_FRAMES = 2**63 - 1


def _counted_frames(path: Path, channels: int) -> int:
    """The frames of a file whose header gives no length, counted by decoding it block by
    block (nothing kept), up to one more than :data:`MAX_DECODED_BYTES` holds."""
    cap = MAX_DECODED_BYTES // (FLOAT_BYTES * channels) + 1
    frames = 0
    with _ForwardReader(str(path)) as handle:
        block = max(1, _BLOCK_SAMPLES // channels)
        while frames < cap:
            read = handle.read(frames=block, dtype="float32").shape[0]
            if read == 0:
                break
            frames += read
    return min(frames, cap)


def _header(path: Path, handle: sf.SoundFile) -> AudioInfo:
    frames = int(handle.frames)
    if frames == _UNKNOWN_FRAMES and 0 < handle.channels <= MAX_CHANNELS:
        try:
            frames = _counted_frames(path, int(handle.channels))
        except Exception as exc:  # noqa: BLE001 - a stream that fails part-way is unreadable
            raise AudioFileError(path, f"is not a readable audio file ({decode_reason(exc)})") from exc
    info = AudioInfo(
        path=str(path),
        sample_rate=int(handle.samplerate),
        channels=int(handle.channels),
        frames=frames,
        format=str(handle.format),
        subtype=handle.subtype or None,
    )
    if info.frames <= 0:
        raise AudioFileError(path, "contains no audio samples (0 frames)")
    return info


def wav_is_truncated(path: PathLike) -> bool:
    """True when a RIFF/WAVE file's data chunk claims more bytes than the file holds.

    libsndfile reports and reads what is there without a word, so a file cut off in a copy
    or a crashed recording would otherwise pass as a shorter, whole one.
    """
    path = as_path(path)
    size = path.stat().st_size
    with open(path, "rb") as handle:
        header = handle.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return False
        offset = 12
        # A real file's data chunk comes within a few chunks; a file of many tiny ones is not
        # walked to its end (that would cost time in proportion to its size).
        for _ in range(_MAX_RIFF_CHUNKS):
            if offset + 8 > size:
                break
            handle.seek(offset)
            chunk_id, chunk_size = struct.unpack("<4sI", handle.read(8))
            if chunk_id == b"data":
                # 0 and 0xFFFFFFFF mark streamed WAVs whose size was never filled in.
                return chunk_size not in (0, 0xFFFFFFFF) and offset + 8 + chunk_size > size
            offset += 8 + chunk_size + (chunk_size & 1)
    return False


def audio_info(path: PathLike) -> AudioInfo:
    """Read an audio file's header: sample rate, channels, length, format.

    Nothing is decoded and no limit is applied: :func:`probe_audio` and :func:`load_audio`
    check what the header promises before they decode.

    Parameters
    ----------
    path : str or os.PathLike
        Any file soundfile reads (WAV, FLAC, OGG, MP3, AIFF, ...).

    Returns
    -------
    AudioInfo
        The header's fields; ``info.duration`` is the length in seconds.

    Raises
    ------
    AudioFileError
        If the path does not exist, is a folder, cannot be decoded as audio, or holds
        no samples.

    Examples
    --------
    >>> audio_info("violin.wav").duration  # doctest: +SKIP
    4.5
    """
    path = as_path(path)
    with _open_for_reading(path) as handle:
        return _header(path, handle)


@dataclass(frozen=True)
class _Budget:
    """How many frames a decode may yield, and the limit that sets it (for messages)."""

    frames: int
    limit: str


def _frame_count(frames: int) -> str:
    return f"{frames / 1e6:,.0f} M frames" if frames >= 10**6 else f"{frames:,} frames"


def _decode_budget(
    path: Path,
    info: AudioInfo,
    *,
    out_channels: int,
    sample_rate: int | None,
    max_duration: float | None,
    max_bytes: int,
) -> _Budget:
    """Refuse a file whose header promises more than the limits allow, before decoding it.

    The memory counted is the float32 output (``out_channels`` of them: one for a mono
    downmix), plus the resampled copy when ``sample_rate`` differs from the file's.
    """
    # An int past float's range would overflow the divisions below; so much is no limit anyway.
    max_bytes = min(max_bytes, 2**62)
    if info.sample_rate <= 0:
        raise AudioFileError(path, f"has an invalid sample rate ({info.sample_rate} Hz)")
    if info.sample_rate > MAX_SAMPLE_RATE:
        raise AudioFileError(
            path, f"sample rate {info.sample_rate} Hz is over the {MAX_SAMPLE_RATE} Hz limit"
        )
    if max_duration is not None and info.duration > max_duration:
        raise AudioFileError(
            path,
            f"is {info.duration:.1f} s long, over the {max_duration:g} s limit; "
            "raise the limit with max_duration",
        )
    if info.channels > MAX_CHANNELS:
        raise AudioFileError(path, f"has {info.channels} channels; at most {MAX_CHANNELS} are supported")
    resampled = sample_rate is not None and sample_rate != info.sample_rate
    bytes_per_frame = out_channels * FLOAT_BYTES * (1 + (sample_rate / info.sample_rate if resampled else 0))
    needed = math.ceil(info.frames * bytes_per_frame)
    shape = f"{out_channels} ch × {_frame_count(info.frames)}"
    if resampled:
        shape += f", resampled to {sample_rate} Hz"
    if needed > max_bytes:
        raise AudioFileError(
            path, f"would decode to {format_gib(needed)} ({shape}), over the {format_gib(max_bytes)} limit"
        )
    free = available_cpu_memory()
    if free is not None and needed > free:
        raise AudioFileError(
            path, f"would decode to {format_gib(needed)} ({shape}) but only {format_gib(free)} of memory is free"
        )
    # The header may understate the length (compressed formats estimate it): these bound
    # what the decoder is allowed to yield beyond it.
    limits = [(max_bytes / bytes_per_frame, format_gib(max_bytes))]
    if free is not None:
        limits.append((free / bytes_per_frame, f"{format_gib(free)} free memory"))
    if max_duration is not None:
        limits.append((max_duration * info.sample_rate, f"{max_duration:g} s"))
    frames, limit = min(limits)
    return _Budget(max(int(frames), info.frames), limit)


def _allocate(path: Path, channels: int, frames: int) -> np.ndarray:
    try:
        return np.empty((channels, frames), np.float32)
    except MemoryError:
        raise AudioFileError(
            path,
            f"would decode to {format_gib(channels * frames * FLOAT_BYTES)} "
            f"({channels} ch × {_frame_count(frames)}), more memory than this process can allocate",
        ) from None


def _blocks(handle: sf.SoundFile, path: Path, stop: int) -> Iterator[np.ndarray]:
    """Decode up to ``stop`` frames as ``(frames, channels)`` float32 blocks, each checked finite.

    The blocks share one buffer: use each before asking for the next.
    """
    block = np.empty((max(1, _BLOCK_SAMPLES // handle.channels), handle.channels), np.float32)
    done = 0
    while done < stop:
        wanted = min(len(block), stop - done)
        try:
            chunk = handle.read(wanted, dtype="float32", always_2d=True, out=block[:wanted])
        except Exception as exc:  # a header can parse while the data behind it does not decode
            raise AudioFileError(path, f"could not be decoded ({decode_reason(exc)})") from exc
        if len(chunk) == 0:
            return
        if not np.isfinite(chunk).all():
            raise AudioFileError(path, "contains non-finite samples (NaN or Inf)")
        done += len(chunk)
        yield chunk


def _downmix(block: np.ndarray, *, out: np.ndarray) -> None:
    """The mean of a ``(frames, channels)`` block's channels, written into ``out``.

    Channel by channel, in order, then divided: the same float32 sums as
    :func:`to_channels`, and much faster than a mean over the short channel axis.
    """
    np.copyto(out, block[:, 0])
    for channel in range(1, block.shape[1]):
        out += block[:, channel]
    out /= block.shape[1]


def _decode(
    handle: sf.SoundFile, path: Path, info: AudioInfo, *, mono: bool, budget: _Budget, stop: int | None = None
) -> np.ndarray:
    """The file (its first ``stop`` frames, if given) as ``(channels, frames)`` float32, never more than ``budget.frames`` long."""
    out_channels = 1 if mono else info.channels
    audio = _allocate(path, out_channels, min(info.frames, budget.frames))
    filled = 0
    for chunk in _blocks(handle, path, budget.frames + 1 if stop is None else min(stop, budget.frames)):
        end = filled + len(chunk)
        if end > audio.shape[1]:
            if end > budget.frames:
                raise AudioFileError(
                    path,
                    f"decodes to more than the {info.frames:,} frames its header declares, "
                    f"past the {budget.limit} limit",
                )
            grown = _allocate(path, out_channels, min(budget.frames, max(end, 2 * audio.shape[1])))
            grown[:, :filled] = audio[:, :filled]
            audio = grown
        if out_channels < info.channels:
            _downmix(chunk, out=audio[0, filled:end])
        else:
            audio[:, filled:end] = chunk.T
        filled = end
    if filled == 0:
        raise AudioFileError(path, "contains no audio samples (0 frames)")
    wanted = info.frames if stop is None else min(stop, info.frames)
    if filled < wanted and info.format in _EXACT_LENGTH_FORMATS:
        logger.warning(
            "%s: holds %.2f s of the %.2f s its header declares (the file is cut short); using what is there",
            path, filled / info.sample_rate, wanted / info.sample_rate,
        )
    elif stop is None and info.format == "WAV" and wav_is_truncated(path):
        logger.warning("%s: the WAV file is cut short (its data chunk runs past the end); using what is there", path)
    # A header that overstated the length: keep only what decoded, without the spare room.
    return audio if filled == audio.shape[1] else audio[:, :filled].copy()


def _frames_within(seconds: float, info: AudioInfo) -> int:
    """The file's first ``seconds`` in frames, at least 1 and at most all (no overflow for 1e308 s)."""
    wanted = seconds * info.sample_rate
    return info.frames if wanted >= info.frames else max(1, math.ceil(wanted))


def probe_audio(
    path: PathLike,
    *,
    max_duration: float | None = None,
    seconds: float = 2.0,
    max_bytes: int = MAX_DECODED_BYTES,
) -> AudioInfo:
    """Check that a file would load, decoding only its first ``seconds``.

    Applies every check :func:`load_audio` makes from the header (sample rate, channels,
    duration, decoded size against ``max_bytes`` and free memory), then decodes a bounded
    slice to prove that the data behind the header decodes to finite samples. A file that
    passes can still fail later in its remaining data; :func:`load_audio` checks it all.

    Parameters
    ----------
    path : str or os.PathLike
        Any file soundfile reads (WAV, FLAC, OGG, MP3, AIFF, ...).
    max_duration : float or None
        Refuse files longer than this many seconds; None for no limit.
    seconds : float
        How much of the start to decode, in seconds.
    max_bytes : int
        Refuse files that would decode to more than this many bytes of float32 samples.

    Returns
    -------
    AudioInfo
        The header's fields.

    Raises
    ------
    AudioFileError
        As :func:`load_audio`: missing, unreadable, empty, over a limit, or NaN/Inf in the
        decoded slice.
    ConfigError
        If ``max_duration`` or ``seconds`` is not a positive number, or ``max_bytes`` not a
        positive integer.

    Examples
    --------
    >>> probe_audio("upload.flac", max_duration=1200).duration  # doctest: +SKIP
    4.5
    """
    if max_duration is not None:
        max_duration = positive_seconds("max_duration", max_duration)
    seconds = positive_seconds("seconds", seconds)
    max_bytes = positive_int("max_bytes", max_bytes)
    path = as_path(path)
    with _open_for_reading(path) as handle:
        info = _header(path, handle)
        _decode_budget(
            path, info, out_channels=info.channels, sample_rate=None, max_duration=max_duration, max_bytes=max_bytes
        )
        stop = _frames_within(seconds, info)
        decoded = sum(len(chunk) for chunk in _blocks(handle, path, stop))
    if decoded == 0:
        raise AudioFileError(path, "contains no audio samples (0 frames)")
    return info


def load_audio(
    path: PathLike,
    sample_rate: int | None = None,
    *,
    mono: bool = False,
    max_duration: float | None = None,
    max_bytes: int = MAX_DECODED_BYTES,
    max_seconds: float | None = None,
) -> tuple[np.ndarray, int]:
    """Read an audio file as a float32 ``(channels, samples)`` waveform.

    What the header promises is checked before anything is decoded: the sample rate (at
    most ``MAX_SAMPLE_RATE``), the channels (at most ``MAX_CHANNELS``), the duration, and
    the memory the result takes (float32 samples, of one channel when ``mono``, plus the
    resampled copy) against ``max_bytes`` and the memory free. The data is then decoded
    block by block into one array, and never past those limits, whatever the header said.

    Parameters
    ----------
    path : str or os.PathLike
        Any file soundfile reads (WAV, FLAC, OGG, MP3, AIFF, ...).
    sample_rate : int or None
        Resample to this rate (soxr high quality) if it differs from the file's;
        None keeps the file's rate.
    mono : bool
        Average all channels into one.
    max_duration : float or None
        Refuse files longer than this many seconds (checked from the header, before
        decoding); None for no limit.
    max_bytes : int
        Refuse files that would take more than this many bytes once decoded (and
        resampled); default ``MAX_DECODED_BYTES`` (2 GiB).
    max_seconds : float or None
        Decode only the file's first ``max_seconds``; the rest is never read. The duration
        and memory checks then apply to that head, so a long file is not refused for a
        length that is never decoded. None reads the whole file.

    Returns
    -------
    audio : np.ndarray [shape=(channels, samples), dtype=float32]
        The samples, nominally in [-1, 1].
    sample_rate : int
        The rate of ``audio``: ``sample_rate`` if given, else the file's.

    Raises
    ------
    AudioFileError
        If the path does not exist, is a folder, cannot be decoded, holds no samples,
        holds NaN or Inf, is longer than ``max_duration``, has more than 64 channels, a
        sample rate over 384 kHz, or would decode to more than ``max_bytes`` or than the
        memory free.
    ConfigError
        If ``sample_rate`` or ``max_bytes`` is not a positive integer or ``max_duration`` or
        ``max_seconds`` not a positive number.

    See Also
    --------
    audio_info : the header alone.
    probe_audio : the header's checks and the first seconds.
    save_audio : the inverse.

    Examples
    --------
    >>> audio, rate = load_audio("violin.wav", 22050, mono=True)  # doctest: +SKIP
    >>> audio.shape, rate  # doctest: +SKIP
    ((1, 99225), 22050)
    """
    if sample_rate is not None:
        sample_rate = positive_int("sample_rate", sample_rate)
    if max_duration is not None:
        max_duration = positive_seconds("max_duration", max_duration)
    max_bytes = positive_int("max_bytes", max_bytes)
    if max_seconds is not None:
        max_seconds = positive_seconds("max_seconds", max_seconds)
    path = as_path(path)
    with _open_for_reading(path) as handle:
        info = _header(path, handle)
        if max_seconds is not None:
            info = replace(info, frames=_frames_within(max_seconds, info))
        budget = _decode_budget(
            path,
            info,
            out_channels=1 if mono else info.channels,
            sample_rate=sample_rate,
            max_duration=max_duration,
            max_bytes=max_bytes,
        )
        audio = _decode(handle, path, info, mono=mono, budget=budget, stop=None if max_seconds is None else info.frames)
    if sample_rate is not None and sample_rate != info.sample_rate:
        return resample(audio, info.sample_rate, sample_rate), sample_rate
    return audio, info.sample_rate

