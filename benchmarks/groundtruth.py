"""Ground-truth timbre transfer: does the output sound like the content's melody on the style's instrument?

After Cífka et al. (ICASSP 2021, "Self-supervised VQ-VAE for one-shot music style
transfer"): melodies written here are rendered through fluidsynth with General MIDI
soundfonts, so every content/style pair has a known answer. For each *triplet*

- content = melody M on instrument A,
- style   = a different melody N (other notes, another key) on instrument B,
- truth   = melody M on instrument B,

all three from the same soundfont with the same render settings (22050 Hz, mono, no
reverb or chorus, peak-normalised), a few seconds long and bit-for-bit reproducible. The
triplets span bowed strings, winds, brass, organs, plucked strings, mallets, pianos and
voice-like pads, within a family and across families, on FluidR3_GM and (``-tim``)
TimGM6mb; each pair of melodies shares no pitch class, so style notes that leak into an
output show up in its pitch-class histogram. Six more (``--triplets register``, not in the
default set) take the style's clip an octave or two above or below the content's register,
as a real style clip often is.

Every output is scored against the truth by :mod:`benchmarks.groundtruth_metrics`:
log-mel distance, MFCC timbre statistics and long-term spectrum (timbre: lower is
better), chroma correlation, pYIN pitch accuracy and onset F1, against the truth's
detected onsets and against the score's note starts (content: higher is better), and the
leak detector, the correlation of the output's pitch-class histogram with the truth's and
with the style's. References on every triplet: the content copied, the plain
50/50 mix (:func:`benchmarks.baselines.mix`), the style itself and the truth (distance 0,
correlation 1). A method should be closer to the truth than the content copy and the mix
in timbre while keeping the content's notes.

Needs ``fluidsynth`` and the Debian soundfonts (``apt-get install fluidsynth
fluid-soundfont-gm timgm6mb-soundfont``). Renders are cached in
``benchmarks/results/groundtruth_audio/``.

    python -m benchmarks.groundtruth                                   # default preset, random network
    python -m benchmarks.groundtruth --presets default fast --networks random pretrained
    python -m benchmarks.groundtruth --triplets 4                      # the first four triplets
    python -m benchmarks.groundtruth --triplets violin-cello piano-violin --seconds 6
    python -m benchmarks.groundtruth --triplets register               # the style in another register
    python -m benchmarks.groundtruth --yardstick                       # and on the yardstick of real pairs

Prints a row per triplet and method and a summary per method, and writes
benchmarks/results/groundtruth.json.

With ``--yardstick`` the mix, the truth and every method are also scored by the yardstick of
real pairs (:func:`benchmarks.quality_metrics.score`, with the triplet's content and style),
which has no truth to go by: the truth's figures there are what a perfect transfer that keeps
every note reaches, and whether it is ahead of the mix says whether that yardstick's "ahead of
the mix" can be asked of such a transfer.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from audiostyle import PRESETS, load_audio, save_audio, stylize
from training.midi import MidiTrack

from .baselines import mix
from .groundtruth_metrics import MEASURES, RATE, Analysis, analyze, compare
from .quality_metrics import score as yardstick_score

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
AUDIO_CACHE = RESULTS / "groundtruth_audio"
SOUNDFONT_DIR = Path("/usr/share/sounds/sf2")
SOUNDFONTS = {"fluidr3": SOUNDFONT_DIR / "FluidR3_GM.sf2", "timgm6mb": SOUNDFONT_DIR / "TimGM6mb.sf2"}
#: Part of every cached file's name: change it whenever a render setting or melody changes.
RENDER_VERSION = 1
#: Clips from one second (a melody's first notes) to a minute (the melody repeated).
MIN_SECONDS, MAX_SECONDS = 1.0, 60.0
_RENDER_TIMEOUT_SECONDS = 120
_PEAK = 0.7
_VELOCITY = 96
_STEP_SECONDS = 0.25
# Notes sound for 85 % of their length: even legato bowed and blown notes get an attack
# the onset detector can see.
_ARTICULATION = 0.85
_REST_STEPS = 2

class Melody(NamedTuple):
    """A monophonic melody: its first note's time and its notes as (MIDI pitch, steps of 0.25 s)."""

    lead_in: float
    notes: tuple[tuple[int, float], ...]


