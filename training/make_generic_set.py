"""Render the shipped generic content set that style-model training mixes with the user's clips.

A style model (``audiostyle train``) learns a mapping from *any* content to a style; trained on
one library alone it would only know that library's sounds. This set adds a few seconds each
of speech, pitched instruments, drum patterns and one-shot hits, all rendered here from text
and MIDI written in this file (never from ``samples/`` or the evaluation corpus, which must not
leak into training):

- speech: espeak-ng, American English and German, a male and a female variant of each;
- instruments: FluidR3_GM (fluidsynth) phrases on piano, guitar, strings, flute, brass,
  organ, synth pad and bass, in several keys and registers;
- drums: General MIDI channel 10 patterns (rock, shuffle, sparse hand percussion);
- one-shots: a single hit or note and its decay, as in the sample libraries users batch.

Every clip is mono 22050 Hz, 1-4 s, has 10 ms raised-cosine fades, is peak-normalised to
-3 dBFS and written as 16-bit FLAC named ``<category>_<name>.flac``; the folder's README.md
(table of files, how each was made, licences) is written from the same specs. The only
randomness (small timing and velocity humanisation, voice pitch and speed) comes from a NumPy
generator seeded per clip from ``--seed``, so a run is reproducible on the same tool versions.

Usage::

    python training/make_generic_set.py                      # -> audiostyle/models/generic
    python training/make_generic_set.py --out /tmp/generic --seed 1
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import recipe  # noqa: E402
from generate_data import SOUNDFONT, check_tools, render_midi  # noqa: E402
from midi import MidiTrack  # noqa: E402

from audiostyle import save_audio  # noqa: E402

SAMPLE_RATE = recipe.SAMPLE_RATE  # the rate generate_data's renderer writes
PEAK_DBFS = -3.0
FADE_SECONDS = 0.010
MAX_TOTAL_BYTES = 1_200_000  # the set ships in every wheel; keep it small
CATEGORIES = ("speech", "instrument", "drums", "oneshot")
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "audiostyle" / "models" / "generic"

DRUM_CHANNEL = 9  # General MIDI channel 10
DRUM_BANK = 128  # fluidsynth's percussion bank
STANDARD_KIT, JAZZ_KIT = 0, 32  # keys of recipe.DRUM_KITS
NOTE_NAMES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}

#: A timed event of a phrase: start and length in beats, then space-separated note names
#: (melodic) or GM drum keys (drums), each with an optional ``@velocity`` (default 96).
Event = tuple[float, float, str]


def pitch(name: str) -> int:
    """MIDI number of a note name such as ``"C4"`` (60), ``"F#2"`` or ``"Bb3"``."""
    letter, accidental, octave = name[0], name[1:-1], int(name[-1])
    return 12 * (octave + 1) + NOTE_NAMES[letter] + {"": 0, "#": 1, "b": -1}[accidental]


@dataclass(frozen=True)
class Phrase:
    """A MIDI phrase on one program: ``events`` in beats of ``beat`` seconds."""

    program: int
    beat: float
    events: tuple[Event, ...]
    drums: bool = False
    bank: int = 0

    def track(self, rng: np.random.Generator) -> MidiTrack:
        """The phrase as a MIDI track, humanised by up to 8 ms and 6 velocity steps."""
        channel = DRUM_CHANNEL if self.drums else 0
        track = MidiTrack()
        track.program(0.0, channel, self.program, bank=self.bank)
        for start, length, notes in self.events:
            onset = 0.02 + start * self.beat + float(rng.uniform(0.0, 0.008))
            for note in notes.split():
                key, _, level = note.partition("@")
                velocity = int(np.clip(int(level or 96) + rng.integers(-6, 7), 1, 127))
                number = int(key) if self.drums else pitch(key)
                track.note(onset, length * self.beat, channel, number, velocity)
        return track


@dataclass(frozen=True)
class Speech:
    """A sentence spoken by espeak-ng with ``voice`` (language+variant)."""

    voice: str
    text: str

    def command(self, wav: Path, rng: np.random.Generator) -> list[str]:
        speed, voice_pitch = int(rng.integers(160, 176)), int(rng.integers(35, 61))
        return ["espeak-ng", "-v", self.voice, "-s", str(speed), "-p", str(voice_pitch),
                "-w", str(wav), self.text]


@dataclass(frozen=True)
class GenericClip:
    """One file of the set: its name, what it holds, its length and its source."""

    category: str
    name: str
    description: str
    seconds: float
    source: Phrase | Speech

    @property
    def filename(self) -> str:
        return f"{self.category}_{self.name}.flac"

    def how_made(self) -> str:
        if isinstance(self.source, Speech):
            return f'espeak-ng `-v {self.source.voice}`: "{self.source.text}"'
        program = self.source.program
        if self.source.drums:
            return f"fluidsynth + FluidR3_GM, {recipe.DRUM_KITS[program]} kit (bank {DRUM_BANK}, program {program})"
        return f"fluidsynth + FluidR3_GM, {recipe.GM_PROGRAMS[program]} (program {program})"


def _drums(kit: int, beat: float, *events: Event) -> Phrase:
    return Phrase(program=kit, beat=beat, events=events, drums=True, bank=DRUM_BANK)


def _rock() -> tuple[Event, ...]:
    # A bar and a quarter of eighths at 133 bpm: kick on 1 and 3 (and the "and" of 3), snare on
    # 2 and 4, then a closing crash with kick and snare.
    events: list[Event] = [(0.0, 1.0, "49@100")]
    for eighth in range(10):
        hits = ["42@80" if eighth % 2 else "42@100"]
        if eighth % 8 in (0, 4, 5):
            hits.append("36@110")
        if eighth % 8 in (2, 6):
            hits.append("38@105")
        events.append((eighth, 0.5, " ".join(hits)))
    events.append((10.0, 1.0, "49@110 36@110 38@100"))
    return tuple(events)


def _shuffle() -> tuple[Event, ...]:
    # Swung eighths: ride on each beat and on the last triplet of it, pedal hi-hat on 2 and 4.
    events: list[Event] = []
    for beat in range(5):
        events.append((beat, 0.6, "51@95" + (" 44@70" if beat % 2 else " 35@80")))
        events.append((beat + 2 / 3, 0.3, "51@70" + (" 38@40" if beat == 2 else "")))
    events.append((4.0, 1.0, "38@100 35@90"))
    return tuple(events)


CLIPS: tuple[GenericClip, ...] = (
    GenericClip("speech", "en_us_male", "spoken sentence, American English, male voice", 2.7,
                Speech("en-us+m3", "Turn the radio down, I can hardly hear you.")),
    GenericClip("speech", "en_us_female", "spoken question, American English, female voice", 2.7,
                Speech("en-us+f3", "Would you close the window on your way out?")),
    GenericClip("speech", "de_male", "spoken sentence, German, male voice", 2.7,
                Speech("de+m1", "Morgen fahren wir mit dem Zug an die Küste.")),
    GenericClip("speech", "de_female", "spoken sentence, German, female voice", 2.7,
                Speech("de+f2", "Heute ist es kühl, aber die Sonne scheint.")),
    GenericClip("instrument", "piano", "grand piano, C major melody over left-hand chords", 2.7,
                Phrase(0, 0.31, (
                    (0, 2, "C3 G3 E4"), (0, 1, "G4"), (1, 1, "E5"), (2, 2, "F3 A3 C4"), (2, 1, "D5"),
                    (3, 1, "C5"), (4, 2, "G2 G3 B3"), (4, 1, "B4"), (5, 1, "D5"), (6, 2, "C3 G3 E4"),
                    (6, 2, "C5")))),
    GenericClip("instrument", "guitar", "nylon guitar, E minor and C major arpeggios", 2.7,
                Phrase(24, 0.165, tuple((i, 4, note) for i, note in enumerate(
                    "E2 B2 E3 G3 B3 E4 B3 G3 C3 G3 C4 E4 G4 E4".split())))),
    GenericClip("instrument", "strings", "string ensemble, sustained D major chords", 2.7,
                Phrase(48, 0.47, (
                    (0, 2, "D3 A3 F#4 D5"), (2, 1.6, "G3 B3 G4 D5"), (3.7, 1.2, "A3 C#4 E4 A4")))),
    GenericClip("instrument", "flute", "flute, G major melody in a high register", 2.7,
                Phrase(73, 0.165, (
                    (0, 1, "D5"), (1, 1, "G5"), (2, 1, "A5"), (3, 2, "B5"), (5, 1, "D6"), (6, 1, "B5"),
                    (7, 1, "A5"), (8, 2, "G5"), (10, 1, "F#5"), (11, 1, "E5"), (12, 3, "D5")))),
    GenericClip("instrument", "brass", "brass section, B-flat major stabs and a held chord", 2.7,
                Phrase(61, 0.27, (
                    (0, 0.5, "Bb3 D4 F4"), (1, 0.5, "Bb3 D4 F4"), (2.5, 0.5, "Eb4 G4 Bb4"),
                    (4, 0.8, "C4 Eb4 G4"), (5, 4, "F3 C4 F4 A4")))),
    GenericClip("instrument", "organ", "church organ, F major cadence with pedal notes", 2.7,
                Phrase(19, 0.41, (
                    (0, 2, "F2 F3 A3 C4"), (2, 2, "Bb1 Bb3 D4 F4"), (4, 2, "C2 G3 C4 E4")))),
    GenericClip("instrument", "synth_pad", "warm synth pad, slow A minor to F major", 2.7,
                Phrase(89, 0.65, ((0, 2, "A2 E3 C4 E4"), (2, 1.8, "F2 C3 A3 C4")))),
    GenericClip("instrument", "bass", "electric bass, eighth-note line in E", 2.7,
                Phrase(33, 0.165, tuple((i, 0.9, note) for i, note in enumerate(
                    "E1 E1 E2 E1 G1 A1 B1 A1 E1 E1 E2 D2 B1 A1 G1".split())))),
    GenericClip("drums", "rock", "rock beat, kick/snare/hi-hat eighths at 133 bpm", 2.7,
                _drums(STANDARD_KIT, 0.225, *_rock())),
    GenericClip("drums", "shuffle", "jazz kit shuffle on the ride cymbal", 2.7,
                _drums(JAZZ_KIT, 0.54, *_shuffle())),
    GenericClip("drums", "percussion", "sparse congas, claves, shaker and cowbell", 2.7,
                _drums(STANDARD_KIT, 0.225,
                       (0, 1, "63@100"), (1.5, 1, "62@80"), (2, 1, "64@110"), (3, 1, "75@90"),
                       (4.5, 1, "70@70"), (5, 1, "70@60"), (6, 1, "56@85"), (8, 1, "64@105"),
                       (9, 1, "63@95"), (10.5, 1, "75@80"))),
    GenericClip("oneshot", "kick", "one kick drum hit and its decay", 1.2,
                _drums(STANDARD_KIT, 0.5, (0, 1, "36@115"))),
    GenericClip("oneshot", "snare", "one snare drum hit and its decay", 1.2,
                _drums(STANDARD_KIT, 0.5, (0, 1, "38@110"))),
    GenericClip("oneshot", "synth_bass", "one synth bass note (D2) and its decay", 1.2,
                Phrase(38, 0.5, ((0, 1.0, "D2@105"),))),
)


def _run(command: list[str]) -> None:
    result = subprocess.run(command, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if result.returncode:
        raise SystemExit(f"{command[0]} failed ({result.returncode}): {result.stderr.strip()}")


def _speak(speech: Speech, workdir: Path, rng: np.random.Generator) -> np.ndarray:
    wav = workdir / "speech.wav"
    _run(speech.command(wav, rng))
    audio, rate = sf.read(str(wav), dtype="float32", always_2d=True)
    if rate != SAMPLE_RATE:
        raise SystemExit(f"espeak-ng wrote {rate} Hz, expected {SAMPLE_RATE}")
    return audio.mean(axis=1)


def trim_silence(audio: np.ndarray, *, threshold_db: float = -45.0, margin: float = 0.02) -> np.ndarray:
    """Drop leading and trailing samples quieter than ``threshold_db`` below the peak."""
    loud = np.flatnonzero(np.abs(audio) > np.abs(audio).max() * 10 ** (threshold_db / 20))
    pad = round(margin * SAMPLE_RATE)
    return audio[max(0, loud[0] - pad): loud[-1] + pad + 1]


def finish(audio: np.ndarray, seconds: float, *, label: str) -> np.ndarray:
    """Cut or pad to ``seconds``, fade 10 ms at both ends, then scale the peak to -3 dBFS."""
    length = round(seconds * SAMPLE_RATE)
    audio = np.pad(audio[:length], (0, max(0, length - len(audio)))).astype(np.float64)
    fade = round(FADE_SECONDS * SAMPLE_RATE)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(fade) / fade)
    audio[:fade] *= ramp
    audio[-fade:] *= ramp[::-1]
    peak = np.abs(audio).max()
    if peak == 0:
        raise SystemExit(f"{label}: the renderer wrote silence")
    return (audio * (10 ** (PEAK_DBFS / 20) / peak)).astype(np.float32)


def render(clip: GenericClip, workdir: Path, seed: int) -> np.ndarray:
    """The finished waveform of one clip [shape=(samples,)], from its own seeded generator."""
    # Seeding by name keeps each clip the same when others are added or reordered.
    rng = np.random.default_rng([seed, zlib.crc32(clip.filename.encode())])
    if isinstance(clip.source, Speech):
        audio = trim_silence(_speak(clip.source, workdir, rng))
    else:
        audio = render_midi(clip.source.track(rng), workdir)
    return finish(audio, clip.seconds, label=clip.filename)


def tool_versions() -> str:
    """The renderers' versions, e.g. "FluidSynth 2.3.1 and eSpeak NG 1.51": the bytes depend on them."""
    def version(command: str, word: str) -> str:
        result = subprocess.run([command, "--version"], check=False, capture_output=True, text=True)
        words = (result.stdout or result.stderr).split()
        return words[words.index(word) + 1] if word in words else "(unknown version)"

    return f"FluidSynth {version('fluidsynth', 'version')} and eSpeak NG {version('espeak-ng', 'text-to-speech:')}"


