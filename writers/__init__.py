"""Writers: turn a corpus into a cluster-grouped streamclip dataset (``convert``)."""

from streamclip.writers.conversion import ConvertConfig, ConvertReport, convert
from streamclip.writers.embedders import Embedder, HashingEmbedder, MiniLMEmbedder
from streamclip.writers.sources import FieldRules

__all__ = ["ConvertConfig", "ConvertReport", "Embedder", "FieldRules", "HashingEmbedder", "MiniLMEmbedder", "convert"]