#: Melodies of 3-3.5 s within C4-F#5, so every instrument below plays them in its own range.
#: They come in pairs that share no pitch class (C major / F# pentatonic, A minor / F#
#: pentatonic, D major / Ab major, Eb / E pentatonic), and the two of a pair start half a
#: step apart, so their onsets miss each other by more than onset F1's 50 ms tolerance: a
#: triplet takes its content and style melodies from one pair, and style notes or rhythm
#: leaking into an output lower its scores.
MELODIES: dict[str, Melody] = {
    # Beethoven's Ode to Joy, C major: E E F G G F E D C C D E E. D
    "ode_c": Melody(0.05, ((64, 1), (64, 1), (65, 1), (67, 1), (67, 1), (65, 1), (64, 1), (62, 1), (60, 1),
                           (60, 1), (62, 1), (64, 1), (64, 1.5), (62, 0.5))),
    # F# major pentatonic, rising then falling: F# G# A# C# D# C# A# G# F# A# C# F#
    "penta_fs": Melody(0.175, ((66, 1), (68, 1), (70, 1), (73, 1), (75, 1), (73, 1), (70, 1), (68, 1), (66, 1),
                               (70, 1), (73, 1), (78, 2))),
    # A natural minor, Greensleeves-like: A C D E. F E D B G. A B
    "minor_a": Melody(0.05, ((69, 1), (72, 2), (74, 1), (76, 1.5), (77, 0.5), (76, 1), (74, 2), (71, 1),
                             (67, 1.5), (69, 0.5), (71, 1))),
    # D major with leaps: D A F# D B A B F# G E D
    "leaps_d": Melody(0.05, ((62, 1), (69, 1), (66, 1), (74, 1), (71, 1), (69, 1), (71, 1), (66, 1), (67, 1),
                             (64, 1), (62, 2))),
    # Ab major: Ab Bb C Db Eb Db C Bb Ab Eb F Ab
    "scale_ab": Melody(0.175, ((68, 1), (70, 1), (72, 1), (73, 1), (75, 1), (73, 1), (72, 1), (70, 1), (68, 1),
                               (63, 1), (65, 1), (68, 2))),
    # Eb major pentatonic: Eb G Bb C Bb G F Eb C Eb F G
    "penta_eb": Melody(0.05, ((63, 1), (67, 1), (70, 1), (72, 1), (70, 1), (67, 1), (65, 1), (63, 1), (60, 1),
                              (63, 1), (65, 1), (67, 2))),
    # E major pentatonic: E G# B C# B G# F# E C# E F# E
    "penta_e": Melody(0.175, ((64, 1), (68, 1), (71, 1), (73, 1), (71, 1), (68, 1), (66, 1), (64, 1), (61, 1),
                              (64, 1), (66, 1), (64, 2))),
}


@dataclass(frozen=True)
class Triplet:
    """One benchmark case: melody on instrument ``content_program`` -> the style's instrument.

    Programs are General MIDI numbers from 0 (0 acoustic grand piano, 40 violin, ...).
    ``style_transpose`` moves the style's melody by semitones into its instrument's range.
    """

    family: str
    content_program: int
    style_program: int
    melody: str
    style_melody: str
    soundfont: str = "fluidr3"
    style_transpose: int = 0


