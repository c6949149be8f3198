"""Writers: turn a corpus into a cluster-grouped streamclip dataset (``convert``)."""

from streamclip.writers.conversion import ConvertConfig, ConvertReport, convert
from streamclip.writers.embedders import EMBEDDERS, Embedder, HashingEmbedder, MiniLMEmbedder, make_embedder
from streamclip.writers.onnx_embedder import OnnxMiniLMEmbedder
from streamclip.writers.static_embedder import StaticEmbedder
from streamclip.writers.sources import FieldRules
from streamclip.writers.split import SplitReport, split

__all__ = [
    "EMBEDDERS", "ConvertConfig", "ConvertReport", "Embedder", "FieldRules", "HashingEmbedder", "MiniLMEmbedder", "OnnxMiniLMEmbedder",
    "SplitReport", "StaticEmbedder", "convert", "make_embedder", "split",
]
