"""Style models: a network trained once per style, then applied to any content in one pass.

:func:`train_style_model` fits a small causal network (:class:`TransformNet`) with Adam so that
its output scores well under the same objective :func:`~audiostyle.stylize` optimises per clip;
:class:`StyleModel` applies it to whole files (:meth:`StyleModel.apply`) or block by block
(:meth:`StyleModel.stream`), at any sample rate, and saves it as safetensors plus a JSON sidecar.
"""

from .model import MODEL_FORMAT, MODEL_VERSION, StyleModel
from .network import TransformNet
from .stream import ModelStream
from .train import DEFAULT_ARCHITECTURE, train_style_model
from .training_data import generic_files

__all__ = [
    "DEFAULT_ARCHITECTURE",
    "MODEL_FORMAT",
    "MODEL_VERSION",
    "ModelStream",
    "StyleModel",
    "TransformNet",
    "generic_files",
    "train_style_model",
]
