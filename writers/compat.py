"""The one place the writer wing touches mosaicml-streaming's internals.

Packing hands ``MDSWriter`` samples it encoded itself, so it follows the writer's private shard
cutting (``Writer.write``, ``_reset_cache``, the cached ``new_samples``) and the MDS sample layout.
Importing this module checks the installed release first (``CompatError`` names it and what to
install). Import it where it is used, not at module level: streaming pulls in torch, which the
CLI's other commands do without.

``MIRRORS`` names every stock callable the writers mirror or rely on the internals of, with the
fingerprint of its 0.13 source and the streamclip code that follows it; ``tests/test_compat.py``
recomputes them, so an upgrade fails naming what changed and what to re-check.
"""

from __future__ import annotations

import streaming

from streamclip._compat import Mirror, check_streaming_version

check_streaming_version(streaming.__version__)  # before the imports below, which another release may break

from streaming import MDSWriter  # noqa: E402
from streaming.base.format.mds.encodings import get_mds_encoded_size, mds_decode, mds_encode  # noqa: E402

__all__ = ["MIRRORED", "MIRRORS", "MDSWriter", "get_mds_encoded_size", "mds_decode", "mds_encode"]

_WRITER = "streaming.base.format.base.writer"
_MDS = "streaming.base.format.mds"

MIRRORS: tuple[Mirror, ...] = (
    Mirror(f"{_WRITER}.Writer.write", "a151029b0d564248d40a06bbf8fda4f9f3e04696ed8f4506afd88a0df21e2132",
           "writers/packing.py ClusterShardWriter.write_encoded (made by _cluster_shard_writer): mirrors it minus "
           "encode_sample (the event check, the size rule on len + extra_bytes_per_sample against size_limit and "
           "new_shard_size, flush_shard then _reset_cache, the append to new_samples), but never flushing an empty "
           "shard (stock's rule closes a 0-sample shard when the first sample after a flush is over the limit)"),
    Mirror(f"{_WRITER}.Writer._reset_cache", "6c6b54396a8a49e4f8b903ea5eeb93a7c05e78210c05412c9a538bf7e99e3b0f",
           "writers/packing.py pack_clusters calls it after flush_shard at each cluster boundary (stock calls it "
           "only in write); write_encoded after a full shard"),
    Mirror(f"{_WRITER}.Writer.__init__", "caf05d868a759741c3940ade31bdab90fc234582f19c81cc713250559edaddb2",
           "writers/packing.py: event, size_limit in bytes, extra_bytes_per_sample and shards (the index entries "
           "pack_clusters' announce hands to on_shard), set as write_encoded and pack_clusters read them"),
    Mirror(f"{_WRITER}.JointWriter.flush_shard", "cd5897be26528cb4dd94b05f84ab449b44548a11c6ca8c1ef7e6952d030943bc",
           "writers/packing.py pack_clusters and write_encoded: it writes new_samples as one shard and appends its "
           "index entry to shards, which announce() reports"),
    Mirror(f"{_MDS}.writer.MDSWriter.__init__", "76481a0b22e9652a41fddb0c79fa87192ae3751bbdb117818d77a38dd7f3e4c0",
           "writers/packing.py _SampleEncoder: column_names in sorted order with their column_encodings, taken "
           "from the writer"),
    Mirror(f"{_MDS}.writer.MDSWriter.encode_sample", "1b0bc9d3d0fd315cd66bfc8f4476c72a2751059eede639beab70454b16ebcb25",
           "writers/packing.py _SampleEncoder.encode and _encode_one: mirror it (a uint32 size per variable "
           "column, then each column's bytes, columns in name order)"),
    Mirror(f"{_MDS}.writer.MDSWriter.encode_joint_shard", "38bb7263c07fc43d84e0e422c42829f09938f62bba89dcf9485010b036772e5d",
           "writers/packing.py: new_samples holds encoded samples, which it joins behind the offsets table"),
    Mirror(f"{_MDS}.encodings.mds_encode", "f7476985d0702aa6bde6f92d6a21fd7db73a7ebd3dea3140ed568e640b457b1f",
           "writers/packing.py _SampleEncoder._encode_one encodes kept columns with it"),
    Mirror(f"{_MDS}.encodings.get_mds_encoded_size", "42e93a3636831fa7ac37c08659ad7f3c20c18dfab17cd2e2524060001622ad8c",
           "writers/packing.py _SampleEncoder._encode_one: None marks a variable-size column"),
    Mirror(f"{_MDS}.encodings.Str.encode", "247eb048c75f01ba6867003c0d8bdba2ca3d7e29a671e46ebee6e54184b8cccd",
           "writers/packing.py _SampleEncoder.encode: a str column is the text's UTF-8 bytes, as staged"),
    Mirror(f"{_MDS}.encodings.Scalar.encode", "9d40cfc8a4788b0e51482cf6fface2450be0d8e4189908117e966d7d7f3d7dcb",
           "writers/packing.py _SampleEncoder.encode: the int32 cluster as struct.pack('<i'), np.int32's bytes"),
    Mirror(f"{_MDS}.encodings.mds_decode", "cfe63f3f7de0c98baea55e3b6fcb9088a51a7a89992b98d7c0477f35d31b0208",
           "writers/split.py _ShardSource._record decodes each stored column with it"),
    Mirror(f"{_MDS}.reader.MDSReader.decode_sample", "1862a75e80398ec386df6c9b00d947e2594d8b07d1877d0c067d40742724938e",
           "writers/split.py _ShardSource._record: a sample is a uint32 size per variable column, then each "
           "column's bytes in column order"),
    Mirror(f"{_MDS}.encodings.Int32", "3d7d54b26d73fbb60856c215d608b9305c36ea000ae08d4ce9e477171f8187ea",
           "writers/packing.py _SampleEncoder.encode: int32 is a 4-byte np.int32 column"),
)

# Qualified stock name -> fingerprint of the 0.13 source streamclip follows (``MIRRORS`` says who follows it).
MIRRORED: dict[str, str] = {mirror.stock: mirror.fingerprint for mirror in MIRRORS}
