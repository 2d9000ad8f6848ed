"""The shipped timbre CNN, loading of user weights (and its refusals), and the training recipe."""

from __future__ import annotations

import io
import json
import pickle
import random
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from audiostyle.errors import ConfigError, WeightsError
from audiostyle.networks.base import FeatureNetwork
from audiostyle.networks.weights_file import WEIGHTS_FILE_SLACK
from audiostyle.networks.pretrained import (
    PRETRAINED_NAME,
    WEIGHTS_DIR,
    TimbreCNN,
    expected_tensor_shapes,
    load_network,
)

safetensors_torch = pytest.importorskip("safetensors.torch")

TRAINING_DIR = Path(__file__).resolve().parent.parent / "training"
SHIPPED = WEIGHTS_DIR / f"{PRETRAINED_NAME}.safetensors"


@pytest.fixture(scope="module")
def shipped_architecture() -> dict:
    return json.loads(SHIPPED.with_suffix(".json").read_text())


@pytest.fixture
def user_copy(tmp_path: Path) -> Path:
    """A user-supplied copy of the shipped weights and JSON, free to corrupt."""
    weights = tmp_path / "mine.safetensors"
    shutil.copy(SHIPPED, weights)
    shutil.copy(SHIPPED.with_suffix(".json"), weights.with_suffix(".json"))
    return weights


def test_shipped_files_are_small_and_documented(shipped_architecture: dict) -> None:
    assert SHIPPED.stat().st_size <= 10 * 1024 * 1024
    assert (WEIGHTS_DIR / "MODEL_CARD.md").is_file()
    heldout = shipped_architecture["training"]["heldout"]
    assert heldout["family_accuracy"] >= 0.85
    assert heldout["program_accuracy"] >= 0.60


