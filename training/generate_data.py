"""Generate the timbre data set deterministically: GM soundfont notes, drum kits, speech, noise.

Renders with the command-line tools of Debian packages (fluidsynth + fluid-soundfont-gm,
espeak-ng, sox), computes each clip's log-mel with the shipped network's own front end
(``TimbreCNN.log_mel`` on ``log1p(|STFT|)`` of n_fft 2048, hop 512 at 22050 Hz) and caches:

- ``features.npy``: float16 [shape=(total_frames, n_mels)], clips one after another;
- ``clips.npz``: per clip ``offset``, ``frames``, ``program``, ``family``, ``heldout``,
  ``pitch`` (-1 when none), ``velocity`` (-1 when none), ``source`` (0 note, 1 phrase,
  2 drums, 3 speech, 4 noise);
- ``meta.json``: classes, front end, counts and the command that made it.

Usage::

    python training/generate_data.py --out training/data            # full set (~3 min)
    python training/generate_data.py --out /tmp/tiny --programs 0 40 --scale 0.1

Held-out rule (see recipe.py): pitches / drum keys with ``pitch % 5 == 2`` are rendered only
at held-out velocities and only into held-out clips; speech uses held-out sentences and
voice pitches; noise uses held-out filter settings.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import recipe  # noqa: E402
from midi import MidiTrack  # noqa: E402

from audiostyle.dsp.stft import log_magnitude, stft  # noqa: E402
from audiostyle.networks.pretrained import TimbreCNN  # noqa: E402

SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
RELEASE_SECONDS = 0.5  # kept after note-off, then every voice is cut (All Sound Off)
GAP_SECONDS = 0.25  # silence between rendered clips
SOURCES = {"note": 0, "phrase": 1, "drums": 2, "speech": 3, "noise": 4}

# Sensible MIDI pitch ranges: by family, with overrides for instruments with narrow ranges.
FAMILY_RANGES = {
    0: (33, 96), 1: (55, 96), 2: (36, 89), 3: (40, 84), 4: (28, 60), 5: (36, 84),
    6: (40, 84), 7: (40, 80), 8: (50, 84), 9: (60, 96), 10: (40, 88), 11: (36, 84),
    12: (36, 84), 13: (45, 84), 14: (40, 80), 15: (36, 84),
}
PROGRAM_RANGES = {
    8: (60, 103), 9: (72, 103), 10: (60, 100), 13: (65, 100), 14: (60, 84),
    40: (55, 96), 41: (48, 84), 42: (36, 72), 43: (28, 60), 46: (36, 96), 47: (40, 60),
    56: (55, 84), 57: (40, 72), 58: (28, 58), 59: (55, 84), 60: (41, 77),
    64: (56, 87), 65: (49, 81), 66: (44, 76), 67: (36, 69),
    68: (58, 91), 69: (52, 81), 70: (34, 72), 71: (50, 91), 72: (74, 103), 73: (60, 96),
    74: (60, 96), 105: (48, 84), 109: (55, 84), 110: (55, 88), 111: (60, 88),
    112: (60, 96), 116: (36, 60), 117: (36, 72),
}
DRUM_KEYS = range(35, 82)

SENTENCES_TRAIN = [
    "The quick brown fox jumps over the lazy dog.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "A rainbow is a division of white light into many beautiful colours.",
    "She sells sea shells by the sea shore on sunny mornings.",
    "We will meet at the station at half past seven tomorrow.",
    "Numbers like one, two, three and four are easy to say.",
    "The orchestra tuned their instruments before the concert began.",
    "How much wood would a woodchuck chuck if it could.",
    "Listen carefully to the sound of the rain on the roof.",
    "My grandmother keeps a garden full of roses and tomatoes.",
    "Turn left at the second light and then keep going straight.",
    "The weather today is cold, windy and a little bit grey.",
    "Every morning the baker opens his shop at six o'clock.",
    "Coffee, tea or water, what would you like to drink?",
    "They walked along the river until the sun went down.",
    "Music can change the way we feel about almost anything.",
    "Open the window, the room is far too warm in summer.",
    "The train to the north leaves from platform number nine.",
    "Children were laughing and playing in the park all afternoon.",
    "Reading a good book is the best way to spend a quiet evening.",
]
SENTENCES_HELDOUT = [
    "Seven silver swans swam silently across the frozen lake.",
    "Bring me the red folder that lies on the kitchen table.",
    "Old clocks tick slowly in the hall of the empty house.",
    "Lightning flashed and thunder rolled over the distant hills.",
    "Fresh bread and warm soup make a simple and honest meal.",
]
VOICES_TRAIN = ["en", "en-us", "de", "fr", "es", "it", "pt", "nl", "pl", "sv"]
VOICES_HELDOUT = ["en-gb-scotland", "da", "cs"]
VARIANTS = ["m1", "m3", "m5", "m7", "f1", "f2", "f4", "klatt", "croak", "whisper"]
NOISES = ["whitenoise", "pinknoise", "brownnoise"]


@dataclass(frozen=True)
class Clip:
    """One labelled clip inside a rendered file: where it is and what it is."""

    start: float
    duration: float
    program: int
    family: int
    heldout: bool
    source: int
    pitch: int = -1
    velocity: int = -1


class FeatureExtractor:
    """Waveform -> un-normalised log-mel frames, through the shipped network's front end."""

    def __init__(self) -> None:
        self.front_end = TimbreCNN(
            recipe.architecture(), sample_rate=recipe.SAMPLE_RATE, n_fft=recipe.N_FFT
        )

    @torch.no_grad()
    def __call__(self, waveform: np.ndarray) -> np.ndarray:
        spectrum = stft(torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32)),
                        n_fft=recipe.N_FFT, hop_length=recipe.HOP_LENGTH)
        log_mel = self.front_end.log_mel(log_magnitude(spectrum.abs())[None])[0]
        return log_mel.T.numpy().astype(np.float16)


