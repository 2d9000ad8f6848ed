"""Train the timbre CNN on the cached log-mel data set and write shippable weights.

Usage::

    python training/train.py --data training/data --out audiostyle/networks/weights

Trains on random ~1 s crops of the training clips (program and family heads on the mean and
standard deviation over time of the last block), then scores every held-out clip whole and
writes ``timbre_cnn.safetensors`` + ``timbre_cnn.json`` (architecture, classes, metrics).
CPU, one thread: the recipe is sized for about 30 minutes on one core.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import recipe  # noqa: E402

from audiostyle.networks.pretrained import PRETRAINED_NAME, TimbreCNN  # noqa: E402

SOURCE_NAMES = ["note", "phrase", "drums", "speech", "noise"]


@dataclass
class Dataset:
    """The cache of generate_data.py: features [shape=(total_frames, n_mels)] and clip columns."""

    features: torch.Tensor
    clips: dict[str, np.ndarray]
    meta: dict

    @classmethod
    def load(cls, data_dir: Path) -> "Dataset":
        data_dir = Path(data_dir)
        features = torch.from_numpy(np.load(data_dir / "features.npy"))
        with np.load(data_dir / "clips.npz") as columns:
            clips = {key: columns[key] for key in columns.files}
        meta = json.loads((data_dir / "meta.json").read_text())
        if meta["front_end"] != recipe.FRONT_END:
            raise SystemExit(f"{data_dir}: features were made with front end {meta['front_end']}, "
                             f"recipe has {recipe.FRONT_END}; regenerate the data")
        return cls(features, clips, meta)

    def frames_of(self, index: int) -> torch.Tensor:
        """One whole clip, [shape=(n_mels, frames)] float32."""
        offset, frames = int(self.clips["offset"][index]), int(self.clips["frames"][index])
        return self.features[offset:offset + frames].T.float()

    def crops(self, indices: np.ndarray, starts: np.ndarray, crop_frames: int) -> torch.Tensor:
        """Crops [shape=(batch, n_mels, crop_frames)], zero (silence) past a clip's end."""
        offsets = torch.from_numpy(self.clips["offset"][indices] + starts)[:, None]
        lengths = torch.from_numpy(self.clips["frames"][indices] - starts)[:, None]
        steps = torch.arange(crop_frames)[None, :]
        positions = offsets + torch.minimum(steps, lengths - 1)
        batch = self.features[positions].float() * (steps < lengths)[..., None]
        return batch.transpose(1, 2)


def apply_gain(log_mel: torch.Tensor, gain_db: torch.Tensor) -> torch.Tensor:
    """Exact level change in the front end's domain: log1p(g * expm1(x))."""
    gain = (10.0 ** (gain_db / 20.0))[:, None, None]
    return torch.log1p(torch.expm1(log_mel) * gain)


