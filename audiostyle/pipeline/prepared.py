"""A style made once: its audio, the feature network and the style statistics under it."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..config import PRESETS, StyleConfig, resolve_device
from ..dsp.stft import analyze
from ..errors import ConfigError
from ..networks import build_network
from ..objective import (
    EnvelopeNetwork,
    FineStructureStatistics,
    SourceFilterSplit,
    StyleStatistics,
    TextureStatistics,
)
from ..objective.source_filter import envelope_coefficients
from .memory import check_memory
from .output import StyleSpectra
from .sources import Audio, AudioSource, load_styles, normalise_styles
from .view import styles_play_notes

__all__ = ["PreparedStyle", "prepare_style", "style_targets"]


def style_targets(
    log_magnitudes: list[torch.Tensor],
    blend: list[float],
    config: StyleConfig,
    device: torch.device,
    *,
    view: str | None = None,
    base_network: torch.nn.Module | None = None,
) -> tuple[torch.nn.Module, StyleStatistics, TextureStatistics | None]:
    """The feature network and the style's statistics under it: what every content reuses.

    ``view`` (default ``config.style_view``) is ``"spectrum"`` or ``"envelope"``; with the
    envelope view the network is an :class:`~audiostyle.objective.EnvelopeNetwork` and both
    statistics are of the styles' spectral envelopes. ``base_network``, the spectrum view's
    network built with these settings, is reused instead of building it again.
    """
    view = config.style_view if view is None else view
    if view not in ("spectrum", "envelope"):
        raise ConfigError(f"view={view!r} must be 'spectrum' or 'envelope' (choose_view resolves 'auto')")
    network = base_network if base_network is not None else build_network(
        config.network,
        n_freq=config.n_fft // 2 + 1,
        sample_rate=config.sample_rate,
        n_fft=config.n_fft,
        filters=config.filters,
        kernel_widths=config.kernel_widths,
        kernel_dilations=config.kernel_dilations,
        seed=config.seed,
        padding="circular" if config.loop else "same",
        mel_bands=config.mel_bands,
    ).to(device)
    texture_sources = log_magnitudes
    if view == "envelope":
        split = SourceFilterSplit(
            config.n_fft // 2 + 1,
            envelope_coefficients(config.sample_rate, config.envelope_resolution_hz),
            config.split_floor,
        )
        network = EnvelopeNetwork(network, split).to(device)
        texture_sources = [network.envelope_log_magnitude(m) for m in log_magnitudes]
        if config.fine_structure_weight > 0:
            network.fine_statistics = FineStructureStatistics.from_log_magnitudes(
                split, log_magnitudes, blend, sample_rate=config.sample_rate, n_fft=config.n_fft,
                weight=config.fine_structure_weight,
            )
    style_stats = StyleStatistics.from_log_magnitudes(network, log_magnitudes, blend)
    texture_stats = (
        TextureStatistics.from_log_magnitudes(
            texture_sources,
            blend,
            sample_rate=config.sample_rate,
            n_fft=config.n_fft,
            hop_length=config.hop_length,
        )
        if config.texture_weight > 0
        else None
    )
    return network, style_stats, texture_stats


#: The fields a PreparedStyle's network and statistics depend on.
PREPARED_FIELDS = (
    "sample_rate", "n_fft", "hop_length", "network", "filters", "kernel_widths", "kernel_dilations", "mel_bands",
    "seed", "loop", "style_view", "envelope_resolution_hz", "split_floor", "fine_structure_weight",
)


class PreparedStyle(torch.nn.Module):
    """A style's loaded audio, the feature network and the style statistics, made once.

    Build with :func:`prepare_style` and pass to :func:`stylize` as ``prepared=`` to stylize
    many contents with one style without rebuilding the network or recomputing the Grams.
    A module: the network and the statistics are its submodules, so ``.to(device)`` moves
    them all, in place. Picklable, so it can be sent to worker processes.

    With ``config.style_view == "auto"`` the attributes below are the spectrum view's, and a
    style that plays notes makes its envelope view's targets the first time a content that
    plays notes asks for them (:meth:`targets`).

    Attributes
    ----------
    styles : list of Audio
        The style inputs at the working rate.
    network : torch.nn.Module
    statistics : StyleStatistics
    texture : TextureStatistics or None
    config : StyleConfig
        The settings it was made with.
    weights : tuple of float
        The styles' blend weights (empty: equal).
    view : str
        The view of ``network``, ``statistics`` and ``texture``: ``"spectrum"`` or
        ``"envelope"``.
    plays_notes : bool or None
        With ``style_view="auto"``, whether the style (the blend as a whole) plays notes;
        None otherwise.
    """

    def __init__(
        self,
        styles: Sequence[Audio],
        network: torch.nn.Module,
        statistics: StyleStatistics,
        texture: TextureStatistics | None,
        config: StyleConfig,
        weights: Sequence[float] = (),
        plays_notes: bool | None = None,
    ) -> None:
        super().__init__()
        self.styles = list(styles)
        self.network = network
        self.statistics = statistics
        self.texture = texture
        self.config = config
        self.weights = tuple(weights)
        self.plays_notes = plays_notes
        self.view = "spectrum" if config.style_view == "auto" else config.style_view
        self.other_views = torch.nn.ModuleDict()
        self.spectra = StyleSpectra(styles, self.blend)

    def targets(self, view: str) -> tuple[torch.nn.Module, StyleStatistics, TextureStatistics | None]:
        """The network and statistics of ``view`` (``"spectrum"`` or ``"envelope"``).

        Raises
        ------
        ConfigError
            ``view`` is neither this style's own view nor, with ``style_view="auto"``, the
            other one.
        """
        if view == self.view:
            return self.network, self.statistics, self.texture
        if self.config.style_view != "auto" or view not in ("spectrum", "envelope"):
            raise ConfigError(f"prepared style was made for style_view={self.config.style_view!r}, not {view!r}")
        if view not in self.other_views:
            device = self.statistics.layers[0].gram.device
            specs = _analyze_styles(self.styles, self.config, device)
            network, statistics, texture = style_targets(
                specs, self.blend, self.config, device, view=view, base_network=self.network
            )
            self.other_views[view] = _Targets(network, statistics, texture)
        held = self.other_views[view]
        return held.network, held.statistics, held.texture

    @property
    def blend(self) -> list[float]:
        """The styles' blend weights, equal ones when none were given."""
        return list(self.weights) or [1.0] * len(self.styles)

    @property
    def names(self) -> tuple[str, ...]:
        """The style inputs' names (file paths, or ``<style array>``)."""
        return tuple(audio.name for audio in self.styles)

    def check(self, config: StyleConfig) -> None:
        """Raise ConfigError unless it was made with settings compatible with ``config``."""
        changed = [name for name in PREPARED_FIELDS if getattr(config, name) != getattr(self.config, name)]
        if config.texture_weight > 0 and self.texture is None:
            changed.append("texture_weight")
        if changed:
            raise ConfigError(
                f"prepared style was made with other settings ({', '.join(changed)}); "
                "call prepare_style(style, config) with this config"
            )