#: Within a family first, then across families; ``-tim`` renders with TimGM6mb. Content and
#: truth instruments are tuned within about 20 cents of each other: a detuned sample
#: (FluidR3's choir aahs sit 41 cents flat, its choir pad 59 and its harp 39 cents sharp)
#: would make pitch accuracy measure the soundfont's tuning instead of the transfer.
TRIPLETS: dict[str, Triplet] = {
    "violin-cello": Triplet("bowed", 40, 42, "ode_c", "penta_fs", style_transpose=-12),
    "cello-viola-tim": Triplet("bowed", 42, 41, "minor_a", "penta_fs", "timgm6mb"),
    "strings-violin": Triplet("bowed", 48, 40, "leaps_d", "scale_ab"),
    "flute-clarinet": Triplet("wind", 73, 71, "penta_eb", "penta_e"),
    "oboe-flute-tim": Triplet("wind", 68, 73, "scale_ab", "leaps_d", "timgm6mb"),
    "trumpet-horn": Triplet("brass", 56, 60, "ode_c", "penta_fs"),
    "trombone-trumpet": Triplet("brass", 57, 56, "penta_e", "penta_eb"),
    "church-drawbar": Triplet("organ", 19, 16, "minor_a", "penta_fs"),
    "accordion-reed": Triplet("organ", 21, 20, "leaps_d", "scale_ab"),
    "nylon-banjo": Triplet("plucked", 24, 105, "penta_fs", "ode_c"),
    "steel-nylon-tim": Triplet("plucked", 25, 24, "scale_ab", "leaps_d", "timgm6mb"),
    "marimba-vibes": Triplet("mallet", 12, 11, "ode_c", "penta_fs"),
    "xylo-marimba-tim": Triplet("mallet", 13, 12, "penta_eb", "penta_e", "timgm6mb"),
    "piano-epiano": Triplet("piano", 0, 4, "minor_a", "penta_fs"),
    "harpsi-piano": Triplet("piano", 6, 0, "penta_e", "penta_eb"),
    "choir-oohs-tim": Triplet("voice", 52, 53, "leaps_d", "scale_ab", "timgm6mb"),
    "warmpad-synthvoice": Triplet("voice", 89, 54, "penta_fs", "minor_a"),
    "piano-violin": Triplet("cross", 0, 40, "ode_c", "penta_fs"),
    "violin-piano": Triplet("cross", 40, 0, "penta_fs", "ode_c"),
    "flute-trumpet": Triplet("cross", 73, 56, "scale_ab", "leaps_d"),
    "guitar-flute": Triplet("cross", 24, 73, "penta_eb", "penta_e"),
    "organ-clarinet": Triplet("cross", 19, 71, "leaps_d", "scale_ab"),
    "oohs-sax-tim": Triplet("cross", 53, 65, "minor_a", "penta_fs", "timgm6mb"),
    "marimba-cello": Triplet("cross", 12, 42, "penta_e", "penta_eb", style_transpose=-12),
}
#: The style's clip an octave or two above (``-up``) or below (``-down``) the content's melody,
#: which the truth plays in the content's register: a style clip covers only the register its
#: player chose, and statistics of its spectrum read the notes it lacks as part of its timbre.
#: Not among :data:`TRIPLETS` (whose means the issue's criteria read); run with
#: ``--triplets register``.
REGISTER_TRIPLETS: dict[str, Triplet] = {
    "piano-violin-up": Triplet("register", 0, 40, "ode_c", "penta_fs", style_transpose=12),
    "clarinet-violin-up": Triplet("register", 71, 40, "minor_a", "penta_fs", style_transpose=12),
    "oboe-flute-up-tim": Triplet("register", 68, 73, "scale_ab", "leaps_d", "timgm6mb", style_transpose=12),
    "guitar-cello-down": Triplet("register", 24, 42, "penta_e", "penta_eb", style_transpose=-24),
    "flute-clarinet-down": Triplet("register", 73, 71, "minor_a", "penta_fs", style_transpose=-12),
    "organ-piano-down": Triplet("register", 19, 0, "leaps_d", "scale_ab", style_transpose=-24),
}
REFERENCES = ("content", "mix", "style", "truth")


_ALL_TRIPLETS = {**TRIPLETS, **REGISTER_TRIPLETS}


def triplet(name: str) -> Triplet:
    """A triplet of :data:`TRIPLETS` or :data:`REGISTER_TRIPLETS` by name (KeyError if neither)."""
    return _ALL_TRIPLETS[name]


def check_tools(soundfonts: set[str] | None = None) -> str | None:
    """None if fluidsynth and the needed soundfonts are installed, else what is missing."""
    names = sorted(soundfonts if soundfonts is not None else SOUNDFONTS)
    missing = [] if shutil.which("fluidsynth") else ["fluidsynth"]
    missing += [str(SOUNDFONTS[name]) for name in names if not SOUNDFONTS[name].is_file()]
    return None if not missing else "missing " + ", ".join(missing)


