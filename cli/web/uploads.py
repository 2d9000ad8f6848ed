"""Uploaded files: stored in bounded chunks under the server's names, checked before any decode.

A client's file name is only ever a display label; what is stored is named by the server. An
upload is checked from its header first: a small file can promise gigabytes of samples (a
decompression bomb), and only the header and the first seconds are decoded.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from .errors import ApiError

if TYPE_CHECKING:
    from audiostyle import StyleConfig
    from audiostyle.io import AudioInfo

__all__ = ["MAX_STUDIO_CHANNELS", "label", "store_upload", "sniff"]

_CHUNK = 1024 * 1024
_SAFE_LABEL = re.compile(r"[^A-Za-z0-9._ -]+")
#: Decoded samples are float32.
_SAMPLE_BYTES = 4
#: Every result is also offered as FLAC, which holds at most 8 channels.
MAX_STUDIO_CHANNELS = 8


def label(name: str | None, fallback: str) -> str:
    """A client's file name reduced to a harmless display label (never a path)."""
    stem = _SAFE_LABEL.sub("_", Path(name or "").name).strip(" .")[:80]
    return stem or fallback


def store_upload(source: BinaryIO, target: Path, *, limit: int, role: str) -> Path:
    """Copy ``source`` to ``target`` in chunks, refusing more than ``limit`` bytes or none."""
    written = 0
    with open(target, "wb") as out:
        while chunk := source.read(_CHUNK):
            written += len(chunk)
            if written > limit:
                raise ApiError(413, "too_large", f"{role}: larger than the upload limit of {limit} bytes")
            out.write(chunk)
    if written == 0:
        raise ApiError(400, "empty_upload", f"{role}: the uploaded file is empty")
    return target


def _over_limits(info: "AudioInfo", config: "StyleConfig") -> bool:
    """True when a header promises more than the decoder accepts (a 413, not a broken file)."""
    from audiostyle.io import MAX_CHANNELS, MAX_DECODED_BYTES, MAX_SAMPLE_RATE

    decoded = info.frames * info.channels * _SAMPLE_BYTES
    return (
        info.sample_rate > MAX_SAMPLE_RATE
        or info.channels > MAX_CHANNELS
        or info.duration > config.max_duration
        or decoded > MAX_DECODED_BYTES
    )


def sniff(path: Path, name: str, config: "StyleConfig") -> "AudioInfo":
    """Check that an upload is decodable audio, complete, long enough to analyse and of at
    most :data:`MAX_STUDIO_CHANNELS` channels; its header's description."""
    from audiostyle import AudioFileError
    from audiostyle.io import audio_info, probe_audio, wav_is_truncated

    try:
        info = audio_info(path)
    except AudioFileError as error:
        raise ApiError(415, "unsupported_media", f"{name} {error.problem}") from None
    if wav_is_truncated(path):
        raise ApiError(422, "truncated_audio", f"{name}: the WAV file is truncated (its data chunk is cut off)")
    if info.channels > MAX_STUDIO_CHANNELS:
        raise ApiError(
            422, "bad_audio",
            f"{name}: {info.channels} channels; the studio takes at most {MAX_STUDIO_CHANNELS} (the command line takes more)",
        )
    try:
        probe_audio(path, max_duration=config.max_duration)
    except AudioFileError as error:
        if _over_limits(info, config):
            raise ApiError(413, "too_large", f"{name}: {error.problem}") from None
        raise ApiError(422, "bad_audio", f"{name}: {error.problem}") from None
    if info.frames / info.sample_rate * config.sample_rate < config.n_fft:
        raise ApiError(
            422, "bad_audio", f"{name}: too short ({info.duration:.3f} s); at least {config.n_fft / config.sample_rate:.3f} s is needed"
        )
    return info
