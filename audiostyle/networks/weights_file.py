"""Reading untrusted weights files: tensors and their JSON description, checked before use.

Shared by the shipped timbre network (:mod:`audiostyle.networks.pretrained`) and style models
(:mod:`audiostyle.models`). A weights file is never unpickled: safetensors is read as data,
and ``.pt``/``.pth`` only with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import math
import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..errors import WeightsError

__all__ = ["WEIGHTS_FILE_SLACK", "check_file_size", "checked_tensors", "read_json", "read_tensors", "short_reason"]

#: A weights file may be at most this much larger than its tensors at 8 bytes a value
#: (float64): room for the container's headers and alignment.
WEIGHTS_FILE_SLACK = 16 * 1024 * 1024


def short_reason(error: BaseException) -> str:
    """An exception as a short phrase for a one-line message (the first line, at most 200 characters)."""
    text = str(error).strip().splitlines()
    phrase = f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
    return phrase if len(phrase) <= 200 else phrase[:197] + "..."


def read_json(path: Path, *, max_bytes: int, what: str) -> Any:
    """The JSON value of ``path``, refused (WeightsError naming it) when missing, too large or invalid.

    The size is checked before the file is read, so a hostile sidecar cannot make us parse
    gigabytes.
    """
    if not path.is_file():
        raise WeightsError(f"{path}: {what} not found")
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise WeightsError(f"{path}: {size} bytes; {what} is at most {max_bytes}")
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as error:
        # ValueError: bad JSON, bad UTF-8, or an integer too long to convert.
        raise WeightsError(f"{path}: not valid JSON ({short_reason(error)})") from error


def check_file_size(path: Path, expected: Mapping[str, tuple[int, ...]]) -> None:
    """Refuse, before reading it, a weights file larger than its tensors could make it."""
    values = sum(math.prod(shape) for shape in expected.values())
    most = 8 * values + WEIGHTS_FILE_SLACK
    try:
        size = path.stat().st_size
    except OSError as error:
        raise WeightsError(f"{path}: cannot read ({short_reason(error)})") from error
    if size > most:
        raise WeightsError(f"{path}: {size} bytes is more than the tensors of its architecture can fill ({most} at most)")


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file; any failure to read it is a WeightsError naming it.

    The file is untrusted: a damaged or hostile one can make the readers fail in any way
    (struct, index, key, assertion errors from deep inside torch's unpickler), so every
    exception but an interrupt becomes the one error the callers handle.
    """
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as error:  # noqa: BLE001 - see the docstring
            raise WeightsError(f"{path}: not a readable safetensors file ({short_reason(error)})") from error
    if suffix in (".pt", ".pth"):
        try:
            with warnings.catch_warnings():
                # A damaged file can claim any pickle protocol; torch warns about each.
                warnings.simplefilter("ignore")
                # weights_only refuses any global outside torch's tensor allow-list, so a
                # pickled payload (code that runs when unpickled) is rejected before it runs.
                tensors = torch.load(str(path), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            raise WeightsError(
                f"{path}: refused: the checkpoint carries pickled objects other than tensors, or is damaged "
                f"({short_reason(error)}); save a plain dict of tensors, or use .safetensors"
            ) from error
        except Exception as error:  # noqa: BLE001 - see the docstring
            raise WeightsError(f"{path}: not a readable torch checkpoint ({short_reason(error)})") from error
        if not isinstance(tensors, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in tensors.items()
        ):
            raise WeightsError(f"{path}: must hold a flat dict of name -> tensor")
        return tensors
    raise WeightsError(f"{path}: unsupported weights format {suffix!r}; use .safetensors, .pt or .pth")


def checked_tensors(
    path: Path, tensors: Mapping[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]]
) -> dict[str, torch.Tensor]:
    """``tensors`` as float32, refused unless they are exactly ``expected``: names, shapes, finite floats."""
    missing = [name for name in expected if name not in tensors]
    if missing:
        raise WeightsError(f"{path}: missing tensor(s) {missing}")
    unexpected = sorted(set(tensors) - set(expected))
    if unexpected:
        raise WeightsError(f"{path}: unexpected tensor(s) {unexpected} for this architecture")
    checked = {}
    for name, shape in expected.items():
        tensor = tensors[name]
        if tuple(tensor.shape) != tuple(shape):
            raise WeightsError(f"{path}: tensor {name!r} has shape {tuple(tensor.shape)}, expected {tuple(shape)}")
        if not tensor.is_floating_point():
            raise WeightsError(f"{path}: tensor {name!r} has dtype {tensor.dtype}, expected floating point")
        # float32 first: the float8 types have no isfinite.
        checked[name] = tensor.to(torch.float32)
        if not torch.isfinite(checked[name]).all():
            raise WeightsError(f"{path}: tensor {name!r} holds NaN or Inf")
    return checked
