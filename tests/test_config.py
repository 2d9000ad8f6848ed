"""StyleConfig validation field by field, presets, replace, digest, device resolution."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from audiostyle.config import PRESETS, StyleConfig, get_preset, resolve_device
from audiostyle.errors import ConfigError

NAN, INF = float("nan"), float("inf")
FIELDS = [f.name for f in dataclasses.fields(StyleConfig)]

# For each field, values that must be refused with a ConfigError naming the field: wrong type,
# bool for int, negative, zero, NaN, inf, too big, unknown string, as far as each applies.
INVALID = {
    "sample_rate": [7999, 192001, 0, -22050, 22050.0, True, "22050", None, NAN],
    "n_fft": [8, 0, -2048, 2**17, 2048.0, True, "2048", None, NAN, INF],
    "hop_length": [0, -1, 1025, 4096, 512.0, True, "512", None, NAN, INF],
    "network": ["", None, 1, True],
    "filters": [0, -1, 16385, 2, 64.0, True, "64", None, NAN, INF],
    "kernel_widths": [(), (2,), (3, 4), (0,), (-3,), (257,), (3.0,), (True,), ("3",), 3, "3", None, (3,) * 17],
    "kernel_dilations": [(1, 3), (1, 1, 1, 1), (0, 1, 1), (1, 1, 65), (1.0, 1, 1), (True, 1, 1), ("1", 1, 1), 3, "3", None],
    "mel_bands": [-1, 16385, 64.0, True, "64", None, NAN],
    "seed": [-1, 2**63, 1.5, True, "0", None, NAN],
    "content_weight": [-1.0, -1e-9, 2e9, NAN, INF, -INF, True, "1", None],
    "style_weight": [-1.0, 2e9, NAN, INF, -INF, True, "100", None],
    "iterations": [0, -1, 100001, 1.5, True, "60", None, NAN, INF],
    "solver": ["sgd", "LBFGS", "", None, 1],
    "learning_rate": [0, 0.0, -1.0, 1001.0, NAN, INF, True, "1", None],
    "tolerance": [-1e-4, 1, 1.5, NAN, INF, True, "0", None],
    "history_size": [0, -1, 101, 5.0, True, "5", None],
    "init": ["zeros", "Content", "", None, 0],
    "griffin_lim_iters": [-1, 10001, 1.5, True, "64", None, NAN],
    "momentum": [-0.1, 1.5, 2, NAN, INF, True, "0.9", None],
    "phase_init": ["zeros", "Random", "", None, 0],
    "loudness": ["lufs", "RMS", "", None, 0],
    "max_duration": [0, 0.0, -1.0, NAN, INF, True, "10", None],
    "device": [None, 0, b"cpu"],
    "strength": [-0.1, 1.01, NAN, INF, True, "0.5", None],
    "texture_weight": [-1.0, 2e9, NAN, INF, True, "1", None],
    "envelope_weight": [-1.0, 2e9, NAN, INF, True, "1", None],
    "refine_steps": [-1, 10001, 2.0, True, "20", None],
    "loop": [1, 0, "yes", None],
    "full_band": [1, 0, "yes", None],
    "style_view": ["notes", 1],
    "envelope_resolution_hz": [0, -1, float("nan"), 20000],
    "split_floor": [0, 101, float("nan")],
    "fine_structure_weight": [-1, float("nan"), 2e9],
    "onset_weight": [-1, float("nan"), 2e9],
    "pre_echo_db": [-1, float("nan"), 61, "18"],
    "colour_match": [-0.1, 1.5, float("nan"), "0.5"],
    "band_ceiling_db": [-1, 41, float("nan"), INF, True, "6"],
    "segment_seconds": [0, 0.5, 3601, -30.0, NAN, INF, True, "30", None],
}

# A valid, output-changing new value per field (device and max_duration do not change the output).
CHANGED = {
    "sample_rate": 16000,
    "n_fft": 1024,
    "hop_length": 256,
    "network": "pretrained",
    "filters": 1024,
    "kernel_widths": (3, 7),
    "kernel_dilations": (1, 2, 4),
    "mel_bands": 128,
    "seed": 1,
    "content_weight": 2.0,
    "style_weight": 10.0,
    "iterations": 61,
    "solver": "adam",
    "learning_rate": 0.5,
    "tolerance": 0.0,
    "history_size": 3,
    "init": "noise",
    "griffin_lim_iters": 65,
    "momentum": 0.0,
    "phase_init": "random",
    "loudness": "none",
    "strength": 0.7,
    "loop": True,
    "full_band": False,
    "segment_seconds": 10.0,
    "texture_weight": 3.0,
    "envelope_weight": 10.0,
    "refine_steps": 5,
    "style_view": "envelope",
    "onset_weight": 2.0,
    "pre_echo_db": 12.0,
    "colour_match": 0.25,
    "band_ceiling_db": 6.0,
}
#: Settings of the envelope view only: they change the output (and digest) with style_view="envelope".
ENVELOPE_ONLY = {"envelope_resolution_hz": 400.0, "split_floor": 0.1, "fine_structure_weight": 10.0}


def _cases():
    for field, values in INVALID.items():
        for value in values:
            yield pytest.param(field, value, id=f"{field}={value!r}"[:60])


def test_every_field_has_invalid_values():
    assert set(INVALID) == set(FIELDS)
    assert set(CHANGED) | set(ENVELOPE_ONLY) == set(FIELDS) - {"device", "max_duration"}


@pytest.mark.parametrize("field, value", list(_cases()))
def test_invalid_value_names_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        StyleConfig(**{field: value})
    with pytest.raises(ConfigError, match=field):
        StyleConfig().replace(**{field: value})


@pytest.mark.parametrize(
    "changes",
    [dict(content_weight=0.0, style_weight=0.0), dict(content_weight=0, style_weight=0)],
)
def test_both_weights_zero(changes):
    with pytest.raises(ConfigError, match="content_weight and style_weight"):
        StyleConfig(**changes)


@pytest.mark.parametrize(
    "changes",
    [
        dict(sample_rate=8000), dict(sample_rate=192000), dict(n_fft=16, hop_length=8),
        dict(n_fft=65536, hop_length=1), dict(filters=1, kernel_widths=(1,)), dict(filters=16384),
        dict(kernel_widths=(255,) * 16), dict(seed=2**63 - 1), dict(content_weight=0.0),
        dict(style_weight=0), dict(content_weight=1e9, style_weight=1e9), dict(iterations=100000),
        dict(learning_rate=1000), dict(learning_rate=1e-9), dict(tolerance=0), dict(tolerance=0.999),
        dict(griffin_lim_iters=0), dict(griffin_lim_iters=10000), dict(momentum=0), dict(momentum=1.49),
        dict(max_duration=0.001), dict(device="cpu"), dict(device="cuda:1"), dict(network="weights.safetensors"),
    ],
    ids=repr,
)
def test_boundary_values_are_valid(changes):
    config = StyleConfig(**changes)
    for field, value in changes.items():
        assert getattr(config, field) == value


def test_kernel_widths_list_becomes_tuple():
    config = StyleConfig(kernel_widths=[3, 5])
    assert config.kernel_widths == (3, 5)
    assert config == StyleConfig(kernel_widths=(3, 5))
    assert hash(config) == hash(StyleConfig(kernel_widths=(3, 5)))


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        StyleConfig().n_fft = 1024  # type: ignore[misc]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_are_valid_configs(name):
    preset = PRESETS[name]
    assert isinstance(preset, StyleConfig)
    assert get_preset(name) is preset
    # Validation passes again from the plain dict (what the CLI writes and reads back).
    assert StyleConfig(**preset.to_dict()) == preset


def test_classic_preset_follows_the_paper():
    classic = get_preset("classic")
    assert classic.filters == 4096
    assert classic.kernel_widths == (11,)
    assert classic.init == "noise"
    assert classic.griffin_lim_iters == 500
    assert classic.momentum == 0
    assert classic.phase_init == "random"


def test_default_preset_is_the_tuned_config():
    # StyleConfig() holds neutral engine defaults; the preset adds the tuned balance.
    assert get_preset("default") == StyleConfig(
        filters=3072, kernel_widths=(3, 3), kernel_dilations=(1, 3), mel_bands=256, style_weight=600.0,
        texture_weight=2.0, envelope_weight=5.0, iterations=30, griffin_lim_iters=8, refine_steps=20, history_size=5,
        pre_echo_db=18.0, colour_match=0.5, band_ceiling_db=6.0, style_view="auto", fine_structure_weight=30.0,
    )


def test_get_preset_unknown_lists_the_presets():
    with pytest.raises(ConfigError, match="nope") as error:
        get_preset("nope")
    for name in PRESETS:
        assert name in str(error.value)


def test_replace():
    base = StyleConfig()
    changed = base.replace(n_fft=1024, hop_length=256, kernel_widths=[5])
    assert (changed.n_fft, changed.hop_length, changed.kernel_widths) == (1024, 256, (5,))
    assert (base.n_fft, base.hop_length) == (2048, 512)
    assert base.replace() == base


def test_new_kernel_widths_drop_the_old_dilations():
    dilated = StyleConfig(kernel_widths=(3, 3), kernel_dilations=(1, 3))
    assert dilated.replace(kernel_widths=(3, 7, 15)).kernel_dilations == ()
    assert dilated.replace(kernel_widths=(5, 5), kernel_dilations=[2, 4]).kernel_dilations == (2, 4)
    assert dilated.replace(seed=3).kernel_dilations == (1, 3)


def test_fields_added_later_keep_old_digests():
    # Digests from before kernel_dilations and history_size existed, as batch manifests hold them.
    assert StyleConfig(full_band=False).digest() == "7fd7f0e3590ea037"
    assert PRESETS["classic"].digest() == "3bb8ea06d6a7db38"
    assert StyleConfig(history_size=5).digest() != StyleConfig().digest()
    # Full-band output changes what 44.1/48 kHz content gives: a new digest, so batch redoes it.
    assert StyleConfig().digest() != StyleConfig(full_band=False).digest()


def test_undilated_kernels_have_one_spelling():
    # All-1 dilations mean none: equal configs, equal digests (so batch manifests still match).
    assert StyleConfig(kernel_dilations=(1, 1, 1)) == StyleConfig()
    assert StyleConfig(kernel_dilations=[1, 1, 1]).digest() == StyleConfig().digest()


@pytest.mark.parametrize("changes", [dict(nfft=1024), dict(n_fft=1024, colour="red"), dict(padding="circular")])
def test_replace_unknown_field(changes):
    with pytest.raises(ConfigError, match="unknown") as error:
        StyleConfig().replace(**changes)
    for name in set(changes) - set(FIELDS):
        assert name in str(error.value)


def test_to_dict_is_plain():
    data = StyleConfig().to_dict()
    assert set(data) == set(FIELDS)
    assert data["kernel_widths"] == [3, 7, 15]


def test_digest_is_stable():
    first, second = StyleConfig(), StyleConfig()
    assert first.digest() == second.digest() == first.digest()
    assert len(first.digest()) == 16
    int(first.digest(), 16)
    assert StyleConfig(kernel_widths=[3, 7, 15]).digest() == first.digest()


@pytest.mark.parametrize("field", sorted(CHANGED))
def test_digest_changes_with_each_output_field(field):
    base = StyleConfig()
    changed = base.replace(**{field: CHANGED[field]})
    assert getattr(changed, field) != getattr(base, field)
    assert changed.digest() != base.digest()


@pytest.mark.parametrize("field", sorted(ENVELOPE_ONLY))
def test_envelope_settings_change_the_digest_only_where_the_envelope_view_may_run(field):
    spectrum = StyleConfig()
    assert spectrum.replace(**{field: ENVELOPE_ONLY[field]}).digest() == spectrum.digest()
    for view in ("envelope", "auto"):
        config = StyleConfig(style_view=view)
        assert config.replace(**{field: ENVELOPE_ONLY[field]}).digest() != config.digest()


def test_the_band_ceiling_changes_the_digest_only_where_the_spectrum_view_may_run():
    for view in ("spectrum", "auto"):
        config = StyleConfig(style_view=view)
        assert config.replace(band_ceiling_db=6.0).digest() != config.digest()
    envelope = StyleConfig(style_view="envelope")
    assert envelope.replace(band_ceiling_db=6.0).digest() == envelope.digest()


@pytest.mark.parametrize("changes", [dict(device="cpu"), dict(device="cuda:3"), dict(max_duration=5.0)])
def test_digest_ignores_device_and_input_limit(changes):
    assert StyleConfig(**changes).digest() == StyleConfig().digest()


def test_numpy_integer_stft_settings_are_refused_or_usable():
    try:
        config = StyleConfig(n_fft=np.int64(1024), hop_length=np.int64(256))
    except ConfigError:
        return
    assert config.digest() == StyleConfig(n_fft=1024, hop_length=256).digest()


@pytest.mark.parametrize("field", ["content_weight", "style_weight", "learning_rate", "tolerance", "momentum", "max_duration"])
def test_huge_integer_is_config_error(field):
    with pytest.raises(ConfigError, match=field):
        StyleConfig(**{field: 10**400})


def test_resolve_device_auto():
    device = resolve_device("auto")
    assert isinstance(device, torch.device)
    if torch.cuda.is_available():
        assert device.type == "cuda"
    elif device.type != "mps":
        assert device.type == "cpu"
    assert resolve_device() == device


def test_resolve_device_cpu_and_passthrough():
    assert resolve_device("cpu") == torch.device("cpu")
    given = torch.device("cpu")
    assert resolve_device(given) is given
    assert torch.zeros(1, device=resolve_device("cpu")).device.type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:1"])
def test_resolve_device_cuda_unavailable(name):
    with pytest.raises(ConfigError, match="CUDA"):
        resolve_device(name)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_resolve_device_cuda_available():
    assert resolve_device("cuda").type == "cuda"
    assert resolve_device("cuda:0") == torch.device("cuda:0")


@pytest.mark.skipif(
    getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available(),
    reason="MPS is available here",
)
def test_resolve_device_mps_unavailable():
    with pytest.raises(ConfigError, match="MPS"):
        resolve_device("mps")


@pytest.mark.parametrize("name", ["nonsense", "", "CPU", "cuda:x", "gpu", None, 3])
def test_resolve_device_bad_name(name):
    with pytest.raises(ConfigError, match="device"):
        resolve_device(name)


@pytest.mark.parametrize("name", ["xpu", "xla", "hpu"])
def test_resolve_device_other_unavailable_types(name):
    with pytest.raises(ConfigError, match="device"):
        resolve_device(name)


def test_strength_mapping_is_monotonic_and_keeps_the_default_balance():
    base = StyleConfig(content_weight=2.0, style_weight=50.0)
    assert base.loss_weights() == (2.0, 50.0)
    assert StyleConfig(content_weight=2.0, style_weight=50.0, strength=0).loss_weights() == (2.0, 0.0)
    assert StyleConfig(content_weight=2.0, style_weight=50.0, strength=1).loss_weights() == (0.0, 50.0)
    ratios = [
        (lambda w: w[1] / max(w[0], 1e-12))(StyleConfig(strength=s).loss_weights()) for s in np.linspace(0, 1, 11)
    ]
    assert all(later > earlier for earlier, later in zip(ratios, ratios[1:]))
    for bad in (-0.1, 1.01, float("nan"), "0.5"):
        with pytest.raises(ConfigError, match="strength"):
            StyleConfig(strength=bad)
    with pytest.raises(ConfigError, match="strength"):
        StyleConfig(style_weight=0.0, strength=1.0)
