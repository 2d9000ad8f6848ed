"""``audiostyle apply MODEL CONTENT``: the file it writes, --block-ms, --colour-match, and the model files it refuses."""

from __future__ import annotations

import inspect
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from audiostyle import StyleModel
from audiostyle.models import COLOUR_MATCH
from audiostyle_cli.app import app
from audiostyle_cli.apply import apply_command
from tests.model_support import save_tiny_model, write_clip


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("model") / "rain.safetensors")


pytestmark = pytest.mark.usefixtures("single_thread")


def apply(*args: object):
    return CliRunner().invoke(app, ["apply", *map(str, args)], prog_name="audiostyle")


@pytest.mark.parametrize(
    "rate, channels, subtype", [(16000, 1, "PCM_16"), (22050, 2, "PCM_24"), (44100, 2, "FLOAT")], ids=["mono-16k", "stereo-22k", "stereo-44k-float"]
)
def test_apply_writes_the_content_rate_channels_and_format_by_default_name(
    model_file: Path, tmp_path: Path, monkeypatch, rate: int, channels: int, subtype: str
) -> None:
    content = write_clip(tmp_path / "voice.wav", 0.7, rate, channels, subtype=subtype)
    monkeypatch.chdir(tmp_path)
    result = apply(model_file, content)
    assert result.exit_code == 0, result.stderr
    written = tmp_path / "voice-rain.wav"
    info = sf.info(written)
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (rate, channels, sf.info(content).frames, subtype)
    audio, _ = sf.read(written, always_2d=True)
    assert np.isfinite(audio).all() and np.abs(audio).max() > 1e-3
    assert str(written) in result.stdout and f"{rate} Hz, {channels} ch" in result.stdout and "real time" in result.stdout


def test_block_ms_streams_the_same_file_as_the_offline_pass_and_prints_the_latency(model_file: Path, tmp_path: Path) -> None:
    content = write_clip(tmp_path / "take.wav", 1.3, 22050, 2, subtype="FLOAT")
    offline = apply(model_file, content, "-o", tmp_path / "offline.wav")
    streamed = apply(model_file, content, "-o", tmp_path / "streamed.wav", "--block-ms", 7)
    assert offline.exit_code == 0 and streamed.exit_code == 0, offline.stderr + streamed.stderr
    a, rate_a = sf.read(tmp_path / "offline.wav", always_2d=True)
    b, rate_b = sf.read(tmp_path / "streamed.wav", always_2d=True)
    assert rate_a == rate_b == 22050 and a.shape == b.shape == (int(1.3 * 22050), 2)
    assert np.abs(a).max() > 1e-3
    np.testing.assert_allclose(b, a, atol=1e-5)
    assert "latency" not in offline.stdout
    # The tiny model's STFT is 512 samples at 16 kHz: at 22.05 kHz, about 32 ms.
    assert "7 ms blocks" in streamed.stdout and "latency 3" in streamed.stdout, streamed.stdout


@pytest.mark.parametrize("block_ms", ["0", "-5", "60001", "ten"])
def test_block_ms_out_of_range_is_a_usage_error(model_file: Path, tmp_path: Path, block_ms: str) -> None:
    content = write_clip(tmp_path / "take.wav", 0.3, 16000, 1)
    result = apply(model_file, content, "--block-ms", block_ms)
    assert result.exit_code == 2 and "--block-ms" in result.stderr
    assert not list(tmp_path.glob("take-*"))


def test_colour_match_reaches_the_model_and_defaults_to_the_library_s(model_file: Path, tmp_path: Path, monkeypatch) -> None:
    assert inspect.signature(apply_command).parameters["colour_match"].default == COLOUR_MATCH
    seen = []
    real = StyleModel.apply
    monkeypatch.setattr(StyleModel, "apply", lambda self, content, **kw: seen.append(kw["colour_match"]) or real(self, content, **kw))
    content = write_clip(tmp_path / "take.wav", 0.5, 16000, 1)
    assert apply(model_file, content, "-o", tmp_path / "a.wav", "--colour-match", "0").exit_code == 0
    assert apply(model_file, content, "-o", tmp_path / "b.wav").exit_code == 0
    assert seen == [0.0, COLOUR_MATCH]
    result = apply(model_file, content, "-o", tmp_path / "c.wav", "--colour-match", "1.5")
    assert result.exit_code == 2 and "--colour-match" in result.stderr and not (tmp_path / "c.wav").exists()


def _nan_weights(model: Path) -> None:
    tensors = load_file(model)
    name = next(iter(tensors))
    tensors[name] = torch.full_like(tensors[name], float("nan"))
    save_file(tensors, model)


def _truncated(model: Path) -> None:
    model.write_bytes(model.read_bytes()[:100])


def _pickle(model: Path) -> None:
    torch.save({"weights": torch.zeros(3)}, model)


def _no_sidecar(model: Path) -> None:
    model.with_suffix(".json").unlink()


def _bad_json(model: Path) -> None:
    model.with_suffix(".json").write_text("{not json")


