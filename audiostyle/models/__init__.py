"""Style models: a network trained once per style, then applied to any content in one pass.

:func:`train_style_model` fits a small causal network (:class:`TransformNet`) with Adam to what
:func:`~audiostyle.stylize` makes of excerpts of the training contents (its teacher);
:class:`StyleModel` applies it to whole files (:meth:`StyleModel.apply`) or block by block
(:meth:`StyleModel.stream`), at any sample rate, with a causal colour match towards the
style's long-term colour, and saves it as safetensors plus a JSON sidecar.
"""

from .model import MODEL_FORMAT, MODEL_VERSION, StyleModel
from .network import TransformNet
from .stream import COLOUR_MATCH, ModelStream
from .train import DEFAULT_ARCHITECTURE, train_style_model
from .training_data import generic_files

__all__ = [
    "COLOUR_MATCH",
    "DEFAULT_ARCHITECTURE",
    "MODEL_FORMAT",
    "MODEL_VERSION",
    "ModelStream",
    "StyleModel",
    "TransformNet",
    "generic_files",
    "train_style_model",
]
