"""Planning: which files to stylize with which style (or style model) into which output, and what is done already."""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import PRESETS, AudioStyleError, ConfigError, StyleConfig
from ..io import WRITABLE_EXTENSIONS, audio_info
from ..validation import is_number
from .jobs import Job, JobKind
from .manifest import MANIFEST_NAME, earlier_runs, read_manifest

logger = logging.getLogger("audiostyle")

#: The audio files a folder is searched for when no pattern is given (case-insensitive).
DEFAULT_PATTERNS = ("*.wav", "*.flac", "*.ogg", "*.oga", "*.aiff", "*.aif", "*.mp3")
#: How many redone outputs the planning warning names.
REDONE_SHOWN = 10

#: A content file found, its path relative to the output folder's mirror, and why it is skipped (or None).
Found = tuple[Path, Path, "str | None"]


@dataclass(frozen=True)
class _Renders:
    """What makes one set of outputs: a style file under a config, or a model file."""

    path: Path
    kind: JobKind
    config: StyleConfig
    config_hash: str


def plan_batch(
    inputs: Sequence[str | os.PathLike],
    styles: Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    config: StyleConfig | None = None,
    *,
    patterns: Sequence[str] | None = None,
    recursive: bool = True,
    overwrite: bool = False,
    format: str | None = None,
) -> list[Job]:
    """The jobs that stylize every matching input file with every style.

    Outputs mirror the input tree under ``output_dir`` (under ``output_dir/<style stem>/`` when
    there are several styles). With one input folder its contents are mirrored directly;
    with several inputs each folder keeps its own name and each file lands at the top.
    Each output keeps its input's format (``.wav`` when that cannot be written) unless
    ``format`` is given; sample rate and channels follow the input.

    Parameters
    ----------
    inputs : sequence of path
        Audio files and folders.
    styles : sequence of path
        Style files; each makes its own set of outputs.
    output_dir : path
        Where outputs and ``manifest.jsonl`` go; it may lie inside an input folder (it is
        then not searched). It need not exist.
    config : StyleConfig, optional
        Settings (default: ``PRESETS["default"]``).
    patterns : sequence of str, optional
        Shell patterns for file names in folders, case-insensitive (default: the audio
        extensions, :data:`DEFAULT_PATTERNS`). Files named directly are always taken.
    recursive : bool
        Search sub-folders.
    overwrite : bool
        Redo outputs that exist, even when an earlier run finished them with these settings.
        Without it an existing output is skipped, unless the manifest shows that a run with
        these settings started its job and stopped before recording it (killed): that
        output is made again, with a warning that names it.
    format : str, optional
        Output extension for every job (``"wav"``, ``"flac"``, ...).

    Returns
    -------
    list of Job
        In input order, styles innermost; jobs not to run carry a ``skip_reason``.

    Raises
    ------
    ConfigError
        No inputs or styles, an input or style that does not exist, nothing matched, two
        jobs writing the same file, or styles with the same name.
    """
    config = PRESETS["default"] if config is None else config
    if not isinstance(config, StyleConfig):
        raise ConfigError(f"config must be a StyleConfig; got {type(config).__name__}")
    renders = [_Renders(style, "style", config, _config_hash(config, style)) for style in _style_paths(styles)]
    return _plan(inputs, renders, output_dir, patterns=patterns, recursive=recursive, overwrite=overwrite, format=format)


def plan_model_batch(
    inputs: Sequence[str | os.PathLike],
    model: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    patterns: Sequence[str] | None = None,
    recursive: bool = True,
    overwrite: bool = False,
    format: str | None = None,
) -> list[Job]:
    """The jobs that apply a trained style model to every matching input file.

    As :func:`plan_batch` with one style, but each output is one pass of the model
    (:meth:`audiostyle.StyleModel.apply`) instead of an optimisation. The jobs' settings are
    the model's, and their config hash is the model's digest: outputs an earlier run made
    with this model are skipped, those made with another model (or one retrained since) are
    not replaced unless ``overwrite``.

    Parameters
    ----------
    inputs : sequence of path
        Audio files and folders.
    model : path
        A style model file (``.safetensors`` with its JSON sidecar beside it), from
        :func:`audiostyle.train_style_model` and ``StyleModel.save``.
    output_dir : path
        Where outputs and ``manifest.jsonl`` go (it need not exist).
    patterns, recursive, overwrite, format
        As for :func:`plan_batch`.

    Returns
    -------
    list of Job
        In input order, each with ``kind == "model"`` and ``style`` the model file; jobs not
        to run carry a ``skip_reason``.

    Raises
    ------
    ConfigError
        No inputs, an input that does not exist, nothing matched, or two jobs writing the
        same file.
    WeightsError
        The model file is missing or unusable (see ``StyleModel.load``).
    """
    from ..models import StyleModel

    path = Path(model)
    loaded = StyleModel.load(path, device="cpu")
    renders = [_Renders(path, "model", loaded.config, loaded.digest)]
    return _plan(inputs, renders, output_dir, patterns=patterns, recursive=recursive, overwrite=overwrite, format=format)


