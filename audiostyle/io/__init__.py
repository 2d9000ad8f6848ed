"""The file boundary (public): audio files <-> float32 ``(channels, samples)`` waveforms.

Everything above this package sees waveforms as numpy arrays shaped ``(channels, samples)``;
soundfile's ``(samples, channels)`` layout never leaves it. Every problem with a file becomes
an :class:`~audiostyle.errors.AudioFileError` that names the file, and every bad parameter a
:class:`~audiostyle.errors.ConfigError`. Reads are bounded by what the header promises
(``MAX_SAMPLE_RATE``, ``MAX_CHANNELS``, ``MAX_DECODED_BYTES``, ``max_duration``) before any
sample is decoded; writes go to a temporary file that replaces the target at the end.
"""

from .formats import (
    MAX_CHANNELS,
    MAX_DECODED_BYTES,
    MAX_SAMPLE_RATE,
    READABLE_FORMATS,
    WRITABLE_EXTENSIONS,
    AudioInfo,
    check_encodable,
    output_format,
)
from .read import audio_info, load_audio, probe_audio, wav_is_truncated
from .write import atomic_write, check_output_path, save_audio

__all__ = [
    "MAX_CHANNELS",
    "MAX_DECODED_BYTES",
    "MAX_SAMPLE_RATE",
    "READABLE_FORMATS",
    "WRITABLE_EXTENSIONS",
    "AudioInfo",
    "atomic_write",
    "audio_info",
    "check_encodable",
    "check_output_path",
    "load_audio",
    "output_format",
    "probe_audio",
    "save_audio",
    "wav_is_truncated",
]
