"""``audiostyle batch INPUT... --model MODEL``: a trained style model applied to a library, with
today's manifest, resume, skip-done, workers, Dask, signals and atomic writes.

A model job's config hash is the model's digest: a rerun skips what this model made, and
makes again what an earlier version of the same model file made (it was retrained).
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from audiostyle import StyleModel, WeightsError
from audiostyle.batch import MANIFEST_NAME, local, plan_model_batch, read_manifest, run_batch
from audiostyle.batch.execute import ModelRenderer
from audiostyle.batch.run import make_renderer
from audiostyle_cli.app import app
from audiostyle_cli.signals import Terminated
from tests.model_support import save_tiny_model, write_clip
from tests.test_batch_signals import ended, hidden_or_partial, manifest_lines, stop_batch


pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny model, saved once; tests copy it where they need it."""
    return save_tiny_model(tmp_path_factory.mktemp("trained") / "tiny.safetensors")


def copy_model(source: Path, target: Path) -> Path:
    for suffix in (".safetensors", ".json"):
        target.with_suffix(suffix).write_bytes(source.with_suffix(suffix).read_bytes())
    return target


@pytest.fixture
def model(trained: Path, tmp_path: Path) -> Path:
    return copy_model(trained, tmp_path / "rain.safetensors")


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """Mono 16 kHz, stereo 22.05 kHz in a sub-folder, and a FLAC: the outputs mirror each."""
    lib = tmp_path / "lib"
    write_clip(lib / "kick.wav", 0.4, 16000, 1, seed=1)
    write_clip(lib / "loops" / "pad.wav", 0.6, 22050, 2, seed=2)
    write_clip(lib / "snare.flac", 0.3, 44100, 1, seed=3)
    return lib


OUTPUTS = ["kick.wav", "loops/pad.wav", "snare.flac"]


def batch(*args: object):
    return CliRunner().invoke(app, ["batch", *map(str, args)], prog_name="audiostyle")


def latest(out: Path, since: int = 0) -> dict[str, dict]:
    """The records a run wrote after the manifest's first ``since`` lines, by output (relative)."""
    return {r["relative"]: r for r in ended(read_manifest(out / MANIFEST_NAME)[since:])}