def _played_notes(melody: str, seconds: float) -> list[tuple[float, float, int]]:
    """(start, sounding length, MIDI pitch) of each note of ``melody`` repeated until ``seconds``."""
    lead_in, notes = MELODIES[melody]
    played = []
    start = lead_in
    while True:
        for pitch, steps in notes:
            length = steps * _STEP_SECONDS
            if start + _STEP_SECONDS > seconds:
                return played
            played.append((start, min(length * _ARTICULATION, seconds - start), pitch))
            start += length
        start += _REST_STEPS * _STEP_SECONDS


def melody_track(melody: str, program: int, seconds: float, *, transpose: int = 0) -> MidiTrack:
    """One melody on one GM program, repeated after a short rest until ``seconds``.

    Every voice is cut at ``seconds``, so the render ends there.
    """
    track = MidiTrack()
    track.program(0.0, 0, program)
    for start, length, pitch in _played_notes(melody, seconds):
        track.note(start, length, 0, pitch + transpose, _VELOCITY)
    track.sound_off(seconds, 0)
    return track


def note_starts(melody: str, seconds: float) -> np.ndarray:
    """When each note of ``melody``'s render of ``seconds`` starts, in seconds [shape=(notes,)].

    The score the content and the truth share: the reference of ``onset_f1_score``, which
    unlike the truth's detected onsets has no missed or doubled ones.
    """
    return np.array([start for start, _, _ in _played_notes(melody, seconds)])


def render(
    soundfont: str, program: int, melody: str, seconds: float, *, transpose: int = 0,
    cache: Path | None = AUDIO_CACHE,
) -> np.ndarray:
    """A melody on a GM program through fluidsynth: float32 ``(1, samples)`` at 22050 Hz.

    Parameters
    ----------
    soundfont : str
        A key of :data:`SOUNDFONTS`.
    program : int
        General MIDI program, 0-127.
    melody : str
        A key of :data:`MELODIES`.
    seconds : float
        Length, between 1 and 60 s; the result has exactly ``round(seconds * 22050)`` samples.
    transpose : int
        Semitones added to every note.
    cache : Path or None
        Folder of rendered files (reused when present and of the right rate and length).

    Returns
    -------
    np.ndarray [shape=(1, samples), dtype=float32]
        Channels averaged, scaled to a peak of 0.7.

    Raises
    ------
    ValueError
        An unknown soundfont or melody, a program outside 0-127, a transposition that leaves
        the MIDI pitch range, or a length out of range.
    RuntimeError
        fluidsynth or the soundfont is missing, or the render failed or came back silent.
    """
    if soundfont not in SOUNDFONTS:
        raise ValueError(f"soundfont={soundfont!r} must be one of {sorted(SOUNDFONTS)}")
    if melody not in MELODIES:
        raise ValueError(f"melody={melody!r} must be one of {sorted(MELODIES)}")
    if not 0 <= program <= 127:
        raise ValueError(f"program={program} must be in 0-127")
    if not MIN_SECONDS <= seconds <= MAX_SECONDS:
        raise ValueError(f"seconds={seconds} must be in [{MIN_SECONDS}, {MAX_SECONDS}]")
    pitches = [pitch + transpose for pitch, _ in MELODIES[melody].notes]
    if not 0 <= min(pitches) <= max(pitches) <= 127:
        raise ValueError(f"transpose={transpose} takes {melody} outside MIDI pitches 0-127")
    samples = round(seconds * RATE)
    path = None
    if cache is not None:
        path = cache / f"{soundfont}_p{program:03d}_{melody}{transpose:+d}_{samples}_v{RENDER_VERSION}.wav"
        cached = _read_cached(path, samples)
        if cached is not None:
            return cached
    missing = check_tools({soundfont})
    if missing:
        raise RuntimeError(f"cannot render: {missing} (apt-get install fluidsynth fluid-soundfont-gm timgm6mb-soundfont)")
    audio = _fluidsynth(melody_track(melody, program, seconds, transpose=transpose), SOUNDFONTS[soundfont])
    audio = np.pad(audio[:samples], (0, max(0, samples - audio.shape[0])))
    peak = float(np.max(np.abs(audio)))
    if peak == 0.0:
        raise RuntimeError(f"fluidsynth rendered silence for program {program} on {soundfont}")
    audio = (audio * (_PEAK / peak)).astype(np.float32)[np.newaxis, :]
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_audio(path, audio, RATE, subtype="FLOAT")
    return audio


