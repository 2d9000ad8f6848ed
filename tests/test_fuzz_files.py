"""Corrupt files: truncated, bit-flipped, mislabelled, empty or lying about their length.

Through ``load_audio`` and through the CLI, every damaged file either still decodes to finite
audio or fails cleanly: AudioFileError / exit code 3 with one line on stderr, no traceback,
no output file, no temporary file. Real files come from ``../shared/corpus`` when it is there;
generated WAV/FLAC/OGG files are always mutated too.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from audiostyle_cli.app import app
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from audiostyle import AudioFileError, WeightsError, load_audio
from audiostyle.networks.pretrained import load_network
from tests.hostile_inputs import (
    HOSTILE_FILES,
    MUTATIONS,
    REFUSED_HOSTILE_FILES,
    check_cli_case,
    check_load_case,
    corpus_files,
    leftovers,
    mutate,
    write_hostile_file,
    write_reference_files,
)

CORPUS_FILES = corpus_files(limit=6)
BOUNDED = settings(
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def references(tmp_path_factory) -> list[Path]:
    return write_reference_files(tmp_path_factory.mktemp("reference"))


# One torch thread for every test here (see conftest.single_thread).
pytestmark = pytest.mark.usefixtures("single_thread")


def damaged(source: Path, kind: str, folder: Path, seed: int = 0) -> Path:
    data, suffix = mutate(source.read_bytes(), kind, suffix=source.suffix, seed=seed)
    path = folder / f"{source.stem}-{kind}-{seed}{suffix}"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("kind", MUTATIONS)
def test_load_audio_on_damaged_generated_files(kind: str, references: list[Path], tmp_path: Path) -> None:
    for source in references:
        for seed in range(3):
            path = damaged(source, kind, tmp_path, seed)
            outcome, detail = check_load_case(path)
            assert outcome in ("ok", "clean"), f"{path.name}: {outcome} {detail}"
            if kind in ("zero_length", "truncate_header", "garbage"):
                assert outcome == "clean", f"{path.name} should not decode"
                assert str(path) in detail


@pytest.mark.parametrize("kind", ["zero_length", "truncate_header", "garbage"])
def test_undecodable_files_raise_audio_file_error_naming_the_file(kind: str, references: list[Path], tmp_path: Path) -> None:
    path = damaged(references[0], kind, tmp_path)
    with pytest.raises(AudioFileError) as caught:
        load_audio(path)
    assert caught.value.path == str(path)


@pytest.mark.skipif(not CORPUS_FILES, reason="../shared/corpus is not present")
@settings(BOUNDED, max_examples=40)
@given(
    source=st.sampled_from(CORPUS_FILES or [Path("unused")]),
    kind=st.sampled_from(MUTATIONS),
    seed=st.integers(0, 1000),
)
def test_load_audio_on_damaged_corpus_files(source: Path, kind: str, seed: int, tmp_path_factory) -> None:
    path = damaged(source, kind, tmp_path_factory.mktemp("fuzz"), seed)
    outcome, detail = check_load_case(path)
    assert outcome in ("ok", "clean"), f"{source.name} {kind} seed={seed}: {outcome} {detail}"


@pytest.mark.parametrize("kind", MUTATIONS)
def test_cli_on_damaged_generated_files(kind: str, references: list[Path], tmp_path: Path) -> None:
    for source in references[:2]:
        path = damaged(source, kind, tmp_path)
        outcome, detail = check_cli_case(path, tmp_path)
        assert outcome in ("ok", "clean"), f"{path.name}: {outcome} {detail}"
        if outcome == "clean":
            assert detail.startswith("audiostyle: error: ") and str(path) in detail
        assert not (tmp_path / "out.wav").exists()
        assert leftovers(tmp_path) == []


@pytest.mark.skipif(not CORPUS_FILES, reason="../shared/corpus is not present")
@settings(BOUNDED, max_examples=8)
@given(
    source=st.sampled_from(CORPUS_FILES[:3] or [Path("unused")]),
    kind=st.sampled_from([m for m in MUTATIONS if m != "none"]),
    seed=st.integers(0, 1000),
)
def test_cli_on_damaged_corpus_files(source: Path, kind: str, seed: int, tmp_path_factory) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    path = damaged(source, kind, folder, seed)
    outcome, detail = check_cli_case(path, folder)
    assert outcome in ("ok", "clean"), f"{source.name} {kind} seed={seed}: {outcome} {detail}"
    assert leftovers(folder) == []


def test_real_process_prints_one_line_and_exits_3(references: list[Path], tmp_path: Path) -> None:
    content = damaged(references[1], "truncate_header", tmp_path)
    output = tmp_path / "out.wav"
    completed = subprocess.run(
        [sys.executable, "-m", "audiostyle_cli", str(content), str(references[0]), "-o", str(output), "-q"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 3, completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in completed.stderr, completed.stderr
    assert str(content) in lines[0]
    assert not output.exists() and leftovers(tmp_path) == []


# WAV "fmt " chunk fields of a plain 44-byte header: (offset, struct format, value).
HEADER_FIELDS = {
    "rate_0": (24, "<I", 0),
    "rate_1_hz": (24, "<I", 1),
    "rate_2_31": (24, "<I", 2**31 - 1),
    "rate_2_32": (24, "<I", 2**32 - 1),
    "channels_0": (22, "<H", 0),
    "channels_1000": (22, "<H", 1000),
    "channels_65535": (22, "<H", 65535),
    "bits_0": (34, "<H", 0),
    "bits_64": (34, "<H", 64),
    "format_float": (20, "<H", 3),
    "block_align_0": (32, "<H", 0),
}


@pytest.mark.parametrize("field", HEADER_FIELDS)
def test_lying_wav_header_fields(field: str, references: list[Path], tmp_path: Path) -> None:
    offset, fmt, value = HEADER_FIELDS[field]
    data = bytearray(references[0].read_bytes())
    struct.pack_into(fmt, data, offset, value)
    path = tmp_path / f"{field}.wav"
    path.write_bytes(bytes(data))
    outcome, detail = check_load_case(path)
    assert outcome in ("ok", "clean"), f"{field}: {outcome} {detail}"
    outcome, detail = check_cli_case(path, tmp_path)
    assert outcome in ("ok", "clean"), f"{field}: {outcome} {detail}"


def test_more_channels_than_supported_is_refused_before_any_work(tmp_path: Path) -> None:
    path = tmp_path / "many.wav"
    sf.write(path, np.zeros((16000, 65), np.float32) + 0.1, 16000, subtype="PCM_16")
    with pytest.raises(AudioFileError, match="65 channels; at most 64"):
        load_audio(path)
    outcome, detail = check_cli_case(path, tmp_path)
    assert outcome == "clean" and "65 channels" in detail


# ------------------------------------------------------------------ hostile audio files


@pytest.mark.parametrize("kind", HOSTILE_FILES)
def test_hostile_files_through_load_audio(kind: str, tmp_path: Path) -> None:
    path = write_hostile_file(kind, tmp_path)
    outcome, detail = check_load_case(path)
    if kind in REFUSED_HOSTILE_FILES:
        assert outcome == "clean", f"{kind}: {outcome} {detail}"
        assert detail.startswith(f"{path}: ") and "limit" in detail
    else:
        assert outcome == "ok", f"{kind}: {outcome} {detail}"


@pytest.mark.parametrize("kind", sorted(REFUSED_HOSTILE_FILES))
def test_hostile_files_through_the_cli_are_refused_naming_the_limit(kind: str, tmp_path: Path) -> None:
    path = write_hostile_file(kind, tmp_path / "in")
    outcome, detail = check_cli_case(path, tmp_path)
    assert outcome == "clean", f"{kind}: {outcome} {detail}"
    assert detail.startswith(f"audiostyle: error: {path}: ") and "limit" in detail
    assert not (tmp_path / "out.wav").exists() and leftovers(tmp_path) == []


# ------------------------------------------------------------------ hostile weights files

WEIGHTS = Path(__file__).resolve().parents[1] / "audiostyle" / "networks" / "weights" / "timbre_cnn.safetensors"


class _Payload:
    """Pickles to a call that creates a marker file when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("suffix", [".pt", ".pth"])
