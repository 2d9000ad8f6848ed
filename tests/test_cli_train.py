"""``audiostyle train``: a tiny model trained from the command line, the checks made before any
work, what is handed to the library, and the progress line."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from rich.console import Console
from typer.testing import CliRunner

import audiostyle
from audiostyle import StyleModel
from audiostyle_cli import train as train_module
from audiostyle_cli.app import app
from tests.model_support import tiny_model, write_clip


pytestmark = pytest.mark.usefixtures("single_thread")


def train(*args: object):
    return CliRunner().invoke(app, ["train", *map(str, args)], prog_name="audiostyle")


@pytest.fixture
def clips(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A style, a second style and a folder of two short contents."""
    style = write_clip(tmp_path / "rain.wav", 0.5, 22050, 1, seed=1)
    other = write_clip(tmp_path / "hum.wav", 0.5, 22050, 1, seed=2)
    folder = tmp_path / "lib"
    for index in range(2):
        write_clip(folder / f"take{index}.wav", 0.5, 22050, 1, seed=3 + index)
    return style, other, folder


class Recorded(Exception):
    """Raised by the stand-in trainer once it has seen its arguments."""


@pytest.fixture
def recorded(monkeypatch) -> dict:
    """Replace the library's trainer with one that records its call and returns a tiny model."""
    calls: dict = {}
    model = tiny_model()

    def fake(style, contents=(), config=None, **options):
        calls.update(style=style, contents=contents, config=config, **options)
        options["progress"](0, 0, {"teacher": 1.0, "eta": 5.0})
        options["progress"](1, 2, {"distance": 0.5, "eta": 4.0})
        return model

    monkeypatch.setattr(audiostyle, "train_style_model", fake)
    return calls


def test_train_writes_a_model_and_sidecar_that_load_and_prints_validation(clips, tmp_path: Path) -> None:
    style, _, folder = clips
    target = tmp_path / "models" / "rain.safetensors"
    target.parent.mkdir()
    result = train(style, "-o", target, "--on", folder, "--no-generic", "--max-steps", 3, "--seed", 5)
    assert result.exit_code == 0, result.stderr
    assert target.is_file() and target.with_suffix(".json").is_file()
    model = StyleModel.load(target, device="cpu")
    assert model.training["steps"] == 3 and model.training["seed"] == 5 and model.training["generic"] is False
    assert [Path(name).name for name in model.style_names] == ["rain.wav"]
    lines = result.stdout.strip().splitlines()
    assert str(target) in lines[0] and str(target.with_suffix(".json")) in lines[0] and model.digest in lines[0]
    assert "3 steps" in lines[1] and "held-out validation loss" in lines[1]
    # The model is ready for apply: a content in, the same length out.
    content = write_clip(tmp_path / "voice.wav", 0.4, 16000, 2)
    applied = model.apply(content)
    assert applied.audio.shape == (2, sf.info(content).frames) and np.isfinite(applied.audio).all()