@pytest.mark.parametrize("sample_rate", [16000, 22050, 44100])
@pytest.mark.parametrize("n_fft", [1024, 2048])
def test_shipped_weights_load_and_run(sample_rate: int, n_fft: int, shipped_architecture: dict) -> None:
    network = load_network("pretrained", sample_rate=sample_rate, n_fft=n_fft)
    assert isinstance(network, FeatureNetwork)
    assert not network.training
    assert all(not p.requires_grad for p in network.parameters())
    generator = torch.Generator().manual_seed(0)
    log_magnitude = (torch.rand(2, n_fft // 2 + 1, 37, generator=generator) * 4).requires_grad_(True)
    maps = network(log_magnitude)
    layers = shipped_architecture["conv_layers"]
    assert [tuple(m.shape) for m in maps] == [(2, layer["channels"], 37) for layer in layers]
    assert all(torch.isfinite(m).all() for m in maps)
    assert all(0 <= i < len(maps) for i in network.content_layers + network.style_layers)
    sum(m.square().mean() for m in maps).backward()
    assert log_magnitude.grad is not None
    assert torch.isfinite(log_magnitude.grad).all() and log_magnitude.grad.abs().sum() > 0


def test_batch_equals_items_one_by_one() -> None:
    network = load_network("pretrained", sample_rate=22050, n_fft=2048)
    batch = torch.rand(3, 1025, 20, generator=torch.Generator().manual_seed(1)) * 3
    together = network(batch)
    for item in range(3):
        alone = network(batch[item : item + 1])
        for a, b in zip(together, alone):
            torch.testing.assert_close(a[item : item + 1], b, rtol=1e-4, atol=1e-4)


def test_log_mel_of_a_tone_does_not_depend_on_fft_size_or_rate() -> None:
    """A sinusoid lands in the same mel band with about the same value at any n_fft or rate."""
    values = []
    for sample_rate, n_fft in ((22050, 2048), (22050, 1024), (44100, 4096), (16000, 1024)):
        t = torch.arange(sample_rate) / sample_rate
        spectrum = torch.stft(torch.sin(2 * torch.pi * 440 * t) * 0.5, n_fft=n_fft, hop_length=n_fft // 4,
                              window=torch.hann_window(n_fft), return_complex=True)
        network = load_network("pretrained", sample_rate=sample_rate, n_fft=n_fft)
        log_mel = network.log_mel(torch.log1p(spectrum.abs())[None])[0, :, 2:-2].mean(dim=1)
        values.append(log_mel)
    peaks = {int(v.argmax()) for v in values}
    assert max(peaks) - min(peaks) <= 1
    maxima = torch.stack([v.max() for v in values])
    assert float(maxima.max() - maxima.min()) < 0.5


def test_wrong_input_shape_is_a_config_error() -> None:
    network = load_network("pretrained", sample_rate=22050, n_fft=2048)
    with pytest.raises(ConfigError, match="1025"):
        network(torch.zeros(1, 513, 10))


@pytest.mark.parametrize("sample_rate, n_fft", [(0, 2048), (22050, 8), (22050.0, 2048)])
def test_bad_sample_rate_or_fft_is_a_config_error(sample_rate, n_fft) -> None:
    with pytest.raises(ConfigError):
        load_network("pretrained", sample_rate=sample_rate, n_fft=n_fft)


def test_user_safetensors_with_json_loads(user_copy: Path) -> None:
    network = load_network(user_copy, sample_rate=22050, n_fft=2048)
    shipped = load_network("pretrained", sample_rate=22050, n_fft=2048)
    for (name, a), (_, b) in zip(network.state_dict().items(), shipped.state_dict().items()):
        assert torch.equal(a, b), name


def test_plain_tensor_checkpoint_loads(user_copy: Path, tmp_path: Path) -> None:
    checkpoint = tmp_path / "plain.pt"
    torch.save(safetensors_torch.load_file(str(user_copy)), checkpoint)
    shutil.copy(user_copy.with_suffix(".json"), checkpoint.with_suffix(".json"))
    assert isinstance(load_network(checkpoint, sample_rate=22050, n_fft=2048), TimbreCNN)


def test_bad_shape_names_the_tensor(user_copy: Path) -> None:
    tensors = safetensors_torch.load_file(str(user_copy))
    tensors["convs.1.weight"] = tensors["convs.1.weight"][:, :, :1].contiguous()
    safetensors_torch.save_file(tensors, str(user_copy))
    with pytest.raises(WeightsError, match=r"convs\.1\.weight.*shape.*expected"):
        load_network(user_copy, sample_rate=22050, n_fft=2048)


def test_missing_and_unexpected_tensors(user_copy: Path) -> None:
    tensors = safetensors_torch.load_file(str(user_copy))
    del tensors["convs.0.bias"]
    safetensors_torch.save_file(tensors, str(user_copy))
    with pytest.raises(WeightsError, match=r"convs\.0\.bias"):
        load_network(user_copy, sample_rate=22050, n_fft=2048)
    tensors = safetensors_torch.load_file(str(SHIPPED))
    tensors["extra"] = torch.zeros(3)
    safetensors_torch.save_file(tensors, str(user_copy))
    with pytest.raises(WeightsError, match="extra"):
        load_network(user_copy, sample_rate=22050, n_fft=2048)


def test_non_finite_tensor(user_copy: Path) -> None:
    tensors = safetensors_torch.load_file(str(user_copy))
    tensors["convs.2.bias"][5] = float("nan")
    safetensors_torch.save_file(tensors, str(user_copy))
    with pytest.raises(WeightsError, match=r"convs\.2\.bias.*NaN"):
        load_network(user_copy, sample_rate=22050, n_fft=2048)


def test_missing_json(user_copy: Path) -> None:
    user_copy.with_suffix(".json").unlink()
    with pytest.raises(WeightsError, match="architecture description not found"):
        load_network(user_copy, sample_rate=22050, n_fft=2048)


@pytest.mark.parametrize(
    "text, match",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"format": "audiostyle.timbre_cnn"}', "missing key"),
    ],
)
def test_invalid_json(user_copy: Path, text: str, match: str) -> None:
    user_copy.with_suffix(".json").write_text(text)
    with pytest.raises(WeightsError, match=match):
        load_network(user_copy, sample_rate=22050, n_fft=2048)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"activation": "tanh"}, "activation"),
        ({"content_layers": [9]}, "content_layers"),
        ({"conv_layers": [{"channels": 8, "kernel_size": 4, "dilation": 1}]}, "odd"),
        ({"format": "other"}, "format"),
    ],
)
def test_inconsistent_architecture(user_copy: Path, shipped_architecture: dict, change: dict, match: str) -> None:
    user_copy.with_suffix(".json").write_text(json.dumps({**shipped_architecture, **change}))
    with pytest.raises(WeightsError, match=match):
        load_network(user_copy, sample_rate=22050, n_fft=2048)