def test_batch_with_a_model_writes_every_output_at_its_input_rate_and_channels(model: Path, library: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = batch(library, "--model", model, "-o", out)
    assert result.exit_code == 0, result.stderr
    digest = StyleModel.load(model, device="cpu").digest
    records = latest(out)
    assert sorted(records) == OUTPUTS
    for relative, record in records.items():
        source = sf.info(library / relative)
        written = sf.info(out / relative)
        assert (written.samplerate, written.channels, written.frames) == (source.samplerate, source.channels, source.frames)
        assert written.format == source.format
        assert record["status"] == "done" and record["kind"] == "model" and record["style"] == str(model)
        assert record["config_hash"] == digest and "losses" not in record and record["timings"]["apply"] >= 0
        assert np.isfinite(sf.read(out / relative)[0]).all()
    assert "audiostyle batch" in result.stdout and "manifest" in result.stdout  # the summary copes without losses
    assert not hidden_or_partial(out)


def test_rerun_skips_what_the_model_made_and_redoes_it_when_the_model_is_retrained(model: Path, library: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert batch(library, "--model", model, "-o", out, "-q").exit_code == 0
    first = {name: sf.read(out / name)[0] for name in OUTPUTS}

    lines = len(manifest_lines(out / MANIFEST_NAME))
    again = batch(library, "--model", model, "-o", out, "-q")
    assert again.exit_code == 0, again.stderr
    assert {r["status"] for r in latest(out, lines).values()} == {"skipped"}
    assert {r["reason"] for r in latest(out, lines).values()} == {"finished earlier with the same settings"}

    save_tiny_model(model, seed=1)  # retrained: the same file, another model
    lines = len(manifest_lines(out / MANIFEST_NAME))
    retrained = batch(library, "--model", model, "-o", out, "-q")
    assert retrained.exit_code == 0, retrained.stderr
    records = latest(out, lines)
    assert {r["status"] for r in records.values()} == {"done"} and sorted(records) == OUTPUTS
    assert {r["config_hash"] for r in records.values()} == {StyleModel.load(model, device="cpu").digest}
    assert all(not np.allclose(sf.read(out / name)[0], first[name]) for name in OUTPUTS)


def test_outputs_made_otherwise_are_kept_unless_overwrite(model: Path, trained: Path, library: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert batch(library, "--model", model, "-o", out, "-q").exit_code == 0
    other = save_tiny_model(tmp_path / "other.safetensors", seed=2)
    lines = len(manifest_lines(out / MANIFEST_NAME))
    kept = batch(library, "--model", other, "-o", out, "-q")
    assert kept.exit_code == 0, kept.stderr
    assert {r["reason"] for r in latest(out, lines).values()} == {"output exists, made otherwise; overwrite replaces it"}

    lines = len(manifest_lines(out / MANIFEST_NAME))
    replaced = batch(library, "--model", other, "-o", out, "-q", "--overwrite")
    assert replaced.exit_code == 0, replaced.stderr
    assert {r["status"] for r in latest(out, lines).values()} == {"done"}


def test_a_terminated_run_keeps_finished_outputs_and_the_same_command_resumes(model: Path, library: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "out"
    real, calls = ModelRenderer.render, []

    def terminated_second_job(self, content):
        calls.append(content)
        if len(calls) == 2:
            raise Terminated("received signal 15")
        return real(self, content)

    monkeypatch.setattr(ModelRenderer, "render", terminated_second_job)
    stopped = batch(library, "--model", model, "-o", out, "-q")
    assert stopped.exit_code == 143 and "terminated after 1 of 3" in stopped.stderr and "resume" in stopped.stderr
    assert [r["status"] for r in ended(read_manifest(out / MANIFEST_NAME))] == ["done"]
    assert sorted(p.name for p in out.iterdir()) == ["kick.wav", MANIFEST_NAME]

    monkeypatch.setattr(ModelRenderer, "render", real)
    lines = len(manifest_lines(out / MANIFEST_NAME))
    again = batch(library, "--model", model, "-o", out, "-q")
    assert again.exit_code == 0, again.stderr
    statuses = {name: r["status"] for name, r in latest(out, lines).items()}
    assert statuses == {"kick.wav": "skipped", "loops/pad.wav": "done", "snare.flac": "done"}


CLIPS = 40


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize(
    "signum, code, workers, group",
    [(signal.SIGINT, 130, 1, False), (signal.SIGTERM, 143, 2, True)],
    ids=["ctrl-c", "sigterm-process-group-2-workers"],
)
def test_a_signal_stops_a_model_batch_cleanly_and_the_rerun_resumes(
    trained: Path, tmp_path: Path, signum: int, code: int, workers: int, group: bool
) -> None:
    """As tests/test_batch_signals.py for styles: a real process, a real signal once the first
    output is recorded. Many short clips, since applying a model takes milliseconds."""
    model = copy_model(trained, tmp_path / "rain.safetensors")
    lib, out = tmp_path / "lib", tmp_path / "out"
    for index in range(CLIPS):
        write_clip(lib / f"hit{index:02d}.wav", 0.5, 16000, 1, seed=index)
    args = [str(lib), "--model", str(model), "-o", str(out), "-q"]
    first = stop_batch([*args, "--workers", str(workers)], tmp_path, signum, group=group)

    assert first.returncode == code, first.stderr[-3000:]
    lines = first.stderr.strip().splitlines()
    assert len(lines) == 1 and "resume" in lines[0] and "Traceback" not in first.stderr, first.stderr
    records = ended([json.loads(line) for line in manifest_lines(out / MANIFEST_NAME)])
    assert records and all(r["status"] == "done" for r in records), records
    done = {Path(r["output"]).name for r in records}
    assert len(done) < CLIPS, "the signal came after the last job: nothing was interrupted"
    assert sorted(p.name for p in out.iterdir()) == sorted([*done, MANIFEST_NAME])
    assert all(sf.info(out / name).frames == 8000 for name in done)
    assert not hidden_or_partial(out)

    written = len(manifest_lines(out / MANIFEST_NAME))
    again = batch(*args)
    assert again.exit_code == 0, again.stderr
    statuses = {name: r["status"] for name, r in latest(out, written).items()}
    shown = (out / MANIFEST_NAME).read_text()[-6000:]
    assert {name for name, status in statuses.items() if status == "skipped"} == done, (statuses, shown)
    assert {name for name, status in statuses.items() if status == "done"} == {f"hit{i:02d}.wav" for i in range(CLIPS)} - done


def test_worker_processes_get_the_model_once_and_never_read_its_file(model: Path, library: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    jobs = plan_model_batch([library], model, out)
    renderers = {jobs[0].config_hash: make_renderer(jobs[0], shipped=True)}
    model.unlink()
    model.with_suffix(".json").unlink()
    records: list[dict] = []
    local.run_processes(jobs, renderers, records.append, workers=2)
    assert sorted(r["relative"] for r in records if r["status"] == "done") == OUTPUTS


def test_dask_local_cluster_applies_the_model(model: Path, library: Path, tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    out = tmp_path / "out"
    report = run_batch(plan_model_batch([library], model, out), "dask", workers=2, manifest=out / MANIFEST_NAME)
    assert report.ok and len(report.done) == 3
    assert sf.info(out / "loops" / "pad.wav").channels == 2 and not hidden_or_partial(out)


def test_a_model_retrained_between_planning_and_running_is_refused(model: Path, library: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    jobs = plan_model_batch([library], model, out)
    save_tiny_model(model, seed=3)
    with pytest.raises(WeightsError, match="changed after the batch was planned"):
        run_batch(jobs, manifest=out / MANIFEST_NAME)
    assert not out.exists() or not any(p.suffix in (".wav", ".flac") for p in out.rglob("*"))


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--style", "{lib}/kick.wav"], ["--style", "--model", "not both"]),
        (["--preset", "fast", "-n", "5"], ["--preset", "--iterations", "--model"]),
        (["--device", "cpu"], ["--device", "--model"]),
    ],
    ids=["style-and-model", "engine-settings", "device"],
)
def test_settings_a_model_does_not_use_are_usage_errors(model: Path, library: Path, tmp_path: Path, extra, words) -> None:
    result = batch(library, "--model", model, "-o", tmp_path / "out", *(e.format(lib=library) for e in extra))
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert all(word in result.stderr for word in words), result.stderr
    assert not (tmp_path / "out").exists()


def test_neither_style_nor_model_is_a_usage_error(library: Path, tmp_path: Path) -> None:
    result = batch(library, "-o", tmp_path / "out")
    assert result.exit_code == 2 and "--style" in result.stderr and "--model" in result.stderr


def test_a_bad_model_file_stops_the_batch_before_any_job(model: Path, library: Path, tmp_path: Path) -> None:
    model.write_bytes(b"not a model")
    result = batch(library, "--model", model, "-o", tmp_path / "out")
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert str(model) in result.stderr and not (tmp_path / "out").exists()


def test_dry_run_plans_the_model_jobs_and_writes_nothing(model: Path, library: Path, tmp_path: Path) -> None:
    result = batch(library, "--model", model, "-o", tmp_path / "out", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "3 input files x 1 model = 3 jobs; 3 to run" in result.stdout and "audio-s/s per worker" in result.stdout
    assert not (tmp_path / "out").exists()