def prepare_style(
    style: AudioSource | Sequence[AudioSource] | Sequence[tuple[AudioSource, float]],
    config: StyleConfig | None = None,
    *,
    style_weights: Sequence[float] | None = None,
) -> PreparedStyle:
    """Load a style (or blend), build the feature network and compute the style statistics.

    Parameters
    ----------
    style, style_weights
        As for :func:`stylize`.
    config : StyleConfig, optional
        Settings (default: ``PRESETS["default"]``); only the analysis and network settings
        matter here.

    Returns
    -------
    PreparedStyle
        Reusable by :func:`stylize` (``prepared=``) for every content with these settings.

    Raises
    ------
    AudioFileError
        A style is missing, unreadable, empty, too short, too long or silent.
    ConfigError
        A bad setting.

    Examples
    --------
    >>> prepared = prepare_style("samples/cello.flac", PRESETS["fast"])  # doctest: +SKIP
    >>> results = [stylize(path, None, PRESETS["fast"], prepared=prepared) for path in paths]  # doctest: +SKIP
    """
    config = PRESETS["default"] if config is None else config
    if not isinstance(config, StyleConfig):
        raise ConfigError(f"config must be a StyleConfig; got {type(config).__name__}")
    device = resolve_device(config.device)
    sources, blend = normalise_styles(style, style_weights)
    style_audio = load_styles(sources, config)
    # As stylize does, before the analysis: the styles' part (a content of one frame adds nothing).
    check_memory(config, (1, config.n_fft), [audio.waveform for audio in style_audio], device=device)
    auto = config.style_view == "auto"
    network, statistics, texture = style_targets(
        _analyze_styles(style_audio, config, device), blend, config, device, view="spectrum" if auto else None
    )
    return PreparedStyle(
        styles=style_audio,
        network=network,
        statistics=statistics,
        texture=texture,
        config=config,
        weights=tuple(blend),
        plays_notes=styles_play_notes(style_audio, blend, config) if auto else None,
    )


class _Targets(torch.nn.Module):
    """One more view's network and statistics, held as submodules so they move with the style."""

    def __init__(self, network: torch.nn.Module, statistics: StyleStatistics, texture: TextureStatistics | None) -> None:
        super().__init__()
        self.network = network
        self.statistics = statistics
        self.texture = texture


def _analyze_styles(styles: Sequence[Audio], config: StyleConfig, device: torch.device) -> list[torch.Tensor]:
    """The styles' log-magnitude spectrograms at the working rate."""
    analysis = dict(n_fft=config.n_fft, hop_length=config.hop_length, device=device)
    return [analyze(audio.waveform, config.sample_rate, **analysis).log_magnitude for audio in styles]