def band_statistics(data: Dataset, train: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-band mean and std over every training frame."""
    total = torch.zeros(data.features.shape[1], dtype=torch.float64)
    square = torch.zeros_like(total)
    count = 0
    for index in train:
        frames = data.frames_of(int(index)).double()
        total += frames.sum(dim=1)
        square += (frames ** 2).sum(dim=1)
        count += frames.shape[1]
    mean = total / count
    std = (square / count - mean ** 2).clamp_min(1e-8).sqrt()
    return mean.float(), std.float().clamp_min(1e-3)


@torch.no_grad()
def evaluate(network: TimbreCNN, data: Dataset, indices: np.ndarray) -> dict:
    """Accuracy of both heads on whole clips, overall and by source."""
    network.eval()
    program_hits, family_hits = [], []
    for index in indices:
        logits = network.classify(network.maps_from_log_mel(data.frames_of(int(index))[None]))
        program_hits.append(int(logits["program"].argmax()) == int(data.clips["program"][index]))
        family_hits.append(int(logits["family"].argmax()) == int(data.clips["family"][index]))
    network.train()
    program_hits, family_hits = np.array(program_hits), np.array(family_hits)
    sources = data.clips["source"][indices]
    gm = data.clips["program"][indices] < len(recipe.GM_PROGRAMS)
    result = {
        "clips": len(indices),
        "family_accuracy": float(family_hits.mean()),
        "program_accuracy": float(program_hits.mean()),
        "gm_program_accuracy": float(program_hits[gm].mean()) if gm.any() else None,
        "by_source": {},
    }
    for code, name in enumerate(SOURCE_NAMES):
        chosen = sources == code
        if chosen.any():
            result["by_source"][name] = {
                "clips": int(chosen.sum()),
                "family_accuracy": float(family_hits[chosen].mean()),
                "program_accuracy": float(program_hits[chosen].mean()),
            }
    return result


def save_network(network: TimbreCNN, out_dir: Path, facts: dict) -> Path:
    """Write the safetensors weights and the JSON architecture (with classes and facts) beside it."""
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / f"{PRETRAINED_NAME}.safetensors"
    save_file(network.weight_tensors(), str(weights), metadata={"format": "audiostyle.timbre_cnn"})
    description = {
        **network.architecture,
        "classes": {"program": recipe.PROGRAM_CLASSES, "family": recipe.FAMILY_CLASSES},
        "training": facts,
    }
    weights.with_suffix(".json").write_text(json.dumps(description, indent=1) + "\n")
    return weights


def train(
    data_dir: Path,
    *,
    out_dir: Path | None = None,
    steps: int = 5000,
    batch_size: int = 64,
    crop_frames: int = 43,
    learning_rate: float = 2e-3,
    weight_decay: float = 1e-4,
    dropout: float = 0.3,
    eval_every: int = 1000,
    seed: int = 0,
    log=print,
) -> dict:
    """Train from a generate_data.py cache; return losses, held-out metrics and the network.

    Parameters
    ----------
    data_dir : Path
        Folder with features.npy, clips.npz, meta.json.
    out_dir : Path, optional
        Where to write the weights (after each evaluation and at the end); nothing when None.
    steps, batch_size, crop_frames : int
        Optimiser steps, clips per step, crop length in frames (43 ~ 1 s).
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    data = Dataset.load(Path(data_dir))
    heldout_mask = data.clips["heldout"].astype(bool)
    train_idx, heldout_idx = np.flatnonzero(~heldout_mask), np.flatnonzero(heldout_mask)
    network = TimbreCNN(recipe.architecture(), sample_rate=recipe.SAMPLE_RATE, n_fft=recipe.N_FFT)
    network.band_mean, network.band_std = band_statistics(data, train_idx)
    network.train()
    optimizer = torch.optim.AdamW(network.parameters(), lr=learning_rate, weight_decay=weight_decay)
    warmup = max(1, min(200, steps // 10))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps)),
    )
    programs = torch.from_numpy(data.clips["program"]).long()
    families = torch.from_numpy(data.clips["family"]).long()
    losses, evaluations, started = [], [], time.time()
    facts: dict = {}
    for step in range(1, steps + 1):
        chosen = rng.choice(train_idx, size=batch_size)
        spare = np.maximum(data.clips["frames"][chosen] - crop_frames, 0)
        starts = (rng.random(batch_size) * (spare + 1)).astype(np.int64)
        crops = data.crops(chosen, starts, crop_frames)
        # Levels from -20 dB to +6 dB around the rendered ones: timbre, not loudness.
        crops = apply_gain(crops, torch.from_numpy(rng.uniform(-20.0, 6.0, batch_size)).float())
        logits = network.classify(network.maps_from_log_mel(crops), dropout=dropout)
        loss = F.cross_entropy(logits["program"], programs[chosen], label_smoothing=0.05) + F.cross_entropy(
            logits["family"], families[chosen], label_smoothing=0.05
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if step % 100 == 0:
            log(f"step {step}/{steps} loss {np.mean(losses[-100:]):.3f} {time.time() - started:.0f} s")
        if step == steps or (eval_every and step % eval_every == 0):
            metrics = evaluate(network, data, heldout_idx) if len(heldout_idx) else {}
            evaluations.append({"step": step, **{k: v for k, v in metrics.items() if k != "by_source"}})
            log(f"held-out at step {step}: {json.dumps({k: v for k, v in metrics.items() if k != 'by_source'})}")
            facts = {
                "data": {k: data.meta[k] for k in ("seed", "scale", "clips", "frames", "command") if k in data.meta},
                "steps": step, "batch_size": batch_size, "crop_frames": crop_frames,
                "learning_rate": learning_rate, "weight_decay": weight_decay, "dropout": dropout,
                "seed": seed, "seconds": round(time.time() - started, 1),
                "final_loss": float(np.mean(losses[-100:])), "heldout": metrics,
            }
            if out_dir is not None:
                save_network(network, Path(out_dir), facts)
    network.eval()
    return {"losses": losses, "evaluations": evaluations, "facts": facts, "network": network}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parent / "data")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "output")
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = train(args.data, out_dir=args.out, steps=args.steps, batch_size=args.batch_size, seed=args.seed)
    print(json.dumps(result["facts"]["heldout"], indent=1))


if __name__ == "__main__":
    main()
