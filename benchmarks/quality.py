"""Quality per preset on content/style pairs, scored by the independent yardstick.

For each pair: the plain 50/50 mix and the EQ-only baseline, then each preset's output, all
scored by :func:`benchmarks.quality_metrics.score` (style 0 = the content, 1 = the style;
content 1 = the content; combined = their harmonic mean).

    python -m benchmarks.quality                               # classic, default; the five core pairs
    python -m benchmarks.quality --presets default fast --seconds 5 --pairs speech-strings
    python -m benchmarks.quality --presets default --seconds 4 --pairs all    # 21 pairs

Prints a table and writes benchmarks/results/quality.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from audiostyle import PRESETS, load_audio, stylize

from .baselines import eq_match, mix
from .quality_metrics import score

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
RESULTS = ROOT / "benchmarks" / "results"
RATE = 22050

#: name -> (content, style): speech->instrument, instrument->texture, drums->mix, and the samples.
PAIRS = {
    "voice-violin": (ROOT / "samples" / "voice.flac", ROOT / "samples" / "violin.wav"),
    "speech-strings": (CORPUS / "speech_librispeech_198-209_female.flac", CORPUS / "strings_brahms_hungarian_dance5.ogg"),
    "piano-rain": (CORPUS / "piano_bach_prelude_c.flac", CORPUS / "env_rain_synthetic.ogg"),
    "drums-mix": (CORPUS / "drums_rock_loop.wav", CORPUS / "mix_kevin_macleod_vibe_ace.ogg"),
    "espeak-violin": (CORPUS / "speech_espeak_en_us_male.wav", CORPUS / "violin_ode_to_joy.wav"),
}
CORE_PAIRS = tuple(PAIRS)
#: More corpus pairs of the same kinds, never tuned on one by one: a check that settings
#: chosen on the five above hold in general (``--pairs all``).
PAIRS.update(
    {
        name: (CORPUS / content, CORPUS / style)
        for name, content, style in (
            ("libri-violin", "speech_librispeech_3436-172162_male.wav", "violin_ode_to_joy.wav"),
            ("libri-flute", "speech_librispeech_5703-47212_male.flac", "flute_scarborough_fair.ogg"),
            ("alsa-guitar", "speech_alsa_channel_names.wav", "guitar_nylon_arpeggio.flac"),
            ("espeak-trumpet", "speech_espeak_de_male.flac", "trumpet_solo_sorohanro.flac"),
            ("espeak-celesta", "speech_espeak_en_gb_female.wav", "celesta_orch_sugar_plum_fairy.ogg"),
            ("libri-guitar", "speech_librispeech_198-209_female.flac", "guitar_nylon_arpeggio.flac"),
            ("guitar-wind", "guitar_nylon_arpeggio.flac", "env_wind_synthetic.flac"),
            ("flute-rain", "flute_scarborough_fair.ogg", "env_rain_synthetic.ogg"),
            ("violin-whale", "violin_ode_to_joy.wav", "env_humpback_whale_nps.flac"),
            ("celesta-robin", "celesta_orch_sugar_plum_fairy.ogg", "env_robin_bird_inspectorj.flac"),
            ("trumpet-hum", "trumpet_solo_sorohanro.flac", "env_mains_hum_pinknoise.wav"),
            ("brush-popmix", "drums_brush_swing.ogg", "mix_gm_band_pop.flac"),
            ("808-mix", "drums_tr808_hiphop.flac", "mix_karissa_hobbs_lets_go_fishin.ogg"),
            ("piano-strings", "piano_bach_prelude_c.flac", "strings_brahms_hungarian_dance5.ogg"),
            ("drums-rain", "drums_rock_loop.wav", "env_rain_synthetic.ogg"),
            ("popmix-violin", "mix_gm_band_pop.flac", "violin_ode_to_joy.wav"),
        )
    }
)


def clip(path: Path, seconds: float) -> np.ndarray:
    audio, _ = load_audio(path, RATE, mono=True)
    return audio[:, : int(seconds * RATE)]


def method_name(preset: str, network: str) -> str:
    return preset if network == "random" else f"{preset}+{Path(network).stem}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["classic", "default"])
    parser.add_argument(
        "--networks", nargs="+", default=["random"],
        help="feature networks to run each preset with (random, pretrained, or a .safetensors path)",
    )
    parser.add_argument(
        "--pairs", nargs="+", default=list(CORE_PAIRS), choices=[*PAIRS, "all"],
        help="pairs to score (default: the five core pairs; 'all' adds 16 more corpus pairs)",
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each clip")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--output", type=Path, default=RESULTS / "quality.json")
    args = parser.parse_args()

    pairs = list(PAIRS) if "all" in args.pairs else args.pairs
    rows = []
    header = f"{'pair':16s} {'method':18s} {'style':>6s} {'content':>8s} {'combined':>9s} {'seconds':>8s}"
    print(header)
    for pair in pairs:
        content_path, style_path = PAIRS[pair]
        if not (content_path.exists() and style_path.exists()):
            print(f"{pair:16s} skipped: {content_path.name} or {style_path.name} not found")
            continue
        content, style = clip(content_path, args.seconds), clip(style_path, args.seconds)
        outputs = {"mix": (mix(content, style, RATE), 0.0), "eq_match": (eq_match(content, style, RATE), 0.0)}
        for preset in args.presets:
            for network in args.networks:
                config = PRESETS[preset].replace(device=args.device, network=network)
                start = time.perf_counter()
                result = stylize((content, RATE), (style, RATE), config)
                outputs[method_name(preset, network)] = (result.audio, time.perf_counter() - start)
        for method, (audio, seconds) in outputs.items():
            scores = score((audio, RATE), (content, RATE), (style, RATE))
            row = {"pair": pair, "method": method, "seconds": seconds, **scores}
            rows.append(row)
            print(
                f"{pair:16s} {method:18s} {scores['style']:6.3f} {scores['content']:8.3f} "
                f"{scores['combined']:9.3f} {seconds:8.1f}",
                flush=True,
            )
    print()
    methods = [method_name(p, n) for p in args.presets for n in args.networks]
    for method in ["mix", "eq_match", *methods]:
        mine = [r for r in rows if r["method"] == method]
        if mine:
            means = {k: float(np.mean([r[k] for r in mine])) for k in ("style", "content", "combined")}
            line = f"{'mean':16s} {method:18s} {means['style']:6.3f} {means['content']:8.3f} {means['combined']:9.3f}"
            if method != "mix":
                mixed = {r["pair"]: r["combined"] for r in rows if r["method"] == "mix"}
                margins = [r["combined"] - mixed[r["pair"]] for r in mine]
                wins = sum(m > 0 for m in margins)
                line += f"  over the mix: mean {np.mean(margins):+.3f}, ahead on {wins}/{len(margins)} pairs"
            print(line)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"seconds": args.seconds, "rows": rows}, indent=2))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
