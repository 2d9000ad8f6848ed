"""Which style view a run reads: the configured one, or with ``"auto"`` the one its inputs call for."""

from __future__ import annotations

from collections.abc import Sequence

from ..config import StyleConfig
from ..dsp.notes import NoteEvidence, blend_evidence, note_evidence
from .sources import Audio

__all__ = ["choose_view", "plays_notes", "styles_play_notes"]


def plays_notes(audio: Audio, config: StyleConfig) -> bool:
    """Whether one input plays notes (:mod:`audiostyle.dsp.notes`), analysed at the working rate."""
    return _evidence(audio, config).plays_notes


def styles_play_notes(styles: Sequence[Audio], blend: Sequence[float], config: StyleConfig) -> bool:
    """Whether a style, or a blend of styles taken as a whole, plays notes."""
    return blend_evidence([_evidence(audio, config) for audio in styles], blend).plays_notes


def _evidence(audio: Audio, config: StyleConfig) -> NoteEvidence:
    # From the original: content stylized in segments has no working-rate copy, and only a
    # bounded excerpt is resampled.
    return note_evidence(
        audio.original,
        audio.original_rate,
        analysis_rate=config.sample_rate,
        n_fft=config.n_fft,
        hop_length=config.hop_length,
    )


def choose_view(config: StyleConfig, content: Audio | None, styles_have_notes: bool | None) -> str:
    """The view a run reads: ``config.style_view``, or for ``"auto"`` the envelope view when
    both the content and the styles play notes and the spectrum view otherwise.

    ``styles_have_notes`` may be None unless the view is ``"auto"``. A texture (no content)
    has no notes of its own to keep, so it reads the whole spectrum.
    """
    if config.style_view != "auto":
        return config.style_view
    if content is None or not styles_have_notes:
        return "spectrum"
    return "envelope" if plays_notes(content, config) else "spectrum"