def _plan(
    inputs: Sequence[str | os.PathLike],
    renders: list[_Renders],
    output_dir: str | os.PathLike,
    *,
    patterns: Sequence[str] | None,
    recursive: bool,
    overwrite: bool,
    format: str | None,
) -> list[Job]:
    """The jobs of every content found with every one of ``renders``; warns of redone outputs."""
    if not inputs:
        raise ConfigError("no inputs: give at least one audio file or folder")
    output_dir = Path(output_dir)
    found = _find_contents(inputs, tuple(patterns) if patterns else DEFAULT_PATTERNS, recursive, output_dir.resolve())
    jobs, redone = _jobs(found, renders, output_dir, overwrite=overwrite, format=format)
    if redone:
        shown = ", ".join(redone[:REDONE_SHOWN])
        if len(redone) > REDONE_SHOWN:
            shown += f" and {len(redone) - REDONE_SHOWN} more"
        logger.warning(
            "%d output(s) of an earlier run that stopped before recording them will be made again: %s",
            len(redone),
            shown,
        )
    return jobs


def _style_paths(styles: Sequence[str | os.PathLike]) -> list[Path]:
    if not styles:
        raise ConfigError("no style: give at least one style file")
    paths = [Path(s) for s in styles]
    for style in paths:
        if not style.is_file():
            problem = "not a regular file (a folder, pipe or device)" if style.exists() else "no such file"
            raise ConfigError(f"style {style}: {problem}")
    stems = [s.stem for s in paths]
    if len(set(stems)) != len(stems):
        raise ConfigError(f"styles must have different names (outputs go to output_dir/<style name>/); got {stems}")
    return paths


def _find_contents(
    inputs: Sequence[str | os.PathLike], patterns: tuple[str, ...], recursive: bool, real_output: Path
) -> list[Found]:
    """Every content file: each file named, and each matching file in each folder named."""
    contents: list[Found] = []
    single_folder = len(inputs) == 1 and Path(inputs[0]).is_dir()
    for given in map(Path, inputs):
        if given.is_dir():
            found = list(_scan_folder(given, patterns, recursive, real_output))
            if not found:
                raise ConfigError(
                    f"{given}: no files match {', '.join(patterns)}"
                    + ("" if recursive else " (sub-folders not searched: recursive=False)")
                )
            prefix = Path() if single_folder else Path(given.resolve().name)
            contents.extend((path, prefix / rel, reason) for path, rel, reason in found)
        elif given.exists():
            contents.append((given, Path(given.name), None))
        else:
            raise ConfigError(f"input {given}: no such file or folder")
    return contents


def _scan_folder(root: Path, patterns: Sequence[str], recursive: bool, exclude: Path) -> Iterable[Found]:
    """(file, path relative to root, skip reason) for each matching file under root.

    Hidden files and folders, the output folder and links to folders are not entered; a
    file link whose target lies outside ``root`` is reported with a skip reason.
    """
    real_root = root.resolve()
    for folder, subfolders, files in os.walk(root, followlinks=False):
        here = Path(folder)
        kept = []
        for name in sorted(subfolders):
            sub = here / name
            if name.startswith(".") or sub.resolve() == exclude:
                continue
            if sub.is_symlink():
                logger.warning("%s: linked folder not followed", sub)
                continue
            kept.append(name)
        subfolders[:] = kept if recursive else []
        for name in sorted(files):
            path = here / name
            if not name.startswith(".") and _matches(name, patterns):
                yield path, path.relative_to(root), _link_problem(path, real_root)


def _link_problem(path: Path, real_root: Path) -> str | None:
    """Why a file link is not followed (broken, or to outside the input folder); None for a file."""
    reason = None
    if path.is_symlink():
        target = path.resolve()
        if not target.exists():
            reason = f"broken link (to {target})"
        elif not _inside(target, real_root):
            reason = f"link outside the input folder (to {target})"
    if reason is not None:
        logger.warning("%s: skipped, %s", path, reason)
    return reason


def _matches(name: str, patterns: Sequence[str]) -> bool:
    lowered = name.lower()
    return any(fnmatch.fnmatchcase(lowered, pattern.lower()) for pattern in patterns)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _jobs(
    contents: list[Found], renders: list[_Renders], output_dir: Path, *, overwrite: bool, format: str | None
) -> tuple[list[Job], list[str]]:
    """A job for each content with each style or model, and the outputs (relative) a killed run left unrecorded."""
    real_output = output_dir.resolve()
    finished, unfinished = earlier_runs(output_dir)
    made_by_model = _model_outputs(output_dir) if any(source.kind == "model" for source in renders) else {}
    jobs: list[Job] = []
    seen: dict[str, Path] = {}
    redone: list[str] = []
    for path, rel, reason in contents:
        duration = _duration(path) if reason is None else None
        for source in renders:
            base = output_dir / source.path.stem if len(renders) > 1 else output_dir
            output = base / rel.with_suffix(_output_suffix(rel, format))
            if not _inside(output.resolve(), real_output):
                raise ConfigError(f"{path}: its output {output} would lie outside {output_dir}")
            if str(output) in seen:
                raise ConfigError(f"{path} and {seen[str(output)]} would both be written to {output}")
            seen[str(output)] = path
            relative = output.relative_to(output_dir).as_posix()
            skip = reason
            if skip is None and not overwrite and output.exists():
                if unfinished.get(relative) == source.config_hash:
                    # A killed run of this plan may have written it without recording it.
                    redone.append(relative)
                elif finished.get(relative) == source.config_hash:
                    skip = "finished earlier with the same settings"
                elif source.kind == "model" and made_by_model.get(relative) == str(source.path.resolve()):
                    logger.info("%s: made by an earlier version of %s; made again", relative, source.path)
                else:
                    skip = "output exists, made otherwise; overwrite replaces it"
            replace = overwrite or (skip is None and output.exists())
            jobs.append(
                Job(str(path), str(output), str(source.path), source.config, source.config_hash, duration, skip, relative,
                    source.kind, replace)
            )
    return jobs, redone