def render_triplet(name: str, seconds: float = 4.0, *, cache: Path | None = AUDIO_CACHE) -> dict[str, np.ndarray]:
    """The ``content``, ``style`` and ``truth`` clips of one triplet (see :func:`render`)."""
    case = triplet(name)

    def clip(program: int, melody: str, transpose: int = 0) -> np.ndarray:
        return render(case.soundfont, program, melody, seconds, transpose=transpose, cache=cache)

    return {
        "content": clip(case.content_program, case.melody),
        "style": clip(case.style_program, case.style_melody, case.style_transpose),
        "truth": clip(case.style_program, case.melody),
    }


def method_name(preset: str, network: str) -> str:
    return preset if network == "random" else f"{preset}+{Path(network).stem}"


def score_triplet(
    clips: dict[str, np.ndarray], outputs: dict[str, np.ndarray], score_onsets: np.ndarray | None = None
) -> dict[str, dict[str, float | str | None]]:
    """Each reference (content, mix, style, truth) and each output, scored against the truth
    (and its onsets against ``score_onsets``, the note starts of :func:`note_starts`, when given)."""
    candidates = {
        "content": clips["content"], "mix": mix(clips["content"], clips["style"], RATE),
        "style": clips["style"], "truth": clips["truth"], **outputs,
    }
    analyses: dict[str, Analysis] = {method: analyze(audio) for method, audio in candidates.items()}
    return {
        method: compare(analysis, analyses["truth"], analyses["style"], score_onsets=score_onsets)
        for method, analysis in analyses.items()
    }


#: The yardstick's candidates on a triplet besides the methods: the plain mix and the truth.
YARDSTICK_REFERENCES = ("mix", "truth")


