"""Batch mode: planning, the manifest and resuming, bad inputs, interrupts, local workers and
a real Dask LocalCluster."""

from __future__ import annotations

import json
import os
import socket
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

import audiostyle.batch.execute as batch_execute
from audiostyle import ConfigError, StyleConfig, prepare_style, stylize
from audiostyle.batch import MANIFEST_NAME, check_executor, plan_batch, read_manifest, run_batch
from audiostyle_cli.app import app

CONFIG = StyleConfig(
    sample_rate=16000, n_fft=512, hop_length=128, filters=48, kernel_widths=(3, 7),
    iterations=3, griffin_lim_iters=4, device="cpu",
)
TINY = ["-n", "3", "--filters", "48", "--kernel-widths", "3,7", "--sample-rate", "16000",
        "--n-fft", "512", "--hop-length", "128", "--device", "cpu", "-q"]


pytestmark = pytest.mark.usefixtures("single_thread")


def cli(*args: object):
    return CliRunner().invoke(app, ["batch", *map(str, args)], prog_name="audiostyle")


def noise(path: Path, seconds: float = 0.5, rate: int = 16000, channels: int = 1, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.2 * rng.standard_normal((int(seconds * rate), channels))).astype(np.float32), rate)
    return path


def by_input(records: list[dict]) -> dict[str, dict]:
    return {Path(r["input"]).name: r for r in records}


def ended(records: list[dict]) -> list[dict]:
    """The records of jobs that ended, without the ``started`` ones written before a run."""
    return [r for r in records if r["status"] != "started"]


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".part" in p.name]


