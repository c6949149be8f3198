"""Writers: turn a corpus into a cluster-grouped streamclip dataset (``convert``)."""

from streamclip.writers.conversion import ConvertConfig, ConvertReport, convert
from streamclip.writers.embedders import Embedder, HashingEmbedder, MiniLMEmbedder
from streamclip.writers.sources import FieldRules
from streamclip.writers.split import SplitReport, split

__all__ = ["ConvertConfig", "ConvertReport", "Embedder", "FieldRules", "HashingEmbedder", "MiniLMEmbedder", "SplitReport", "convert", "split"]