def test_styles_blends_contents_and_settings_reach_the_library(clips, tmp_path: Path, recorded: dict) -> None:
    style, other, folder = clips
    third = write_clip(tmp_path / "tape.wav", 0.5, 22050, 1, seed=9)
    target = tmp_path / "blend.safetensors"
    result = train(
        style, other, "--blend", f"{third}:0.25", "-o", target, "--on", folder, "--on", third,
        "--preset", "default", "--minutes", 0.5, "--max-steps", 7, "--seed", 3, "--no-generic", "--device", "cpu",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert recorded["style"] == [(style, 1.0), (other, 1.0), (third, 0.25)]
    assert list(recorded["contents"]) == [folder, third]
    assert recorded["config"] == audiostyle.get_preset("default").replace(device="cpu")
    assert (recorded["minutes"], recorded["max_steps"], recorded["seed"], recorded["generic"]) == (0.5, 7, 3, False)
    assert target.is_file()


def test_defaults_are_the_fast_preset_two_minutes_and_the_generic_set(clips, tmp_path: Path, recorded: dict) -> None:
    style, _, _ = clips
    result = train(style, "-o", tmp_path / "m.safetensors", "-q")
    assert result.exit_code == 0, result.stderr
    assert recorded["config"] == audiostyle.get_preset("fast").replace(device="auto")
    assert (recorded["minutes"], recorded["max_steps"], recorded["seed"], recorded["generic"]) == (2.0, None, 0, True)
    assert list(recorded["contents"]) == [] and result.stdout == ""


@pytest.fixture
def untouched(monkeypatch) -> None:
    """Fail the test if training starts: these checks come before any work."""

    def never(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(audiostyle, "train_style_model", never)


@pytest.mark.parametrize("existing", ["model", "sidecar"])
def test_an_existing_model_is_refused_before_training_unless_overwrite(
    clips, tmp_path: Path, existing: str, untouched, monkeypatch
) -> None:
    style, _, _ = clips
    target = tmp_path / "m.safetensors"
    blocker = target if existing == "model" else target.with_suffix(".json")
    blocker.write_bytes(b"an earlier model")
    result = train(style, "-o", target)
    assert result.exit_code == 3, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and str(blocker) in result.stderr and "--overwrite" in result.stderr
    assert blocker.read_bytes() == b"an earlier model"


def test_overwrite_replaces_an_existing_model(clips, tmp_path: Path, recorded: dict) -> None:
    style, _, _ = clips
    target = tmp_path / "m.safetensors"
    target.write_bytes(b"an earlier model")
    result = train(style, "-o", target, "--overwrite")
    assert result.exit_code == 0, result.stderr
    assert StyleModel.load(target, device="cpu").digest == tiny_model().digest


@pytest.mark.parametrize(
    "args, code, words",
    [
        (["-o", "{tmp}/m.onnx"], 2, [".safetensors"]),
        (["-o", "{tmp}/missing/m.safetensors"], 3, ["folder does not exist"]),
        (["-o", "{tmp}/m.safetensors", "--preset", "classic"], 2, ["--preset", "fast", "default"]),
    ],
    ids=["not-safetensors", "no-folder", "classic-preset"],
)
def test_bad_targets_and_settings_fail_in_one_line_before_training(clips, tmp_path: Path, untouched, args, code, words) -> None:
    style, _, _ = clips
    result = train(style, *(arg.format(tmp=tmp_path, style=style) for arg in args))
    assert result.exit_code == code, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert all(word in result.stderr for word in words), result.stderr


def test_an_input_named_as_the_model_is_never_overwritten(clips, tmp_path: Path, untouched) -> None:
    """A content given with --on that is also the target (it ends .safetensors) is protected."""
    style, _, _ = clips
    target = tmp_path / "data.safetensors"
    target.write_bytes(b"someone's data")
    result = train(style, "--on", target, "-o", target, "--overwrite")
    assert result.exit_code == 3 and "input" in result.stderr
    assert target.read_bytes() == b"someone's data"


@pytest.mark.parametrize("args", [["--minutes", "0"], ["--minutes", "nan"], ["--max-steps", "0"]], ids=["zero-minutes", "nan-minutes", "zero-steps"])
def test_library_refusals_name_the_option(clips, tmp_path: Path, args) -> None:
    style, _, _ = clips
    result = train(style, "-o", tmp_path / "m.safetensors", "--no-generic", *args)
    assert result.exit_code == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and args[0] in result.stderr, result.stderr
    assert not (tmp_path / "m.safetensors").exists()


def test_a_missing_content_path_fails_before_training(clips, tmp_path: Path, untouched) -> None:
    style, _, folder = clips
    result = train(style, "-o", tmp_path / "m.safetensors", "--on", folder, "--on", tmp_path / "nothing")
    assert result.exit_code == 3 and len(result.stderr.strip().splitlines()) == 1
    assert str(tmp_path / "nothing") in result.stderr and "--on" in result.stderr


def test_ctrl_c_while_training_exits_130_and_writes_nothing(clips, tmp_path: Path, monkeypatch) -> None:
    style, _, _ = clips

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(audiostyle, "train_style_model", interrupted)
    result = train(style, "-o", tmp_path / "m.safetensors")
    assert result.exit_code == 130 and "interrupted" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["rain.wav", "hum.wav", "lib"])


def drawn_lines(feed, width: int = 80) -> list[str]:
    """Every line the training display drew while ``feed(progress)`` ran, without terminal codes."""
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=True, color_system=None)
    with train_module.TrainingProgress("train rain.wav", console=console) as progress:
        feed(progress)
        progress._progress.refresh()
    return [line for line in re.split(r"[\r\n]|\x1b\[[0-9;?]*[A-Za-z]", out.getvalue()) if line.strip()]


def test_the_progress_line_shows_steps_eta_losses_and_the_last_validation() -> None:
    def feed(progress):
        progress(5, 40, {"distance": 0.0123, "validation": 2.25, "eta": 65.0})
        progress(6, 40, {"distance": 0.0120, "total": 3.4, "eta": 64.0})

    line = drawn_lines(feed, width=120)[-1]
    assert "fit" in line and "6/40" in line and "ETA 0:01:04" in line and "━" in line, line
    assert "distance 0.012" in line and "validation 2.25" in line, line
    assert "total" not in line and "eta " not in line
    narrow = drawn_lines(feed)[-1]
    assert len(narrow) <= 80 and "6/40" in narrow and "ETA 0:01:04" in narrow, narrow


def test_while_the_teacher_works_the_line_counts_excerpts_not_steps() -> None:
    line = drawn_lines(lambda progress: progress(0, 0, {"teacher": 7.0, "eta": 30.0}))[-1]
    assert "teacher" in line and "7 excerpts stylized" in line and "ETA 0:00:30" in line, line
    assert "0/0" not in line and "/" not in line.split("teacher")[1].split("ETA")[0], line


def test_quiet_draws_no_progress() -> None:
    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=True)
    with train_module.TrainingProgress("x", enabled=False, console=console) as progress:
        progress(1, 3, {"total": 1.0, "eta": 2.0})
    assert out.getvalue() == ""


@pytest.mark.parametrize("seconds, text", [(0, "ETA 0:00:00"), (3725.4, "ETA 1:02:05"), (None, ""), (float("inf"), ""), (-1, "")])
def test_eta_text(seconds, text) -> None:
    assert train_module.eta_text(seconds) == text