class DatasetWriter:
    """Accumulates clips' features and labels; :meth:`save` writes the cache files."""

    def __init__(self) -> None:
        self.extract = FeatureExtractor()
        self.features: list[np.ndarray] = []
        self.rows: list[dict] = []
        self.offset = 0

    def add(self, waveform: np.ndarray, clip: Clip) -> None:
        frames = self.extract(waveform)
        self.features.append(frames)
        self.rows.append({"offset": self.offset, "frames": len(frames), "program": clip.program,
                          "family": clip.family, "heldout": clip.heldout, "pitch": clip.pitch,
                          "velocity": clip.velocity, "source": clip.source})
        self.offset += len(frames)

    def add_rendered(self, audio: np.ndarray, clips: list[Clip]) -> None:
        for clip in clips:
            begin = round(clip.start * recipe.SAMPLE_RATE)
            end = round((clip.start + clip.duration) * recipe.SAMPLE_RATE)
            self.add(audio[begin:end], clip)

    def save(self, out: Path, meta: dict) -> dict:
        out.mkdir(parents=True, exist_ok=True)
        np.save(out / "features.npy", np.concatenate(self.features))
        columns = {key: np.array([row[key] for row in self.rows]) for key in self.rows[0]}
        np.savez(out / "clips.npz", **columns)
        heldout = columns["heldout"]
        meta = {
            **meta,
            "sample_rate": recipe.SAMPLE_RATE, "n_fft": recipe.N_FFT, "hop_length": recipe.HOP_LENGTH,
            "front_end": recipe.FRONT_END, "program_classes": recipe.PROGRAM_CLASSES,
            "family_classes": recipe.FAMILY_CLASSES,
            "clips": {"train": int((~heldout).sum()), "heldout": int(heldout.sum())},
            "frames": int(self.offset),
        }
        (out / "meta.json").write_text(json.dumps(meta, indent=1))
        return meta


def _read_mono(path: Path) -> np.ndarray:
    audio, sample_rate = sf.read(str(path), dtype="float32", always_2d=True)
    if sample_rate != recipe.SAMPLE_RATE:
        raise RuntimeError(f"{path}: rendered at {sample_rate} Hz, expected {recipe.SAMPLE_RATE}")
    return audio.mean(axis=1)


def _run(command: list[str]) -> None:
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def render_midi(track: MidiTrack, workdir: Path) -> np.ndarray:
    """Render a MIDI track with FluidR3_GM (no reverb or chorus, so clips stay independent)."""
    midi_path, wav_path = workdir / "take.mid", workdir / "take.wav"
    track.save(midi_path)
    _run(["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-g", "1.0",
          "-r", str(recipe.SAMPLE_RATE), "-F", str(wav_path), str(SOUNDFONT), str(midi_path)])
    return _read_mono(wav_path)


def _pitch_sets(low: int, high: int) -> tuple[list[int], list[int]]:
    pitches = range(low, high + 1)
    train = [p for p in pitches if p % 5 != recipe.HELDOUT_RESIDUE]
    heldout = [p for p in pitches if p % 5 == recipe.HELDOUT_RESIDUE]
    return train, heldout


