"""The ground-truth timbre-transfer benchmark (benchmarks/groundtruth.py) and its measures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import groundtruth
from benchmarks import groundtruth_metrics as metrics

SR = metrics.RATE
STEP = 0.25


def tone(frequency: float, seconds: float, *, harmonics: int = 1) -> np.ndarray:
    """A tone with ``harmonics`` partials at amplitude 1/k (1: a sine; many: a sawtooth)."""
    t = np.arange(int(seconds * SR)) / SR
    return sum(np.sin(2 * np.pi * k * frequency * t) / k for k in range(1, harmonics + 1) if k * frequency < SR / 2)


def melody(pitches: list[int], *, offset: float = 0.0, harmonics: int = 3) -> np.ndarray:
    """Notes of 0.2 s every 0.25 s with a sharp attack and a decay, starting at ``offset`` s."""
    audio = np.zeros(int((offset + STEP * len(pitches) + 0.5) * SR))
    envelope = np.exp(-np.arange(int(0.2 * SR)) / (0.06 * SR))
    for index, pitch in enumerate(pitches):
        note = tone(440.0 * 2 ** ((pitch - 69) / 12), 0.2, harmonics=harmonics) * envelope
        start = int((offset + index * STEP) * SR)
        audio[start:start + note.size] += note
    return audio


C_MAJOR = [60, 62, 64, 65, 67, 65, 64, 62, 60, 64, 67, 72]


@pytest.fixture(scope="module")
def c_melody() -> metrics.Analysis:
    return metrics.analyze(melody(C_MAJOR))


def test_identical_signals_score_perfectly(c_melody):
    result = metrics.compare(c_melody, c_melody, c_melody)
    assert result["log_mel_db"] == 0.0
    assert result["timbre"] == 0.0
    assert result["ltas_db"] == 0.0
    assert result["chroma"] == pytest.approx(1.0)
    assert result["pitch"] == 1.0 and result["pitch_class"] == 1.0
    assert result["onset_f1"] == 1.0
    assert result["histogram_truth"] == pytest.approx(1.0)


def test_level_does_not_matter(c_melody):
    quieter = metrics.analyze(0.05 * melody(C_MAJOR))
    result = metrics.compare(quieter, c_melody)
    assert result["log_mel_db"] < 1e-6 and result["timbre"] < 1e-6
    assert result["chroma"] == pytest.approx(1.0)


def test_transposed_melody_lowers_the_histogram_correlation(c_melody):
    # A tritone up: F# major shares only two pitch classes with C major.
    transposed = metrics.analyze(melody([p + 6 for p in C_MAJOR]))
    result = metrics.compare(transposed, c_melody, transposed)
    assert result["histogram_truth"] < 0.3
    assert result["histogram_style"] == pytest.approx(1.0)
    assert result["closer_to"] == "style"
    assert result["chroma"] < 0.3
    assert result["pitch"] < 0.1
    # The rhythm is the same, so the onsets still match.
    assert result["onset_f1"] > 0.8


def test_octave_error_is_forgiven_only_by_pitch_class(c_melody):
    octave = metrics.analyze(melody([p + 12 for p in C_MAJOR]))
    result = metrics.compare(octave, c_melody)
    assert result["pitch"] < 0.1
    assert result["pitch_class"] > 0.8
    assert result["histogram_truth"] > 0.8


def test_onsets_shifted_beyond_the_tolerance_lower_f1(c_melody):
    near = metrics.analyze(melody(C_MAJOR, offset=0.02))
    far = metrics.analyze(melody(C_MAJOR, offset=0.11))
    assert metrics.compare(near, c_melody)["onset_f1"] > 0.8
    assert metrics.compare(far, c_melody)["onset_f1"] < 0.3


def test_onsets_are_also_scored_against_the_score(c_melody):
    starts = np.arange(len(C_MAJOR)) * STEP
    assert metrics.compare(c_melody, c_melody)["onset_f1_score"] is None
    on_time = metrics.compare(c_melody, c_melody, score_onsets=starts)["onset_f1_score"]
    assert on_time == metrics.onset_f1(c_melody.onsets, starts) and on_time > 0.6
    # A truth whose detected onsets miss notes lowers onset_f1, not the score-based F1.
    every_other = metrics.analyze(melody(C_MAJOR[::2]))
    result = metrics.compare(c_melody, every_other, score_onsets=starts)
    assert result["onset_f1"] < 0.6 and result["onset_f1_score"] == on_time
    late = metrics.analyze(melody(C_MAJOR, offset=0.11))
    assert metrics.compare(late, c_melody, score_onsets=starts)["onset_f1_score"] < 0.3


def test_note_starts_are_the_rendered_tracks_note_ons():
    starts = groundtruth.note_starts("ode_c", 4.0)
    track = groundtruth.melody_track("ode_c", 40, 4.0)
    note_ons = sorted(tick / 960 for tick, _, message in track._events if message[0] & 0xF0 == 0x90)
    np.testing.assert_allclose(starts, note_ons, atol=1 / 960)
    assert starts[0] == groundtruth.MELODIES["ode_c"].lead_in and np.all(np.diff(starts) > 0) and starts[-1] < 4.0


def test_onset_matching_is_one_to_one_and_within_tolerance():
    truth = np.array([0.5, 1.0, 1.5])
    assert metrics.onset_f1(truth, truth) == 1.0
    assert metrics.onset_f1(truth + 0.04, truth) == 1.0
    assert metrics.onset_f1(truth + 0.06, truth) == 0.0
    # Two estimates near one onset: only one may match it.
    assert metrics.match_onsets(np.array([1.0]), np.array([0.98, 1.01])) == 1
    # Greedy by distance: 1.04 takes the onset at 1.05 (1 ms), leaving 1.0's only partner for 0.96.
    assert metrics.match_onsets(np.array([1.0, 1.05]), np.array([0.96, 1.04])) == 2
    assert metrics.onset_f1(np.array([]), np.array([])) == 1.0
    assert metrics.onset_f1(np.array([]), truth) == 0.0


def test_timbre_distance_grows_from_sine_to_sawtooth():
    sawtooth = metrics.analyze(tone(220.0, 3.0, harmonics=40))
    sine = metrics.analyze(tone(220.0, 3.0))
    # A semitone up on the same instrument: another note, the same timbre.
    other_note = metrics.analyze(tone(233.08, 3.0, harmonics=40))
    assert metrics.compare(sawtooth, sawtooth)["timbre"] == 0.0
    near = metrics.compare(other_note, sawtooth)
    far = metrics.compare(sine, sawtooth)
    assert far["timbre"] > 3 * near["timbre"] > 0.0
    assert far["ltas_db"] > near["ltas_db"]
    # Same pitch: the content measures barely notice the timbre.
    assert far["pitch"] > 0.9 and far["chroma"] > 0.8
    assert near["pitch"] < 0.1


def test_pitch_accuracy_counts_unvoiced_output_as_misses():
    truth = np.array([220.0, 220.0, np.nan, 440.0])
    assert metrics.pitch_accuracy(np.array([221.0, np.nan, 300.0, 440.0]), truth) == pytest.approx(2 / 3)
    assert metrics.pitch_accuracy(np.array([440.0, 110.0, np.nan, 880.0]), truth) == 0.0
    assert metrics.pitch_accuracy(np.array([440.0, 110.0, np.nan, 880.0]), truth, octave_invariant=True) == 1.0
    assert metrics.pitch_accuracy(truth, np.full(4, np.nan)) is None


def test_silent_output_scores_badly_without_raising(c_melody):
    result = metrics.compare(metrics.analyze(np.zeros(SR * 3)), c_melody, c_melody)
    assert result["log_mel_db"] > 20.0
    assert result["pitch"] == 0.0 and result["onset_f1"] == 0.0 and result["chroma"] == 0.0


@pytest.mark.parametrize("bad", [np.zeros(0), np.full(100, np.nan), np.zeros((2, 2, 2))])
def test_analyze_rejects_bad_waveforms(bad):
    with pytest.raises(ValueError):
        metrics.analyze(bad)


def test_melodies_pair_up_without_shared_pitch_classes():
    triplets = [*groundtruth.TRIPLETS.values(), *groundtruth.REGISTER_TRIPLETS.values()]
    assert all(t.style_transpose % 12 == 0 for t in triplets)  # octaves keep the pitch classes apart
    pairs = {(t.melody, t.style_melody) for t in triplets}
    for content, style in pairs:
        content_classes = {p % 12 for p, _ in groundtruth.MELODIES[content].notes}
        style_classes = {p % 12 for p, _ in groundtruth.MELODIES[style].notes}
        assert not content_classes & style_classes, (content, style)
        # Their first notes are at least twice onset F1's tolerance apart.
        assert abs(groundtruth.MELODIES[content].lead_in - groundtruth.MELODIES[style].lead_in) >= 0.1


def test_triplets_cover_the_families():
    assert len(groundtruth.TRIPLETS) >= 16
    families = {t.family for t in groundtruth.TRIPLETS.values()}
    assert {"bowed", "wind", "brass", "organ", "plucked", "mallet", "piano", "voice", "cross"} <= families
    for triplet in groundtruth.TRIPLETS.values():
        assert triplet.content_program != triplet.style_program and triplet.melody != triplet.style_melody


def test_register_triplets_put_the_style_an_octave_or_more_away_and_run_only_when_asked():
    def mean_pitch(melody: str, transpose: int = 0) -> float:
        return float(np.mean([pitch for pitch, _ in groundtruth.MELODIES[melody].notes])) + transpose

    register = groundtruth.REGISTER_TRIPLETS
    assert not set(register) & set(groundtruth.TRIPLETS)
    for name, case in register.items():
        gap = mean_pitch(case.style_melody, case.style_transpose) - mean_pitch(case.melody)
        # Transposed by an octave or two; the melodies' own ranges differ by a few semitones.
        assert abs(case.style_transpose) >= 12 and abs(gap) >= 9, name
        assert (gap > 0) == ("-up" in name), name
        assert groundtruth.triplet(name) is case
    assert groundtruth._pick_triplets(["register"]) == list(register)
    assert groundtruth._pick_triplets(["violin-cello", "register", "violin-cello"]) == ["violin-cello", *register]
    assert not set(groundtruth._pick_triplets([str(len(groundtruth.TRIPLETS))])) & set(register)
    with pytest.raises(SystemExit, match="register"):
        groundtruth._pick_triplets(["nope"])
    with pytest.raises(KeyError):
        groundtruth.triplet("nope")


def test_melody_track_ends_at_the_clip_length(tmp_path):
    track = groundtruth.melody_track("ode_c", 40, 2.0)
    times = sorted(tick for tick, _, _ in track._events)
    assert times[-1] == 2.0 * 960  # the All Sound Off that ends the render
    track.save(tmp_path / "m.mid")
    assert (tmp_path / "m.mid").read_bytes().startswith(b"MThd")


@pytest.mark.parametrize(
    "arguments",
    [dict(soundfont="nope"), dict(melody="nope"), dict(program=128), dict(seconds=0.5), dict(seconds=61.0)],
)
def test_render_rejects_bad_arguments(arguments, tmp_path):
    call = dict(soundfont="fluidr3", program=0, melody="ode_c", seconds=2.0, cache=tmp_path) | arguments
    with pytest.raises(ValueError):
        groundtruth.render(**call)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    missing = groundtruth.check_tools({"fluidr3"})
    if missing:
        pytest.skip(f"fluidsynth or the soundfont is not installed ({missing})")
    cache = tmp_path_factory.mktemp("groundtruth_audio")
    return cache, groundtruth.render_triplet("violin-cello", 3.0, cache=cache)


def test_render_triplet_writes_cached_mono_clips(rendered):
    cache, clips = rendered
    assert set(clips) == {"content", "style", "truth"}
    for audio in clips.values():
        assert audio.shape == (1, 3 * SR) and audio.dtype == np.float32
        assert np.max(np.abs(audio)) == pytest.approx(0.7)
    files = sorted(cache.glob("*.wav"))
    assert len(files) == 3
    import soundfile

    for path in files:
        info = soundfile.info(str(path))
        assert (info.samplerate, info.channels, info.frames) == (SR, 1, 3 * SR)
    # A second call reads the cache; a fresh render gives the same samples (deterministic).
    again = groundtruth.render_triplet("violin-cello", 3.0, cache=cache)
    fresh = groundtruth.render_triplet("violin-cello", 3.0, cache=None)
    for name, audio in clips.items():
        np.testing.assert_array_equal(again[name], audio)
        np.testing.assert_array_equal(fresh[name], audio)


def test_rendered_triplet_has_the_expected_relations(rendered):
    _, clips = rendered
    scores = groundtruth.score_triplet(clips, {})
    assert set(scores) == {"truth", "style", "content", "mix"}
    truth, content, style = scores["truth"], scores["content"], scores["style"]
    assert truth["log_mel_db"] == 0.0 and truth["timbre"] == 0.0 and truth["chroma"] == pytest.approx(1.0)
    # Content and truth share notes and rhythm; style and truth share the instrument only.
    assert content["timbre"] > truth["timbre"]
    assert content["chroma"] > 0.8 and content["pitch"] > 0.8 and content["histogram_truth"] > 0.8
    assert style["chroma"] < 0.3 and style["histogram_truth"] < 0.3 and style["onset_f1"] < 0.5
    assert content["closer_to"] == "truth" and style["closer_to"] == "style"
    assert style["timbre"] < content["timbre"]
    assert content["onset_f1_score"] is None
    starts = groundtruth.note_starts(groundtruth.TRIPLETS["violin-cello"].melody, 3.0)
    scored = groundtruth.score_triplet(clips, {}, starts)
    assert scored["truth"]["onset_f1_score"] > 0.8 and scored["content"]["onset_f1_score"] > 0.8
    assert scored["style"]["onset_f1_score"] < 0.5


def test_render_rejects_a_transposition_out_of_midi_range(tmp_path):
    with pytest.raises(ValueError, match="transpose"):
        groundtruth.render("fluidr3", 0, "ode_c", 2.0, transpose=70, cache=tmp_path)


def test_summary_counts_wins_over_copy_and_mix():
    def row(triplet, method, log_mel, timbre, closer):
        values = {measure: 0.5 for measure in metrics.MEASURES}
        return {"triplet": triplet, "method": method, **values, "log_mel_db": log_mel, "timbre": timbre,
                "closer_to": closer}

    rows = [
        row("a", "content", 10.0, 50.0, "truth"), row("a", "mix", 12.0, 40.0, "style"),
        row("a", "ours", 11.0, 30.0, "style"),  # beats the copy and the mix by timbre only
        row("b", "content", 10.0, 50.0, "truth"), row("b", "mix", 12.0, 40.0, "truth"),
        row("b", "ours", 9.0, 45.0, "truth"),  # by log-mel only
    ]
    summary = groundtruth.summarise(rows, ["content", "ours"])
    assert summary["ours"]["log_mel_db"] == pytest.approx(10.0)
    assert summary["ours"]["beats_copy_and_mix_log_mel"] == 1
    assert summary["ours"]["beats_copy_and_mix_timbre"] == 1
    assert summary["ours"]["closer_to_truth_than_style"] == 1
    assert summary["content"]["beats_copy_and_mix_log_mel"] == 0


@pytest.fixture
def copy_method(monkeypatch) -> None:
    """The engine is tested elsewhere; here every "method" returns the content unchanged."""

    class CopyResult:
        def __init__(self, content):
            self.audio = content[0]

    monkeypatch.setattr(groundtruth, "stylize", lambda content, style, config: CopyResult(content))


def test_cli_scores_references_and_methods(rendered, tmp_path, copy_method, capsys):
    cache, clips = rendered
    output = tmp_path / "groundtruth.json"
    groundtruth.main(["--presets", "default", "fast", "--triplets", "violin-cello", "--seconds", "3",
                      "--cache", str(cache), "--output", str(output), "--device", "cpu"])
    printed = capsys.readouterr().out
    assert "violin-cello" in printed and "beats copy+mix" in printed
    report = json.loads(output.read_text())
    methods = [row["method"] for row in report["rows"]]
    assert methods == ["content", "mix", "style", "truth", "default", "fast"]
    by_method = {row["method"]: row for row in report["rows"]}
    assert by_method["default"]["log_mel_db"] == pytest.approx(by_method["content"]["log_mel_db"])
    assert report["summary"]["truth"]["beats_copy_and_mix_timbre"] == 1
    assert report["summary"]["default"]["beats_copy_and_mix_log_mel"] == 0
    assert report["summary"]["style"]["closer_to_truth_than_style"] == 0
    assert "ons~sc" in printed and report["summary"]["content"]["onset_f1_score"] > 0.8


def test_cli_scores_the_truth_and_the_methods_on_the_yardstick(rendered, tmp_path, copy_method, capsys):
    cache, _ = rendered
    output = tmp_path / "groundtruth.json"
    groundtruth.main(["--triplets", "violin-cello", "--seconds", "3", "--cache", str(cache), "--output", str(output),
                      "--device", "cpu", "--yardstick"])
    printed = capsys.readouterr().out
    assert "ahead of the mix" in printed
    report = json.loads(output.read_text())
    by_method = {row["method"]: row for row in report["yardstick_rows"]}
    assert list(by_method) == ["mix", "truth", "default"]
    # The content copied scores no style and all the content; the truth takes the style's instrument.
    assert by_method["default"]["style"] == pytest.approx(0.0, abs=1e-6)
    assert by_method["default"]["content"] == pytest.approx(1.0, abs=1e-6)
    assert by_method["default"]["combined"] == 0.0
    assert by_method["truth"]["style"] > 0.1 and by_method["truth"]["content"] > 0.3
    summary = report["yardstick_summary"]
    assert summary["default"]["ahead_of_mix"] == 0 and summary["default"]["triplets"] == 1
    assert set(summary) == {"mix", "truth", "default"}


def test_the_yardstick_summary_counts_triplets_ahead_of_the_mix():
    rows = [
        {"triplet": "a", "method": "mix", "style": 0.4, "content": 0.6, "combined": 0.48},
        {"triplet": "a", "method": "truth", "style": 0.6, "content": 0.7, "combined": 0.65},
        {"triplet": "b", "method": "mix", "style": 0.4, "content": 0.6, "combined": 0.48},
        {"triplet": "b", "method": "truth", "style": 0.1, "content": 0.9, "combined": 0.18},
    ]
    summary = groundtruth.summarise_yardstick(rows, ["mix", "truth", "absent"])
    assert summary["truth"]["ahead_of_mix"] == 1 and summary["mix"]["ahead_of_mix"] == 0
    assert summary["truth"]["combined"] == pytest.approx(0.415)
    assert "absent" not in summary


def test_cli_rejects_bad_triplet_choices():
    with pytest.raises(SystemExit):
        groundtruth.main(["--triplets", "no-such-triplet"])
    with pytest.raises(SystemExit):
        groundtruth.main(["--triplets", "0"])
    with pytest.raises(SystemExit):
        groundtruth.main(["--seconds", "1000"])