def test_pickled_weights_through_the_cli_are_refused_and_never_run(suffix: str, references: list[Path], tmp_path: Path) -> None:
    marker = tmp_path / "payload_ran"
    checkpoint = tmp_path / f"evil{suffix}"
    torch.save(_Payload(marker), checkpoint)  # the whole checkpoint is the payload
    shutil.copy(WEIGHTS.with_suffix(".json"), checkpoint.with_suffix(".json"))
    output = tmp_path / "out.wav"
    result = CliRunner().invoke(
        app,
        [str(references[0]), str(references[1]), "-o", str(output), "--network", str(checkpoint), "-n", "2", "--device", "cpu", "-q"],
        prog_name="audiostyle",
    )
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(checkpoint) in lines[0] and "Traceback" not in result.stderr
    assert not marker.exists()
    assert not output.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("kind", [m for m in MUTATIONS if m not in ("none", "wrong_extension")])
def test_damaged_weights_raise_weights_error_only(kind: str, tmp_path: Path) -> None:
    for seed in range(2):
        data, _ = mutate(WEIGHTS.read_bytes(), kind, suffix=".safetensors", seed=seed)
        path = tmp_path / f"{kind}{seed}.safetensors"
        path.write_bytes(data)
        shutil.copy(WEIGHTS.with_suffix(".json"), path.with_suffix(".json"))
        try:
            network = load_network(path, sample_rate=16000, n_fft=512)
        except WeightsError as error:
            assert str(path) in str(error)
            continue
        # A flip inside the tensor data can leave a loadable file: it must still be finite.
        assert all(bool(torch.isfinite(t).all()) for t in network.weight_tensors().values())