def program_take(program: int, rng: np.random.Generator, scale: float) -> tuple[MidiTrack, list[Clip]]:
    """Single notes and short phrases of one melodic program, train and held-out."""
    family = program // 8
    low, high = PROGRAM_RANGES.get(program, FAMILY_RANGES[family])
    track, clips, now = MidiTrack(), [], 0.0
    track.program(0.0, 0, program)
    now = 0.1
    for heldout, n_notes, n_phrases in ((False, 40, 8), (True, 12, 3)):
        pitches = _pitch_sets(low, high)[heldout]
        velocities = recipe.HELDOUT_VELOCITIES if heldout else recipe.TRAIN_VELOCITIES
        order = np.resize(rng.permutation(pitches), max(1, round(n_notes * scale)))
        for pitch in order:
            duration = float(rng.uniform(0.5, 2.0))
            velocity = int(rng.choice(velocities))
            track.note(now, duration, 0, int(pitch), velocity)
            track.sound_off(now + duration + RELEASE_SECONDS, 0)
            clips.append(Clip(now, duration + RELEASE_SECONDS, program, family, heldout,
                              SOURCES["note"], int(pitch), velocity))
            now += duration + RELEASE_SECONDS + GAP_SECONDS
        for _ in range(max(1, round(n_phrases * scale))):
            t, centre = 0.0, int(rng.choice(pitches))
            nearby = [p for p in pitches if abs(p - centre) <= 12]
            velocity = int(rng.choice(velocities))
            for _ in range(int(rng.integers(3, 7))):
                step = float(rng.uniform(0.15, 0.45))
                chord = rng.choice(nearby, size=int(rng.integers(1, 3)), replace=False)
                for pitch in chord:
                    track.note(now + t, step * float(rng.uniform(0.5, 1.2)), 0, int(pitch), velocity)
                t += step
            track.sound_off(now + t + RELEASE_SECONDS, 0)
            clips.append(Clip(now, t + RELEASE_SECONDS, program, family, heldout,
                              SOURCES["phrase"], centre, velocity))
            now += t + RELEASE_SECONDS + GAP_SECONDS
    return track, clips


def drum_take(kit_index: int, kit: int, rng: np.random.Generator, scale: float) -> tuple[MidiTrack, list[Clip]]:
    """Short random patterns on one drum kit (channel 10, bank 128)."""
    program = len(recipe.GM_PROGRAMS) + kit_index
    track, clips, now = MidiTrack(), [], 0.1
    track.program(0.0, 9, kit)
    for heldout, n_patterns in ((False, 48), (True, 14)):
        keys = _pitch_sets(DRUM_KEYS.start, DRUM_KEYS.stop - 1)[heldout]
        velocities = recipe.HELDOUT_VELOCITIES if heldout else recipe.TRAIN_VELOCITIES
        for _ in range(max(1, round(n_patterns * scale))):
            length = float(rng.uniform(1.0, 2.0))
            grid = float(rng.choice([0.125, 0.167, 0.25]))
            palette = rng.choice(keys, size=int(rng.integers(1, 5)), replace=False)
            for step in np.arange(0.0, length, grid):
                if rng.random() < 0.6:
                    track.note(now + float(step), 0.1, 9, int(rng.choice(palette)), int(rng.choice(velocities)))
            track.sound_off(now + length + RELEASE_SECONDS, 9)
            clips.append(Clip(now, length + RELEASE_SECONDS, program, recipe.DRUMS_FAMILY, heldout,
                              SOURCES["drums"]))
            now += length + RELEASE_SECONDS + GAP_SECONDS
    return track, clips


def speech_clips(writer: DatasetWriter, rng: np.random.Generator, workdir: Path, scale: float) -> None:
    """espeak-ng sentences in several languages and voice variants, cut to at most 3 s."""
    wav = workdir / "speech.wav"
    for heldout, count, sentences, voices, pitches in (
        (False, 240, SENTENCES_TRAIN, VOICES_TRAIN, (20, 35, 50, 65, 80)),
        (True, 60, SENTENCES_HELDOUT, VOICES_HELDOUT, (28, 58, 72)),
    ):
        for _ in range(max(1, round(count * scale))):
            voice = f"{rng.choice(voices)}+{rng.choice(VARIANTS)}"
            _run(["espeak-ng", "-v", voice, "-p", str(int(rng.choice(pitches))),
                  "-s", str(int(rng.integers(130, 200))), "-w", str(wav), str(rng.choice(sentences))])
            audio = _read_mono(wav)
            length = min(len(audio), round(float(rng.uniform(1.5, 3.0)) * recipe.SAMPLE_RATE))
            start = int(rng.integers(0, len(audio) - length + 1))
            writer.add(audio[start:start + length],
                       Clip(0.0, 0.0, recipe.SPEECH_PROGRAM, recipe.SPEECH_FAMILY, heldout, SOURCES["speech"]))