@pytest.fixture
def style(tmp_path: Path) -> Path:
    return noise(tmp_path / "style.wav", 0.8, seed=1)


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """one.wav, 'sub dir/tëst ü.flac' (stereo, 22.05 kHz), a corrupt file, a text file, and a
    link to a file outside the tree."""
    lib = tmp_path / "lib"
    noise(lib / "one.wav")
    noise(lib / "sub dir" / "tëst ü.flac", rate=22050, channels=2, seed=2)
    (lib / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    (lib / "notes.txt").write_text("not audio")
    outside = noise(tmp_path / "elsewhere" / "outside.wav", seed=3)
    try:
        os.symlink(outside, lib / "link.wav")
    except (OSError, NotImplementedError):
        pass
    return lib


def test_library_run_mirrors_tree_records_failures_and_resumes(library: Path, style: Path):
    out = library / "out"  # inside the input folder: must not be searched
    first = cli(library, "--style", style, "-o", out, *TINY)
    assert first.exit_code == 1, first.stderr + first.stdout
    assert "corrupt.wav" in first.stderr and "failed" in first.stderr

    one, tricky = out / "one.wav", out / "sub dir" / "tëst ü.flac"
    assert sf.info(one).samplerate == 16000 and sf.info(one).channels == 1
    assert sf.info(tricky).samplerate == 22050 and sf.info(tricky).channels == 2
    assert sf.info(tricky).format == "FLAC"
    assert np.isfinite(sf.read(tricky)[0]).all()
    assert not (out / "corrupt.wav").exists() and not leftovers(library)

    records = by_input(read_manifest(out / MANIFEST_NAME))
    assert records["one.wav"]["status"] == "done" and records["tëst ü.flac"]["status"] == "done"
    assert records["one.wav"]["losses"]["last"]["style"] < records["one.wav"]["losses"]["first"]["style"]
    assert records["one.wav"]["timings"]["total"] > 0
    assert records["corrupt.wav"]["status"] == "failed" and "corrupt.wav" in records["corrupt.wav"]["error"]
    if (library / "link.wav").is_symlink():
        assert records["link.wav"]["status"] == "skipped" and "outside" in records["link.wav"]["reason"]
        assert not (out / "link.wav").exists()
    assert "notes.txt" not in records

    # The dry run plans from the manifest (the corrupt file is still to do) and writes nothing.
    lines = (out / MANIFEST_NAME).read_text(encoding="utf-8").count("\n")
    dry = cli(library, "--style", style, "-o", out, *TINY, "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert "1 to run" in dry.stdout and "estimated time" in dry.stdout
    assert (out / MANIFEST_NAME).read_text(encoding="utf-8").count("\n") == lines

    # The rerun skips the finished outputs, retries the failed file, never re-reads out/.
    mtime = one.stat().st_mtime_ns
    second = cli(library, "--style", style, "-o", out, *TINY)
    assert second.exit_code == 1
    latest = by_input(read_manifest(out / MANIFEST_NAME)[lines:])
    assert latest["one.wav"]["status"] == "skipped" and latest["tëst ü.flac"]["status"] == "skipped"
    assert latest["corrupt.wav"]["status"] == "failed"
    assert one.stat().st_mtime_ns == mtime
    assert not (out / "out").exists()


@pytest.mark.parametrize(
    "make, args, fragment",
    [
        (lambda d: (d / "empty").mkdir(), ["empty"], "no files match"),
        (lambda d: noise(d / "lib" / "a.wav"), ["lib", "--pattern", "*.aiff"], "no files match *.aiff"),
        (lambda d: None, ["missing"], "no such file or folder"),
        (lambda d: noise(d / "lib" / "a.wav"), ["lib", "--executor", "spark"], "--executor"),
        (lambda d: noise(d / "lib" / "a.wav"), ["lib", "--scheduler", "tcp://x:1"], "--executor dask"),
    ],
)
def test_usage_errors_exit_2_with_one_line(tmp_path, style, make, args, fragment):
    make(tmp_path)
    args = [tmp_path / a if i == 0 else a for i, a in enumerate(args)]
    result = cli(*args, "--style", style, "-o", tmp_path / "out", *TINY)
    assert result.exit_code == 2, result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("audiostyle: error:") and fragment in lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "settings, fragment",
    [
        ({"executor": "spark"}, "executor='spark'"),
        ({"workers": 0}, "workers=0"),
        ({"workers": True}, "workers=True"),
        ({"workers": 2.0}, "workers=2.0"),
        ({"scheduler": "tcp://x:1"}, "executor='dask'"),
    ],
)
def test_executor_settings_are_checked_once_before_any_work(settings, fragment):
    with pytest.raises(ConfigError, match=fragment):
        check_executor(**settings)
    with pytest.raises(ConfigError, match=fragment):
        run_batch([], **settings)
    check_executor("dask", workers=3, scheduler="tcp://x:1")


def test_plan_several_styles_formats_and_collisions(tmp_path, style):
    lib = tmp_path / "lib"
    noise(lib / "a.wav")
    noise(lib / "deep" / "b.aiff")
    other = noise(tmp_path / "other.flac", seed=4)
    jobs = plan_batch([lib], [style, other], tmp_path / "out", CONFIG, format="flac")
    outputs = sorted(Path(j.output).relative_to(tmp_path / "out").as_posix() for j in jobs)
    assert outputs == ["other/a.flac", "other/deep/b.flac", "style/a.flac", "style/deep/b.flac"]
    assert len({j.config_hash for j in jobs}) == 2

    # Two inputs that would write the same file, and a non-recursive plan.
    noise(lib / "a.flac")
    with pytest.raises(ConfigError, match="both be written"):
        plan_batch([lib], [style], tmp_path / "out", CONFIG, format="wav")
    flat = plan_batch([lib], [style], tmp_path / "out", CONFIG, recursive=False)
    assert sorted(Path(j.input).name for j in flat) == ["a.flac", "a.wav"]


def test_resume_needs_the_same_settings(tmp_path, style):
    lib, out = tmp_path / "lib", tmp_path / "out"
    noise(lib / "a.wav")
    (job,) = plan_batch([lib], [style], out, CONFIG)
    noise(Path(job.output))
    (out / MANIFEST_NAME).write_text(
        json.dumps({"output": job.output, "relative": "a.wav", "status": "done", "config_hash": job.config_hash}) + "\n{\"partial",
        encoding="utf-8",
    )
    (same,) = plan_batch([lib], [style], out, CONFIG)
    assert same.skip_reason.startswith("finished earlier")
    (changed,) = plan_batch([lib], [style], out, CONFIG.replace(seed=5))
    assert changed.config_hash != job.config_hash and "overwrite replaces it" in changed.skip_reason
    (forced,) = plan_batch([lib], [style], out, CONFIG.replace(seed=5), overwrite=True)
    assert forced.skip_reason is None
    (elsewhere,) = plan_batch([lib], [style], out.resolve(), CONFIG)  # OUTDIR spelt another way
    assert elsewhere.skip_reason.startswith("finished earlier")
    os.utime(style, ns=(0, 0))  # the style file changed: its identity is part of the hash
    (touched,) = plan_batch([lib], [style], out, CONFIG)
    assert touched.config_hash != job.config_hash


def test_file_vanishing_mid_run_fails_alone_and_manifest_survives_partial_line(tmp_path, style):
    lib, out = tmp_path / "lib", tmp_path / "out"
    noise(lib / "a.wav"), noise(lib / "b.wav", seed=5)
    jobs = plan_batch([lib], [style], out, CONFIG)
    out.mkdir()
    (out / MANIFEST_NAME).write_bytes(b'{"output": "x", "stat')  # a crash's partial line

    def remove_b(record, report):
        (lib / "b.wav").unlink(missing_ok=True)

    report = run_batch(jobs, "local", remove_b, manifest=out / MANIFEST_NAME)
    assert [r["status"] for r in report.records] == ["done", "failed"]
    assert "does not exist" in report.failed[0]["error"] and not report.ok
    assert [r["status"] for r in ended(read_manifest(out / MANIFEST_NAME))] == ["done", "failed"]


def test_interrupt_keeps_finished_outputs_and_rerun_resumes(tmp_path, style, monkeypatch):
    lib, out = tmp_path / "lib", tmp_path / "out"
    for index in range(3):
        noise(lib / f"{index}.wav", seed=index)
    calls = []
    real = batch_execute.stylize

    def interrupted_second_job(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(batch_execute, "stylize", interrupted_second_job)
    result = cli(lib, "--style", style, "-o", out, *TINY)
    assert result.exit_code == 130
    assert "interrupted" in result.stderr and "resume" in result.stderr
    records = ended(read_manifest(out / MANIFEST_NAME))
    assert [r["status"] for r in records] == ["done"]
    assert sf.read(records[0]["output"])[0].size > 0
    assert sorted(p.name for p in out.iterdir()) == ["0.wav", MANIFEST_NAME]

    monkeypatch.setattr(batch_execute, "stylize", real)
    again = run_batch(plan_batch([lib], [style], out, CONFIG.replace(device="cpu")), manifest=out / MANIFEST_NAME)
    assert again.ok and len(again.done) == 2 and len(again.skipped) == 1


def test_prepared_style_gives_the_same_result(tmp_path, style):
    content = noise(tmp_path / "content.wav", seed=7)
    prepared = prepare_style(style, CONFIG)
    direct = stylize(content, style, CONFIG)
    reused = stylize(content, None, CONFIG, prepared=prepared)
    np.testing.assert_allclose(reused.audio, direct.audio, atol=1e-5)
    with pytest.raises(ConfigError, match="filters"):
        stylize(content, None, CONFIG.replace(filters=64), prepared=prepared)
    # Every setting the network depends on is checked, the front end and dilations included.
    for changes, name in [(dict(mel_bands=32), "mel_bands"), (dict(kernel_dilations=(1, 2)), "kernel_dilations")]:
        with pytest.raises(ConfigError, match=name):
            stylize(content, None, CONFIG.replace(**changes), prepared=prepared)


def test_local_worker_processes(tmp_path, style):
    lib, out = tmp_path / "lib", tmp_path / "out"
    noise(lib / "a.wav"), noise(lib / "b.wav", seed=5)
    (lib / "c.wav").write_bytes(b"junk")
    report = run_batch(plan_batch([lib], [style], out, CONFIG), workers=2, manifest=out / MANIFEST_NAME)
    assert sorted(r["status"] for r in report.records) == ["done", "done", "failed"]
    assert sf.info(out / "a.wav").frames == sf.info(lib / "a.wav").frames
    assert [r["status"] for r in read_manifest(out / MANIFEST_NAME)][:3] == ["started"] * 3
    assert len(ended(read_manifest(out / MANIFEST_NAME))) == 3


def test_dask_local_cluster_of_two_workers(tmp_path, style):
    pytest.importorskip("distributed")
    lib, out = tmp_path / "lib", tmp_path / "out"
    noise(lib / "a.wav"), noise(lib / "b b.wav", seed=5)
    (lib / "c.wav").write_bytes(b"junk")
    report = run_batch(plan_batch([lib], [style], out, CONFIG), "dask", workers=2, manifest=out / MANIFEST_NAME)
    statuses = {Path(r["input"]).name: r["status"] for r in read_manifest(out / MANIFEST_NAME)}
    assert statuses == {"a.wav": "done", "b b.wav": "done", "c.wav": "failed"}
    assert "c.wav" in report.failed[0]["error"]
    assert sf.info(out / "b b.wav").samplerate == 16000 and not leftovers(out)


def test_a_dask_batch_beside_another_cluster_on_dasks_usual_port_warns_of_nothing(tmp_path, style):
    pytest.importorskip("distributed")
    lib, out = tmp_path / "lib", tmp_path / "out"
    noise(lib / "a.wav")
    with socket.socket() as taken, warnings.catch_warnings(record=True) as caught:
        try:
            taken.bind(("127.0.0.1", 8787))  # another cluster's dashboard, as a notebook's would be
            taken.listen()
        except OSError:
            pass  # something holds it already, which is the case under test too
        warnings.simplefilter("always")
        report = run_batch(plan_batch([lib], [style], out, CONFIG), "dask", workers=1, manifest=out / MANIFEST_NAME)
    assert [r["status"] for r in report.records] == ["done"]
    assert not [w for w in caught if "already in use" in str(w.message)]


def test_an_output_format_that_cannot_hold_the_input_fails_that_job_before_its_work(tmp_path):
    source = tmp_path / "nine.wav"
    sf.write(source, np.zeros((4000, 9), np.float32) + 0.1, 16000)

    class NoWork:
        def render(self, content):
            raise AssertionError("the work started although the output could not be written")

    job = batch_execute.Job(input=str(source), output=str(tmp_path / "out" / "nine.flac"), style="s.wav",
                            config=StyleConfig(), config_hash="h")
    outcome = batch_execute.execute(job, NoWork())
    assert outcome["status"] == "failed" and "FLAC holds at most 8 channels, not 9" in outcome["error"]
    assert not (tmp_path / "out").exists()


def test_manifest_records_of_the_wrong_shape_are_ignored(tmp_path):
    from audiostyle.batch.plan import estimate_rate

    good = {"input": "a.wav", "output": str(tmp_path / "a.wav"), "status": "done", "config_hash": "h",
            "duration": 2.0, "seconds": 1.0}
    hostile = [
        {**good, "config_hash": ["h"]},  # a list where a hash goes
        {**good, "style": "s\x00.wav"},  # a NUL no path call takes
        {**good, "duration": "2"},
        {**good, "duration": True},
        {**good, "seconds": None},
    ]
    manifest = tmp_path / MANIFEST_NAME
    manifest.write_text("".join(json.dumps(r) + "\n" for r in [*hostile, good]))
    assert read_manifest(manifest)[:-1] == [hostile[-1]] and read_manifest(manifest)[-1] == good
    job = batch_execute.Job(input="a.wav", output="o.wav", style="s.wav", config=StyleConfig(), config_hash="h")
    rate, source = estimate_rate([job], manifest)
    assert rate == 2.0 and source == "from 1 earlier jobs"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_pipe_among_the_inputs_fails_alone_and_as_the_style_is_named_a_pipe(tmp_path, style):
    library = tmp_path / "lib"
    noise(library / "a.wav")
    os.mkfifo(library / "m.wav")  # opening it would wait for a writer
    result = cli(library, "--style", style, "-o", tmp_path / "out", *TINY)
    assert result.exit_code == 1, result.stderr + result.stdout
    latest = {Path(r["input"]).name: r for r in read_manifest(tmp_path / "out" / MANIFEST_NAME)}
    assert latest["a.wav"]["status"] == "done" and latest["m.wav"]["status"] == "failed"
    assert "is not a regular file" in latest["m.wav"]["error"]
    os.mkfifo(tmp_path / "pipe.wav")
    result = cli(library / "a.wav", "--style", tmp_path / "pipe.wav", "-o", tmp_path / "out2", *TINY)
    assert result.exit_code == 2 and "not a regular file" in result.stderr


def test_a_file_that_appears_at_an_output_after_planning_is_kept(tmp_path, style):
    lib, out = tmp_path / "lib", tmp_path / "out"
    for index in range(2):
        noise(lib / f"{index}.wav", seed=index)
    jobs = plan_batch([lib], [style], out, CONFIG.replace(device="cpu"))
    out.mkdir()
    theirs = out / "1.wav"  # another run's, or the user's, written while this one works
    theirs.write_bytes(b"not ours")
    report = run_batch(jobs, manifest=out / MANIFEST_NAME)
    assert theirs.read_bytes() == b"not ours"
    assert len(report.done) == 1 and len(report.failed) == 1 and "already exists" in report.failed[0]["error"]
    # With overwrite, or when the plan itself chose to make it again, it is replaced.
    again = run_batch(plan_batch([lib], [style], out, CONFIG.replace(device="cpu"), overwrite=True), manifest=out / MANIFEST_NAME)
    assert theirs.read_bytes() != b"not ours" and len(again.done) == 2


def test_a_scheduler_address_dask_cannot_parse_is_a_usage_error(tmp_path, style):
    pytest.importorskip("distributed")
    noise(tmp_path / "lib" / "a.wav")
    result = cli(tmp_path / "lib", "--style", style, "-o", tmp_path / "out", "--executor", "dask", "--scheduler", "bogus", *TINY)
    assert result.exit_code == 2, result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "bogus" in lines[0] and "cannot connect" in lines[0]