def _model_outputs(output_dir: Path) -> dict[str, str]:
    """The model file (resolved) of each output (relative) whose last finished job applied a model.

    An output a model file made is ours to redo once that file holds another model (retrained:
    another digest); one made otherwise is left alone unless ``overwrite``.
    """
    made: dict[str, str] = {}
    for record in read_manifest(output_dir / MANIFEST_NAME):
        relative = record.get("relative")
        if record.get("status") != "done" or not isinstance(relative, str):
            continue
        if record.get("kind") == "model" and isinstance(record.get("style"), str):
            made[relative] = str(Path(record["style"]).resolve())
        else:
            made.pop(relative, None)
    return made


def _duration(path: Path) -> float | None:
    """The file's length in seconds from its header, None when the header is unreadable."""
    with contextlib.suppress(AudioStyleError):
        return audio_info(path).duration
    return None


def _output_suffix(path: Path, format: str | None) -> str:
    if format is not None:
        suffix = "." + format.lower().lstrip(".")
        if suffix not in WRITABLE_EXTENSIONS:
            raise ConfigError(f"format={format!r} must be one of {[e[1:] for e in WRITABLE_EXTENSIONS]}")
        return suffix
    return path.suffix if path.suffix.lower() in WRITABLE_EXTENSIONS else ".wav"


def _config_hash(config: StyleConfig, style: Path) -> str:
    """The identity of the settings and the style file (path, size, modification time)."""
    stat = style.stat()
    style_identity = {"path": str(style.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    identity = json.dumps({"config": config.digest(), "style": style_identity}, sort_keys=True)
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def summarize_plan(jobs: Sequence[Job]) -> dict[str, Any]:
    """Counts and durations of a plan, for a dry run.

    Returns
    -------
    dict
        ``jobs``, ``inputs``, ``styles`` (style or model files), ``models`` (model files),
        ``to_run`` (counts), ``skipped`` (count by reason),
        ``unreadable_headers`` (jobs to run whose length is unknown) and ``audio_seconds``
        (the length of the audio to stylize).
    """
    runnable = [job for job in jobs if job.skip_reason is None]
    reasons: dict[str, int] = {}
    for job in jobs:
        if job.skip_reason is not None:
            key = job.skip_reason.split(" (")[0]
            reasons[key] = reasons.get(key, 0) + 1
    return {
        "jobs": len(jobs),
        "inputs": len({job.input for job in jobs}),
        "styles": len({job.style for job in jobs}),
        "models": len({job.style for job in jobs if job.kind == "model"}),
        "to_run": len(runnable),
        "skipped": reasons,
        "unreadable_headers": sum(1 for job in runnable if job.duration is None),
        "audio_seconds": sum(job.duration or 0.0 for job in runnable),
    }


def estimate_rate(jobs: Sequence[Job], manifest: str | os.PathLike | None = None) -> tuple[float, str]:
    """Audio seconds stylized per second of one worker, and where the figure comes from.

    From the manifest's finished jobs with the same settings when there are some; otherwise
    measured by rendering two seconds of noise with the first job's style or model.
    """
    hashes = {job.config_hash for job in jobs}
    history = [
        r for r in (read_manifest(manifest) if manifest is not None else [])
        # Its own figures checked: the manifest is a file anyone may edit.
        if r.get("status") == "done" and r.get("config_hash") in hashes
        and all(is_number(r.get(key)) and r[key] > 0 for key in ("seconds", "duration"))
    ]
    if history:
        rate = sum(r["duration"] for r in history) / sum(r["seconds"] for r in history)
        return rate, f"from {len(history)} earlier jobs"
    from .run import make_renderer

    job = jobs[0]
    renderer = make_renderer(job)
    rate = job.config.sample_rate
    noise = (0.1 * np.random.default_rng(0).standard_normal(2 * rate)).astype(np.float32)
    # The first run pays one-off costs (lazy imports, allocator warm-up): time the second.
    renderer.render((noise[: rate // 4], rate))
    started = time.perf_counter()
    renderer.render((noise, rate))
    return 2.0 / (time.perf_counter() - started), "measured on 2 s of noise"