def noise_clips(writer: DatasetWriter, rng: np.random.Generator, workdir: Path, scale: float) -> None:
    """sox noise textures: white/pink/brown noise through random filters and tremolo."""
    wav = workdir / "noise.wav"
    for heldout, count in ((False, 240), (True, 60)):
        for _ in range(max(1, round(count * scale))):
            duration = float(rng.uniform(1.2, 2.5))
            skip = float(rng.uniform(0.0, 20.0))  # sox -R repeats its seed; a random skip varies the noise
            # Held-out filter frequencies sit between the training ones (odd vs even steps).
            frequency = float(200 * 2 ** ((2 * int(rng.integers(0, 9)) + heldout) / 3))
            effect = rng.choice(["lowpass", "highpass", "bandpass", "none"])
            command = ["sox", "-R", "-n", "-r", str(recipe.SAMPLE_RATE), "-c", "1", "-b", "16", str(wav),
                       "synth", f"{duration + skip:.3f}", str(rng.choice(NOISES)), "trim", f"{skip:.3f}"]
            if effect == "bandpass":
                command += ["bandpass", f"{frequency:.0f}", f"{float(rng.uniform(100, 2000)):.0f}"]
            elif effect != "none":
                command += [str(effect), f"{frequency:.0f}"]
            if rng.random() < 0.3:
                command += ["tremolo", f"{float(rng.uniform(1, 12)):.1f}", "60"]
            command += ["gain", f"{float(rng.uniform(-24, -3)):.1f}"]
            _run(command)
            writer.add(_read_mono(wav),
                       Clip(0.0, 0.0, recipe.NOISE_PROGRAM, recipe.NOISE_FAMILY, heldout, SOURCES["noise"]))


def check_tools() -> None:
    missing = [tool for tool in ("fluidsynth", "espeak-ng", "sox") if shutil.which(tool) is None]
    if missing or not SOUNDFONT.is_file():
        raise SystemExit(
            f"missing {missing or [str(SOUNDFONT)]}: apt-get install -y fluidsynth fluid-soundfont-gm "
            "espeak-ng sox libsox-fmt-all"
        )


def generate(out: Path, *, programs: list[int], kits: list[int], scale: float = 1.0, seed: int = 0,
             log=print) -> dict:
    """Render everything and write the cache; returns the meta dictionary."""
    check_tools()
    torch.set_num_threads(1)
    writer = DatasetWriter()
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for program in programs:
            # One generator per take, so any subset of programs renders the same clips.
            track, clips = program_take(program, np.random.default_rng([seed, program]), scale)
            writer.add_rendered(render_midi(track, workdir), clips)
            if program % 16 == 15:
                log(f"program {program}: {len(writer.rows)} clips, {time.time() - started:.0f} s")
        for index, kit in enumerate(recipe.DRUM_KITS):
            if kit in kits:
                track, clips = drum_take(index, kit, np.random.default_rng([seed, 1000 + kit]), scale)
                writer.add_rendered(render_midi(track, workdir), clips)
        log(f"drums: {len(writer.rows)} clips, {time.time() - started:.0f} s")
        speech_clips(writer, np.random.default_rng([seed, 2000]), workdir, scale)
        noise_clips(writer, np.random.default_rng([seed, 3000]), workdir, scale)
    meta = {"seed": seed, "scale": scale, "programs": programs, "kits": kits,
            "generator_seconds": round(time.time() - started, 1),
            "command": " ".join(["python", "training/generate_data.py", *sys.argv[1:]])}
    meta = writer.save(out, meta)
    log(f"wrote {len(writer.rows)} clips ({writer.offset} frames) to {out} in {time.time() - started:.0f} s")
    return meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "data")
    parser.add_argument("--programs", type=int, nargs="*", default=list(range(128)))
    parser.add_argument("--kits", type=int, nargs="*", default=list(recipe.DRUM_KITS))
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the clip counts")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    generate(args.out, programs=args.programs, kits=args.kits, scale=args.scale, seed=args.seed)


if __name__ == "__main__":
    main()