def yardstick_triplet(clips: dict[str, np.ndarray], outputs: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """The mix, the truth and each output scored by the yardstick of real pairs
    (:func:`benchmarks.quality_metrics.score`) against the triplet's content and style."""
    content, style = (clips["content"], RATE), (clips["style"], RATE)
    candidates = {"mix": mix(clips["content"], clips["style"], RATE), "truth": clips["truth"], **outputs}
    return {method: yardstick_score((audio, RATE), content, style) for method, audio in candidates.items()}


def summarise_yardstick(rows: list[dict], methods: list[str]) -> dict[str, dict[str, float | int]]:
    """Per method: the mean style, content and combined yardstick scores, and on how many
    triplets its combined score is above the mix's."""
    mix_combined = {row["triplet"]: row["combined"] for row in rows if row["method"] == "mix"}
    summary: dict[str, dict[str, float | int]] = {}
    for method in methods:
        mine = [row for row in rows if row["method"] == method]
        if not mine:
            continue
        summary[method] = {
            "triplets": len(mine),
            **{key: float(np.mean([row[key] for row in mine])) for key in ("style", "content", "combined")},
            "ahead_of_mix": sum(row["combined"] > mix_combined[row["triplet"]] for row in mine),
        }
    return summary


def summarise(rows: list[dict], methods: list[str]) -> dict[str, dict[str, float | int | None]]:
    """Per method: the mean of each measure and how often it beats the content copy and the mix."""
    by_key = {(row["triplet"], row["method"]): row for row in rows}
    summary: dict[str, dict[str, float | int | None]] = {}
    for method in methods:
        mine = [row for row in rows if row["method"] == method]
        if not mine:
            continue
        entry: dict[str, float | int | None] = {"triplets": len(mine)}
        for measure in MEASURES:
            values = [row[measure] for row in mine if row[measure] is not None]
            entry[measure] = float(np.mean(values)) if values else None
        for measure, label in (("log_mel_db", "beats_copy_and_mix_log_mel"), ("timbre", "beats_copy_and_mix_timbre")):
            entry[label] = sum(
                row[measure] < by_key[(row["triplet"], "content")][measure]
                and row[measure] < by_key[(row["triplet"], "mix")][measure]
                for row in mine
            )
        entry["closer_to_truth_than_style"] = sum(row["closer_to"] == "truth" for row in mine)
        summary[method] = entry
    return summary


def _fluidsynth(track: MidiTrack, soundfont: Path) -> np.ndarray:
    """Render a MIDI track without reverb or chorus; returns the mono float64 waveform."""
    import soundfile

    with tempfile.TemporaryDirectory() as folder:
        midi_path, wav_path = Path(folder) / "melody.mid", Path(folder) / "melody.wav"
        track.save(midi_path)
        command = ["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.5", "-r", str(RATE),
                   "-O", "float", "-F", str(wav_path), str(soundfont), str(midi_path)]
        try:
            subprocess.run(command, check=True, capture_output=True, timeout=_RENDER_TIMEOUT_SECONDS)
        except subprocess.CalledProcessError as error:
            raise RuntimeError(f"fluidsynth failed: {error.stderr.decode(errors='replace').strip()}") from error
        audio, rate = soundfile.read(str(wav_path), dtype="float64", always_2d=True)
    if rate != RATE:
        raise RuntimeError(f"fluidsynth rendered at {rate} Hz, expected {RATE}")
    return audio.mean(axis=1)


def _read_cached(path: Path, samples: int) -> np.ndarray | None:
    if not path.is_file():
        return None
    try:
        audio, rate = load_audio(path)
    except Exception:  # a damaged cache file is rendered again
        return None
    if rate != RATE or audio.shape != (1, samples) or not np.all(np.isfinite(audio)):
        return None
    return audio.astype(np.float32, copy=False)


def _pick_triplets(choice: list[str]) -> list[str]:
    if len(choice) == 1 and choice[0].isdigit():
        count = int(choice[0])
        if not 1 <= count <= len(TRIPLETS):
            raise SystemExit(f"--triplets {count} must be in 1-{len(TRIPLETS)}")
        return list(TRIPLETS)[:count]
    names = [name for entry in choice for name in (REGISTER_TRIPLETS if entry == "register" else [entry])]
    unknown = [name for name in names if name not in _ALL_TRIPLETS]
    if unknown:
        raise SystemExit(f"unknown triplet(s) {unknown}; valid: {', '.join(_ALL_TRIPLETS)}, register")
    return list(dict.fromkeys(names))


def _format(value: float | None, width: int, digits: int) -> str:
    return f"{'-':>{width}s}" if value is None else f"{value:{width}.{digits}f}"


_COLUMNS = (  # (measure, header, width, digits)
    ("log_mel_db", "logmel", 7, 2), ("timbre", "timbre", 7, 1), ("ltas_db", "ltas", 6, 2),
    ("chroma", "chroma", 7, 3), ("pitch", "pitch", 6, 3), ("pitch_class", "pclass", 6, 3),
    ("onset_f1", "onsF1", 6, 3), ("onset_f1_score", "ons~sc", 6, 3), ("histogram_truth", "h~tru", 6, 3),
    ("histogram_style", "h~sty", 6, 3),
)


def _row_line(label: str, method: str, values: dict, extra: str) -> str:
    cells = " ".join(_format(values[measure], width, digits) for measure, _, width, digits in _COLUMNS)
    return f"{label:18s} {method:18s} {cells} {extra}"


def _print_yardstick(rows: list[dict], methods: list[str], triplets: int) -> dict[str, dict[str, float | int]]:
    print()
    print(f"{'yardstick':18s} {'method':18s} {'style':>6s} {'content':>8s} {'combined':>9s}  ahead of the mix")
    for row in rows:
        print(f"{row['triplet']:18s} {row['method']:18s} {row['style']:6.3f} {row['content']:8.3f} {row['combined']:9.3f}")
    summary = summarise_yardstick(rows, methods)
    for method, entry in summary.items():
        ahead = "" if method == "mix" else f"  {entry['ahead_of_mix']}/{triplets}"
        print(f"{'mean':18s} {method:18s} {entry['style']:6.3f} {entry['content']:8.3f} {entry['combined']:9.3f}{ahead}")
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["default"], choices=sorted(PRESETS))
    parser.add_argument(
        "--networks", nargs="+", default=["random"],
        help="feature networks to run each preset with (random, pretrained, or a .safetensors path)",
    )
    parser.add_argument(
        "--triplets", nargs="+", default=[str(len(TRIPLETS))],
        help=f"a count (the first N) or names, or 'register' for the {len(REGISTER_TRIPLETS)} triplets whose style "
        f"plays in another register; default all {len(TRIPLETS)}",
    )
    parser.add_argument("--seconds", type=float, default=4.0, help=f"clip length, {MIN_SECONDS:g}-{MAX_SECONDS:g}")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--output", type=Path, default=RESULTS / "groundtruth.json")
    parser.add_argument("--cache", type=Path, default=AUDIO_CACHE, help="folder of rendered clips")
    parser.add_argument(
        "--yardstick", action="store_true",
        help="also score the mix, the truth and each method on the yardstick of real pairs (benchmarks.quality_metrics)",
    )
    args = parser.parse_args(argv)
    if not MIN_SECONDS <= args.seconds <= MAX_SECONDS:
        parser.error(f"--seconds {args.seconds} must be in [{MIN_SECONDS:g}, {MAX_SECONDS:g}]")
    names = _pick_triplets(args.triplets)
    missing = check_tools({triplet(name).soundfont for name in names})
    if missing:
        raise SystemExit(f"cannot render the triplets: {missing}")

    methods = [method_name(preset, network) for preset in args.presets for network in args.networks]
    header = " ".join(f"{title:>{width}s}" for _, title, width, _ in _COLUMNS)
    print(f"{'triplet':18s} {'method':18s} {header} {'closer':>6s} {'seconds':>7s}")
    rows, yardstick_rows = [], []
    for name in names:
        clips = render_triplet(name, args.seconds, cache=args.cache)
        outputs, seconds = {}, {}
        for preset in args.presets:
            for network in args.networks:
                config = PRESETS[preset].replace(device=args.device, network=network)
                start = time.perf_counter()
                result = stylize((clips["content"], RATE), (clips["style"], RATE), config)
                method = method_name(preset, network)
                seconds[method] = time.perf_counter() - start
                outputs[method] = result.audio
        starts = note_starts(triplet(name).melody, args.seconds)
        for method, values in score_triplet(clips, outputs, starts).items():
            row = {"triplet": name, "method": method, "seconds": seconds.get(method, 0.0), **values}
            rows.append(row)
            print(_row_line(name, method, values, f"{values['closer_to']:>6s} {row['seconds']:7.1f}"), flush=True)
        if args.yardstick:
            for method, values in yardstick_triplet(clips, outputs).items():
                yardstick_rows.append({"triplet": name, "method": method, **values})

    summary = summarise(rows, [*REFERENCES, *methods])
    print()
    print(f"{'mean of ' + str(len(names)) + ' triplets':18s} {'method':18s} {header}"
          "  beats copy+mix (logmel/timbre)  hist closer to truth")
    for method, entry in summary.items():
        extra = (f"  {entry['beats_copy_and_mix_log_mel']:>13d} / {entry['beats_copy_and_mix_timbre']:<14d}"
                 f"  {entry['closer_to_truth_than_style']:>4d}/{entry['triplets']}")
        print(_row_line("mean", method, entry, extra))
    report = {
        "seconds": args.seconds, "rate": RATE, "render_version": RENDER_VERSION,
        "triplets": {name: asdict(triplet(name)) for name in names},
        "rows": rows, "summary": summary,
    }
    if args.yardstick:
        report["yardstick_rows"] = yardstick_rows
        report["yardstick_summary"] = _print_yardstick(yardstick_rows, [*YARDSTICK_REFERENCES, *methods], len(names))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