def test_missing_file_garbage_and_unknown_extension(tmp_path: Path, user_copy: Path) -> None:
    with pytest.raises(WeightsError, match="not found"):
        load_network(tmp_path / "absent.safetensors", sample_rate=22050, n_fft=2048)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 64)
    shutil.copy(user_copy.with_suffix(".json"), garbage.with_suffix(".json"))
    with pytest.raises(WeightsError, match="safetensors"):
        load_network(garbage, sample_rate=22050, n_fft=2048)
    other = tmp_path / "weights.bin"
    other.write_bytes(b"\x00")
    with pytest.raises(WeightsError, match="unsupported"):
        load_network(other, sample_rate=22050, n_fft=2048)


class _Payload:
    """Pickles to a call that creates a marker file when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickled_payload_is_refused_and_never_runs(tmp_path: Path, user_copy: Path) -> None:
    marker = tmp_path / "payload_ran"
    checkpoint = tmp_path / "evil.pt"
    tensors = dict(safetensors_torch.load_file(str(user_copy)))
    torch.save({**tensors, "band_mean": _Payload(marker)}, checkpoint)
    shutil.copy(user_copy.with_suffix(".json"), checkpoint.with_suffix(".json"))
    with pytest.raises(WeightsError, match="refused"):
        load_network(checkpoint, sample_rate=22050, n_fft=2048)
    assert not marker.exists()


def test_random_init_module_matches_expected_names() -> None:
    architecture = json.loads(SHIPPED.with_suffix(".json").read_text())
    network = TimbreCNN(architecture, sample_rate=16000, n_fft=512)
    shapes = {name: tuple(t.shape) for name, t in network.weight_tensors().items()}
    assert shapes == expected_tensor_shapes(architecture)


# --- the training recipe --------------------------------------------------------------------


@pytest.fixture(scope="module")
def recipe_modules():
    sys.path.insert(0, str(TRAINING_DIR))
    import generate_data
    import train

    yield generate_data, train
    sys.path.remove(str(TRAINING_DIR))


def _tiny_synthetic_set(generate_data, out: Path) -> None:
    """Three 'instruments' (harmonic spectra that differ) at several pitches; no external tools."""
    rate = 22050
    writer = generate_data.DatasetWriter()
    rng = np.random.default_rng(0)
    profiles = {0: [1.0, 0.5, 0.33, 0.25], 1: [1.0, 0.0, 0.3, 0.0, 0.2], 2: [0.2, 1.0, 0.1, 0.6]}
    for program, harmonics in profiles.items():
        for index, pitch in enumerate(range(48, 72, 2)):
            seconds = float(rng.uniform(1.0, 1.6))
            t = np.arange(int(seconds * rate)) / rate
            f0 = 440.0 * 2 ** ((pitch - 69) / 12)
            wave = sum(a * np.sin(2 * np.pi * f0 * (k + 1) * t) for k, a in enumerate(harmonics))
            wave = (0.2 * wave * np.exp(-2 * t)).astype(np.float32)
            clip = generate_data.Clip(0.0, seconds, program, program // 8 if program < 2 else 3,
                                      heldout=index % 5 == 2, source=0, pitch=pitch, velocity=100)
            writer.add(wave, clip)
    writer.save(out, {"seed": 0, "scale": 0.0, "command": "synthetic test set"})


def test_one_training_step_on_a_tiny_set(recipe_modules, tmp_path: Path) -> None:
    generate_data, train = recipe_modules
    _tiny_synthetic_set(generate_data, tmp_path / "data")
    torch.manual_seed(0)
    result = train.train(tmp_path / "data", out_dir=tmp_path / "out", steps=1, batch_size=4, eval_every=0,
                         log=lambda *_: None)
    assert len(result["losses"]) == 1 and np.isfinite(result["losses"][0])
    # What train writes is loadable as a user network.
    network = load_network(tmp_path / "out" / f"{PRETRAINED_NAME}.safetensors", sample_rate=22050, n_fft=2048)
    assert isinstance(network, TimbreCNN)


@pytest.mark.slow
def test_a_few_training_steps_lower_the_loss(recipe_modules, tmp_path: Path) -> None:
    generate_data, train = recipe_modules
    _tiny_synthetic_set(generate_data, tmp_path / "data")
    result = train.train(tmp_path / "data", steps=12, batch_size=8, eval_every=0, dropout=0.0,
                         log=lambda *_: None)
    losses = result["losses"]
    assert all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < np.mean(losses[:3])


@pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("fluidsynth", "espeak-ng", "sox"))
    or not Path("/usr/share/sounds/sf2/FluidR3_GM.sf2").is_file(),
    reason="needs fluidsynth, fluid-soundfont-gm, espeak-ng and sox",
)
def test_generator_renders_a_tiny_real_set(recipe_modules, tmp_path: Path) -> None:
    generate_data, _ = recipe_modules
    meta = generate_data.generate(tmp_path, programs=[0], kits=[0], scale=0.05, log=lambda *_: None)
    clips = np.load(tmp_path / "clips.npz")
    features = np.load(tmp_path / "features.npy")
    assert meta["clips"]["train"] > 0 and meta["clips"]["heldout"] > 0
    assert features.shape == (int(clips["frames"].sum()), 128) and np.isfinite(features).all()
    notes = clips["source"] <= 1
    # Held-out pitches never occur in training clips.
    assert set(clips["pitch"][notes & clips["heldout"]] % 5) == {2}
    assert 2 not in set(clips["pitch"][notes & ~clips["heldout"]] % 5)


# --- untrusted weights files: every failure is a WeightsError naming the file ------------------

TINY_ARCHITECTURE = {
    "format": "audiostyle.timbre_cnn",
    "front_end": {"n_mels": 8, "fmin": 0.0, "fmax": 8000.0, "reference_n_fft": 512, "mel_floor": 0.001},
    "conv_layers": [{"channels": 4, "kernel_size": 3, "dilation": 1}, {"channels": 4, "kernel_size": 3, "dilation": 2}],
    "activation": "relu",
    "content_layers": [0],
    "style_layers": [0, 1],
}


def _tiny_tensors() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return TimbreCNN(TINY_ARCHITECTURE, sample_rate=16000, n_fft=512).weight_tensors()


def _checkpoint(obj: object, **options) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer, **options)
    return buffer.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _mutations(data: bytes, rng: random.Random, count: int) -> list[bytes]:
    """Truncations at evenly spread lengths and copies with 1 to 4 random bytes replaced."""
    cuts = [data[:length] for length in range(0, len(data), max(1, len(data) // 40))]
    flipped = []
    for _ in range(count):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        flipped.append(bytes(damaged))
    return cuts + flipped


def _hostile_checkpoints() -> list[bytes]:
    rng = random.Random(20160901)
    tensors = _tiny_tensors()
    good = _checkpoint(tensors)
    pickled = next(name for name in zipfile.ZipFile(io.BytesIO(good)).namelist() if name.endswith("data.pkl"))
    cases = _mutations(good, rng, 150)
    cases += _mutations(_checkpoint(tensors, _use_new_zipfile_serialization=False), rng, 60)
    cases += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000))) for _ in range(10)] + [b""]
    cases += [
        _zip({"junk": b"x" * 100}),
        _zip({pickled: b"not a pickle"}),
        _zip({pickled: pickle.dumps({"band_mean": 1.0})}),
        b"PK\x03\x04" + bytes(200),
        _checkpoint([tensors["band_mean"]]),
        _checkpoint({"nested": tensors}),
        _checkpoint(tensors["band_mean"]),
        _checkpoint(None),
        _checkpoint({1: tensors["band_mean"]}),
        _checkpoint({**tensors, "band_mean": torch.zeros(8, dtype=torch.complex64)}),
        _checkpoint({**tensors, "band_std": torch.zeros(8, dtype=torch.int8)}),
    ]
    cases += [pickle.dumps(value, protocol=protocol) for protocol in range(6) for value in ({"band_mean": 1.0}, [1, 2])]
    return cases


def _hostile_safetensors() -> list[bytes]:
    rng = random.Random(7)
    good = safetensors_torch.save(_tiny_tensors())
    header = len(good).to_bytes(8, "little")
    return _mutations(good, rng, 100) + [
        header + good[8:],  # a header length past the end
        (2**63).to_bytes(8, "little") + good[8:],
        (10).to_bytes(8, "little") + b'{"a": 1}  ' + good[18:],
        safetensors_torch.save({**_tiny_tensors(), "band_std": torch.zeros(8, dtype=torch.float8_e4m3fn)}),
    ]


def _load_or_weights_error(path: Path) -> None:
    """Load ``path``; anything but a network or a WeightsError that names the file fails."""
    try:
        network = load_network(path, sample_rate=16000, n_fft=512)
    except WeightsError as error:
        assert str(path) in str(error) and "\n" not in str(error), str(error)
    else:
        assert isinstance(network, TimbreCNN)


@pytest.mark.parametrize("suffix, cases", [(".pt", _hostile_checkpoints), (".safetensors", _hostile_safetensors)])
def test_damaged_or_hostile_weights_files_are_always_a_weights_error(tmp_path: Path, suffix: str, cases) -> None:
    path = tmp_path / f"net{suffix}"
    path.with_suffix(".json").write_text(json.dumps(TINY_ARCHITECTURE))
    variants = cases()
    assert len(variants) > 100
    for data in variants:
        path.write_bytes(data)
        _load_or_weights_error(path)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"activation": ["relu"]}, "activation"),
        ({"front_end": {**TINY_ARCHITECTURE["front_end"], "n_mels": 1_000_000}}, "n_mels"),
        ({"conv_layers": [{"channels": 4, "kernel_size": 3, "dilation": 10**9}]}, "dilation"),
        ({"conv_layers": [{"channels": 1, "kernel_size": 1, "dilation": 1}] * 1000}, "conv_layers"),
    ],
)
def test_architecture_numbers_that_would_allocate_too_much_are_refused(tmp_path: Path, change: dict, match: str) -> None:
    path = tmp_path / "net.safetensors"
    safetensors_torch.save_file(_tiny_tensors(), str(path))
    path.with_suffix(".json").write_text(json.dumps({**TINY_ARCHITECTURE, **change}))
    with pytest.raises(WeightsError, match=match):
        load_network(path, sample_rate=16000, n_fft=512)


@pytest.mark.parametrize(
    "text",
    ["[" * 100_000, '{"format": ' + "9" * 5000 + "}", "\udcff".encode("utf-8", "surrogatepass").decode("latin-1")],
    ids=["deep", "long integer", "bad utf-8"],
)
def test_hostile_architecture_json_is_a_weights_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "net.safetensors"
    safetensors_torch.save_file(_tiny_tensors(), str(path))
    path.with_suffix(".json").write_bytes(text.encode("latin-1"))
    with pytest.raises(WeightsError, match="not valid JSON"):
        load_network(path, sample_rate=16000, n_fft=512)


def test_oversized_files_are_refused_before_they_are_read(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "net.pt"
    path.write_bytes(_checkpoint(_tiny_tensors()))
    with open(path, "ab") as grown:
        grown.truncate(WEIGHTS_FILE_SLACK + 4096)  # sparse: no disk spent
    path.with_suffix(".json").write_text(json.dumps(TINY_ARCHITECTURE))
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("read an oversized file"))
    with pytest.raises(WeightsError, match="more than the tensors"):
        load_network(path, sample_rate=16000, n_fft=512)
    big_json = tmp_path / "big.safetensors"
    safetensors_torch.save_file(_tiny_tensors(), str(big_json))
    big_json.with_suffix(".json").write_text(json.dumps({**TINY_ARCHITECTURE, "notes": "x" * (1 << 20)}))
    with pytest.raises(WeightsError, match="at most"):
        load_network(big_json, sample_rate=16000, n_fft=512)


def test_a_damaged_network_through_the_command_line_exits_with_the_weights_code(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    import soundfile as sf
    from audiostyle_cli.app import app
    from audiostyle_cli.exits import USAGE_EXIT

    content, style = tmp_path / "content.wav", tmp_path / "style.wav"
    noise = np.random.default_rng(0).standard_normal(8000).astype(np.float32) * 0.1
    sf.write(content, noise, 16000), sf.write(style, noise[::-1].copy(), 16000)
    good = _checkpoint(_tiny_tensors())
    legacy = _checkpoint(_tiny_tensors(), _use_new_zipfile_serialization=False)
    cases = [("truncated.pt", good[: len(good) // 2]), ("random.pt", bytes(range(256)) * 4),
             ("structure.pt", pickle.dumps([1, 2, 3]))]
    # Torch's older format cut short fails deep inside its reader (struct, index errors).
    cases += [(f"legacy{eighth}.pt", legacy[: len(legacy) * eighth // 8]) for eighth in range(1, 8)]
    for name, data in cases:
        network = tmp_path / name
        network.write_bytes(data)
        network.with_suffix(".json").write_text(json.dumps(TINY_ARCHITECTURE))
        result = CliRunner().invoke(
            app, [str(content), str(style), "-o", str(tmp_path / "out.wav"), "--network", str(network), "-n", "1",
                  "--device", "cpu", "--sample-rate", "16000", "--n-fft", "512", "--hop-length", "128"],
            prog_name="audiostyle",
        )
        # 2: the documented code for usage, settings or network weights.
        assert result.exit_code == USAGE_EXIT == 2, (name, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and str(network) in lines[0] and "error: unexpected" not in lines[0], (name, lines)