def _future_version(model: Path) -> None:
    sidecar = model.with_suffix(".json")
    sidecar.write_text(json.dumps(dict(json.loads(sidecar.read_text()), version=99)))


def _other_shape(model: Path) -> None:
    sidecar = model.with_suffix(".json")
    data = json.loads(sidecar.read_text())
    data["architecture"]["channels"] += 1
    sidecar.write_text(json.dumps(data))


@pytest.mark.parametrize(
    "damage, named",
    [
        (_nan_weights, ".safetensors"),
        (_truncated, ".safetensors"),
        (_pickle, ".safetensors"),
        (_no_sidecar, ".json"),
        (_bad_json, ".json"),
        (_future_version, ".json"),
        (_other_shape, ".safetensors"),
    ],
    ids=["non-finite", "truncated", "pickle", "no-sidecar", "bad-json", "unknown-version", "mismatched-shapes"],
)
def test_bad_model_files_are_refused_with_exit_2_and_one_line_naming_the_file(
    model_file: Path, tmp_path: Path, damage, named: str
) -> None:
    model = tmp_path / "model.safetensors"
    shutil.copy(model_file, model)
    shutil.copy(model_file.with_suffix(".json"), model.with_suffix(".json"))
    damage(model)
    content = write_clip(tmp_path / "take.wav", 0.3, 16000, 1)
    result = apply(model, content, "-o", tmp_path / "out.wav")
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, result.stderr
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert str(model.with_suffix(named)) in lines[0], lines[0]
    assert not (tmp_path / "out.wav").exists()


@pytest.mark.parametrize("name", ["missing.safetensors", "model.pt"])
def test_a_missing_model_or_one_of_another_kind_is_refused(tmp_path: Path, name: str) -> None:
    content = write_clip(tmp_path / "take.wav", 0.3, 16000, 1)
    result = apply(tmp_path / name, content, "-o", tmp_path / "out.wav")
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert name in result.stderr


def test_existing_output_is_refused_before_any_work_unless_overwrite(model_file: Path, tmp_path: Path) -> None:
    content = write_clip(tmp_path / "take.wav", 0.3, 16000, 1)
    target = tmp_path / "out.wav"
    target.write_bytes(b"keep me")
    refused = apply(model_file, content, "-o", target)
    assert refused.exit_code == 3 and "--overwrite" in refused.stderr and str(target) in refused.stderr
    assert target.read_bytes() == b"keep me"
    replaced = apply(model_file, content, "-o", target, "--overwrite")
    assert replaced.exit_code == 0, replaced.stderr
    assert sf.info(target).frames == sf.info(content).frames


@pytest.mark.parametrize("which", ["content", "model", "sidecar"])
def test_the_inputs_are_never_overwritten(model_file: Path, tmp_path: Path, which: str) -> None:
    model = tmp_path / "model.safetensors"
    shutil.copy(model_file, model)
    shutil.copy(model_file.with_suffix(".json"), model.with_suffix(".json"))
    content = write_clip(tmp_path / "take.wav", 0.3, 16000, 1)
    target = {"content": content, "model": model, "sidecar": model.with_suffix(".json")}[which]
    before = target.read_bytes()
    result = apply(model, content, "-o", target, "--overwrite")
    assert result.exit_code == 3 and "input" in result.stderr
    assert target.read_bytes() == before


def test_an_unreadable_content_is_exit_3_naming_it(model_file: Path, tmp_path: Path) -> None:
    content = tmp_path / "broken.wav"
    content.write_bytes(b"RIFF....WAVEfmt nonsense")
    result = apply(model_file, content, "-o", tmp_path / "out.wav")
    assert result.exit_code == 3 and str(content) in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_max_duration_refuses_a_longer_content_before_work_and_names_its_flag(model_file: Path, tmp_path: Path) -> None:
    content = write_clip(tmp_path / "take.wav", 2.0, 16000, 1)
    target = tmp_path / "out.wav"
    refused = apply(model_file, content, "-o", target, "--max-duration", 1)
    assert refused.exit_code == 3 and not target.exists()
    assert "take.wav" in refused.stderr and "--max-duration" in refused.stderr and "Traceback" not in refused.stderr
    assert apply(model_file, content, "-o", target, "--max-duration", -1).exit_code == 2
    allowed = apply(model_file, content, "-o", target, "--max-duration", 5)
    assert allowed.exit_code == 0, allowed.stderr
    assert sf.info(target).frames == sf.info(content).frames


def test_the_python_apply_takes_max_duration_too(model_file: Path, tmp_path: Path) -> None:
    from audiostyle import AudioFileError, ConfigError

    model = StyleModel.load(model_file)
    content = write_clip(tmp_path / "take.wav", 2.0, 16000, 1)
    with pytest.raises(AudioFileError, match="over the 1 s limit"):
        model.apply(content, max_duration=1.0)
    with pytest.raises(ConfigError, match="max_duration"):
        model.apply(content, max_duration=float("nan"))
    assert model.apply(content, max_duration=2.5).audio.shape[-1] == sf.info(content).frames
