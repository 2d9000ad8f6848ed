"""Settings shared by the data generator, the trainer and the shipped model card.

Everything that must agree between the cached features and the network's front end lives
here: sample rate, STFT, mel front end, the class lists and the held-out rule.
"""

from __future__ import annotations

SAMPLE_RATE = 22050
N_FFT = 2048
HOP_LENGTH = 512

FRONT_END = {"n_mels": 128, "fmin": 0.0, "fmax": 11025.0, "reference_n_fft": N_FFT,
             "mel_floor": 1e-3}

# Dilations double per block: receptive field 1 + 2 * (1 + 2 + 4 + 8) = 31 frames (0.72 s at
# hop 512 / 22.05 kHz), long enough for an attack and the start of a decay.
CONV_LAYERS = [
    {"channels": 256, "kernel_size": 3, "dilation": 1},
    {"channels": 256, "kernel_size": 3, "dilation": 2},
    {"channels": 256, "kernel_size": 3, "dilation": 4},
    {"channels": 256, "kernel_size": 3, "dilation": 8},
]
# Content from block 1: it still follows pitch and onsets frame by frame, whereas the deeper
# blocks are trained to be pitch-invariant. Style uses every block's Gram matrix.
CONTENT_LAYERS = [1]
STYLE_LAYERS = [0, 1, 2, 3]

GM_PROGRAMS = [
    "Acoustic Grand Piano", "Bright Acoustic Piano", "Electric Grand Piano", "Honky-tonk Piano",
    "Electric Piano 1", "Electric Piano 2", "Harpsichord", "Clavinet",
    "Celesta", "Glockenspiel", "Music Box", "Vibraphone",
    "Marimba", "Xylophone", "Tubular Bells", "Dulcimer",
    "Drawbar Organ", "Percussive Organ", "Rock Organ", "Church Organ",
    "Reed Organ", "Accordion", "Harmonica", "Tango Accordion",
    "Acoustic Guitar (nylon)", "Acoustic Guitar (steel)", "Electric Guitar (jazz)", "Electric Guitar (clean)",
    "Electric Guitar (muted)", "Overdriven Guitar", "Distortion Guitar", "Guitar Harmonics",
    "Acoustic Bass", "Electric Bass (finger)", "Electric Bass (pick)", "Fretless Bass",
    "Slap Bass 1", "Slap Bass 2", "Synth Bass 1", "Synth Bass 2",
    "Violin", "Viola", "Cello", "Contrabass",
    "Tremolo Strings", "Pizzicato Strings", "Orchestral Harp", "Timpani",
    "String Ensemble 1", "String Ensemble 2", "Synth Strings 1", "Synth Strings 2",
    "Choir Aahs", "Voice Oohs", "Synth Voice", "Orchestra Hit",
    "Trumpet", "Trombone", "Tuba", "Muted Trumpet",
    "French Horn", "Brass Section", "Synth Brass 1", "Synth Brass 2",
    "Soprano Sax", "Alto Sax", "Tenor Sax", "Baritone Sax",
    "Oboe", "English Horn", "Bassoon", "Clarinet",
    "Piccolo", "Flute", "Recorder", "Pan Flute",
    "Blown Bottle", "Shakuhachi", "Whistle", "Ocarina",
    "Lead 1 (square)", "Lead 2 (sawtooth)", "Lead 3 (calliope)", "Lead 4 (chiff)",
    "Lead 5 (charang)", "Lead 6 (voice)", "Lead 7 (fifths)", "Lead 8 (bass + lead)",
    "Pad 1 (new age)", "Pad 2 (warm)", "Pad 3 (polysynth)", "Pad 4 (choir)",
    "Pad 5 (bowed)", "Pad 6 (metallic)", "Pad 7 (halo)", "Pad 8 (sweep)",
    "FX 1 (rain)", "FX 2 (soundtrack)", "FX 3 (crystal)", "FX 4 (atmosphere)",
    "FX 5 (brightness)", "FX 6 (goblins)", "FX 7 (echoes)", "FX 8 (sci-fi)",
    "Sitar", "Banjo", "Shamisen", "Koto",
    "Kalimba", "Bagpipe", "Fiddle", "Shanai",
    "Tinkle Bell", "Agogo", "Steel Drums", "Woodblock",
    "Taiko Drum", "Melodic Tom", "Synth Drum", "Reverse Cymbal",
    "Guitar Fret Noise", "Breath Noise", "Seashore", "Bird Tweet",
    "Telephone Ring", "Helicopter", "Applause", "Gunshot",
]
GM_FAMILIES = [
    "Piano", "Chromatic Percussion", "Organ", "Guitar", "Bass", "Strings", "Ensemble", "Brass",
    "Reed", "Pipe", "Synth Lead", "Synth Pad", "Synth Effects", "Ethnic", "Percussive",
    "Sound Effects",
]
# FluidR3_GM bank-128 kits whose sounds differ (the numbered variants reuse these samples).
DRUM_KITS = {0: "Standard", 8: "Room", 16: "Power", 24: "Electronic", 25: "TR-808",
             32: "Jazz", 40: "Brush", 48: "Orchestra"}

PROGRAM_CLASSES = (
    GM_PROGRAMS + [f"Drum kit: {name}" for name in DRUM_KITS.values()] + ["Speech", "Noise"]
)
FAMILY_CLASSES = GM_FAMILIES + ["Drums", "Speech", "Noise"]
DRUMS_FAMILY, SPEECH_FAMILY, NOISE_FAMILY = 16, 17, 18
SPEECH_PROGRAM, NOISE_PROGRAM = len(PROGRAM_CLASSES) - 2, len(PROGRAM_CLASSES) - 1

# Held out: every MIDI pitch (or drum key) with pitch % 5 == HELDOUT_RESIDUE, played only at
# held-out velocities; training never hears those pitches or velocities.
HELDOUT_RESIDUE = 2
TRAIN_VELOCITIES = (40, 64, 88, 112, 127)
HELDOUT_VELOCITIES = (52, 76, 100)


def architecture() -> dict:
    """The architecture description shipped beside the weights (without training facts)."""
    return {
        "format": "audiostyle.timbre_cnn",
        "front_end": dict(FRONT_END),
        "conv_layers": [dict(layer) for layer in CONV_LAYERS],
        "activation": "relu",
        "content_layers": list(CONTENT_LAYERS),
        "style_layers": list(STYLE_LAYERS),
        "heads": {"program": len(PROGRAM_CLASSES), "family": len(FAMILY_CLASSES)},
    }