FLUID_LICENCE = """\
> Copyright © 2000-2002, 2008 Frank Wen
> Copyright © 2008 Toby Smithe
>
> Permission is hereby granted, free of charge, to any person obtaining a copy of this
> software and associated documentation files (the "Software"), to deal in the Software
> without restriction, including without limitation the rights to use, copy, modify, merge,
> publish, distribute, sublicense, and/or sell copies of the Software, and to permit persons
> to whom the Software is furnished to do so, subject to the following conditions:
>
> The above copyright notice and this permission notice shall be included in all copies or
> substantial portions of the Software.
>
> THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED,
> INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR
> PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE
> FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR
> OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER
> DEALINGS IN THE SOFTWARE."""


def readme(clips: tuple[GenericClip, ...], total_bytes: int, seed: int, versions: str) -> str:
    """The folder's README: what each file is, how it was made, and the licences."""
    rows = "\n".join(
        f"| `{clip.filename}` | {clip.category} | {clip.description} | {clip.how_made()} | "
        f"{'espeak-ng output, free to use (below)' if isinstance(clip.source, Speech) else 'MIT (FluidR3_GM)'} |"
        for clip in clips
    )
    return f"""# Generic content set for style-model training

Content clips that `audiostyle train` mixes with clips from the user's library, so that a
style model also meets speech, pitched instruments, drum patterns and one-shots. Written by
`python training/make_generic_set.py --seed {seed}` with {versions};
do not edit by hand, rerun the script (the same tool versions give the same bytes). All
material is written in that script: nothing comes from `samples/` or the evaluation corpus.

Every file is mono, 22050 Hz, 16-bit FLAC, peak-normalised to -3 dBFS with 10 ms fades; the
category is the file name's prefix ({", ".join(f"`{c}_`" for c in CATEGORIES)}).
{len(clips)} files, {total_bytes / 1e6:.2f} MB in all.

| file | category | what | how made | licence |
|------|----------|------|----------|---------|
{rows}

## Licences

**Instruments, drums and one-shots** are rendered by fluidsynth from the FluidR3_GM
soundfont (Debian package `fluid-soundfont-gm`, file `{SOUNDFONT.name}`) playing MIDI
phrases written in `training/make_generic_set.py`. The soundfont's copyright file
(`/usr/share/doc/fluid-soundfont-gm/copyright`) names Frank Wen as its author, who wrote
"I hereby release Fluid under the MIT license", and gives this notice:

{FLUID_LICENCE}

**Speech** is synthesised by espeak-ng (Debian package `espeak-ng`) reading sentences of
our own. Its copyright file (`/usr/share/doc/espeak-ng/copyright`) licenses the program and
its data under the GNU General Public License, version 3 or later, and puts no terms on the
audio it produces. GPL-3 section 2 (`/usr/share/common-licenses/GPL-3`): "The output from
running a covered work is covered by this License only if the output, given its content,
constitutes a covered work." A synthesised reading of our own text is not a covered work, so
these files are free to use and ship under this project's MIT licence.
"""


def make_generic_set(out: Path, *, seed: int = 0, log: Callable[[str], None] = print) -> dict[str, int]:
    """Render every clip of :data:`CLIPS` into ``out`` and write its README.

    Returns the size in bytes of each file written, keyed by file name.
    """
    check_tools()
    out.mkdir(parents=True, exist_ok=True)
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for clip in CLIPS:
            path = save_audio(out / clip.filename, render(clip, Path(tmp), seed)[None], SAMPLE_RATE,
                              subtype="PCM_16")
            sizes[clip.filename] = path.stat().st_size
            log(f"{clip.filename:32s} {clip.seconds:4.1f} s {sizes[clip.filename] / 1e3:6.1f} kB")
    total = sum(sizes.values())
    if total > MAX_TOTAL_BYTES:
        raise SystemExit(f"the set takes {total} bytes, over the {MAX_TOTAL_BYTES}-byte budget")
    (out / "README.md").write_text(readme(CLIPS, total, seed, tool_versions()), encoding="utf-8")
    log(f"{len(sizes)} files, {total / 1e6:.2f} MB in {out}")
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder to write (created)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the humanisation and voices")
    args = parser.parse_args()
    make_generic_set(args.out, seed=args.seed)


if __name__ == "__main__":
    main()
