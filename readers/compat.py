"""The one place the reader wing touches mosaicml-streaming's private API.

The fast read path and the cache follow private parts of streaming 0.13: the epoch iterator and
its prepare and ready threads, ``prepare_shard`` and eviction, the epoch's work partition, the MDS
shard layout. Importing this module checks the installed release first (``CompatError`` names it
and what to install), so another release fails here, by name, rather than deep in an epoch.

The reader modules import streaming's private names from here and nowhere else. ``MIRRORS``
names every stock callable they mirror or rely on the internals of, with the fingerprint of its
0.13 source and the streamclip code that follows it; ``tests/test_compat.py`` recomputes them, so
an upgrade fails naming the stock function that changed and the streamclip function to re-check.
They also read private attributes of the dataset (``_shard_states``, ``_shard_access_times``,
``_cache_filelock_path``, ``_event``, ``_iterator``...): the entries for the code that sets them
(``StreamingDataset.__init__``, ``_evict_shard``...) cover those.
"""

from __future__ import annotations

from typing import Any

import streaming

from streamclip._compat import Mirror, check_streaming_version

check_streaming_version(streaming.__version__)  # before the imports below, which another release may break

from streaming import StreamingDataset  # noqa: E402
from streaming.base import dataset as dataset_module  # noqa: E402
from streaming.base.constant import TICK  # noqa: E402
from streaming.base.dataset import _Iterator, _IterState, _ShardState  # noqa: E402
from streaming.base.format.base.reader import Reader  # noqa: E402
from streaming.base.partition import get_partitions  # noqa: E402
from streaming.base.shared import prefix as prefix_module  # noqa: E402
from streaming.base.shared.prefix import get_shm_prefix as stock_get_shm_prefix  # noqa: E402
from streaming.base.shuffle import get_shuffle  # noqa: E402
from streaming.base.storage.download import S3Downloader  # noqa: E402
from streaming.base.stream import Stream  # noqa: E402
from streaming.base.util import bytes_to_int  # noqa: E402

__all__ = [
    "MIRRORED", "MIRRORS", "TICK", "Reader", "S3Downloader", "Stream", "StreamingDataset", "_IterState", "_Iterator",
    "_ShardState", "bytes_to_int", "dataset_module", "get_partitions", "get_shuffle", "prefix_module", "shared_memory_of",
    "stock_get_shm_prefix",
]

_DATASET = "streaming.base.dataset.StreamingDataset"
_STREAM = "streaming.base.stream.Stream"
_READER = "streaming.base.format.base.reader"
_MDS = "streaming.base.format.mds"
_DOWNLOAD = "streaming.base.storage.download"

MIRRORS: tuple[Mirror, ...] = (
    # The epoch iterator (readers/fastiter.py).
    Mirror(f"{_DATASET}.__iter__", "49d309d067d0a0b35b4b68b6730159b7ee86eb7820f808e9336ffe6990f9546c",
           "readers/fastiter.py iter_spans: mirrors it line for line (previous iterator's exit, executor and event, "
           "detect_workers, _resume_incr_epoch, _get_work, the _Iterator and its two threads with on_exception as "
           "their done callback); only the yield loop differs (_yield_spans)"),
    Mirror(f"{_DATASET}._each_sample_id", "1b403701ef73220d868a895bf403583501846c55fade434491c534665980128d",
           "readers/fastiter.py _yield_spans: the same exit tests, -1 padding skipped, nothing yielded past "
           "ready_index but ids whose shard is LOCAL, yield_index advanced as samples go out"),
    Mirror(f"{_DATASET}._prepare_thread", "55f66321577c3b65e8929b8bfb97bc101f4d5d56e840e6be9526051483b6027c",
           "readers/fastiter.py prepare_spans (run by readers/dataset.py ClusterClipDataset._prepare_thread): the "
           "same exit tests and predownload window, prepare_shard(shard, False) once per run of ids in a shard"),
    Mirror(f"{_DATASET}._ready_thread", "442e0f596941683a367732a43274787c86f4c749d7aef344174a2606e247d047",
           "readers/fastiter.py ready_spans (run by readers/dataset.py ClusterClipDataset._ready_thread): the same "
           "exit tests and window, ready_index advanced over LOCAL shards a chunk at a time"),
    Mirror(f"{_DATASET}.get_item", "89dc8839ce91fe0c762e6f355c81bf0c4ecb9fa10773283e39986e039080d623",
           "readers/fastiter.py _make_current and RETRIES: its recovery of a shard file evicted since it was ready "
           "(prepare_shard again, 1 + 7 tries, then _event set and RuntimeError)"),
    Mirror(f"{_DATASET}.on_exception", "7f3fdd8ca091e21df4ea263ae28c1955ff79b1454afdd95755396ca4732b0103",
           "readers/fastiter.py iter_spans and readers/dataset.py ClusterClipDataset._guarded: the done callback "
           "sets _event (which stops the other thread and the yield loop) and re-raises; _guarded records the "
           "error first so __iter__ raises ShardError"),
    Mirror("streaming.base.dataset._Iterator", "3cce7e3f73df1307359963311b7857fe1ca9b0eb68977e60a524cf20086cbf32",
           "readers/fastiter.py: its prepare/ready/yield indices and total, should_exit, non_blocking_exit (on an "
           "abandoned iterator), exit and on_exit (two threads must call it); iter_spans adds key_base"),
    Mirror("streaming.base.dataset._ShardState", "7c884d8385410566bfb24cef745def90863092418baae24e14b890d175699fbd",
           "readers/fastiter.py LOCAL/REMOTE and readers/reserve.py REMOTE/PREPARING/LOCAL: the values and the "
           "REMOTE -> PREPARING -> LOCAL -> REMOTE transitions of the shared state array"),
    # The shard cache (readers/reserve.py, readers/fastiter.py's eviction keys).
    Mirror(f"{_DATASET}.prepare_shard", "d1f0295d76e24f8d9a6821028f077e37e7e0fdadcb97fb41ee16a24a9c126d4a",
           "readers/reserve.py prepare_shard_reserved: the same states, cache lock, eviction loop, accounting and "
           "time_ns stamp, with the download's space reserved before it starts; readers/dataset.py "
           "ClusterClipDataset.prepare_shard falls back to it; readers/fastiter.py CLOCK assumes the time_ns stamp"),
    Mirror(f"{_DATASET}._evict_coldest_shard", "035ec7de866f5cd86dee3cb3b0c66178c20e4a05ce0229ff270159c1f42ee56f",
           "readers/reserve.py prepare_shard_reserved calls it under the cache lock; readers/fastiter.py _raise_keys "
           "relies on it evicting the LOCAL shard with the smallest _shard_access_times entry (the plan keys)"),
    Mirror(f"{_DATASET}._evict_shard", "c46ebae6550e14758dff81e58cee0bac2d8bedc7883df644c7c834fd9a921e84",
           "readers/fastiter.py _raise_keys and CLOCK: an evicted shard's access time is NEVER (uint64 max, above "
           "CLOCK) and its state REMOTE; readers/spanread.py: eviction goes through Reader.evict (unlink)"),
    Mirror(f"{_DATASET}.__init__", "e2ce2b68eddaa37f2c89f7aa9e778203dec6e72b884c7c8a17ea6283aa098dbb",
           "readers/dataset.py ClusterClipDataset.__init__ and _cache_limit_message: the cache-limit ValueError it "
           "rewords ('cache limit' in the message, 4 x the largest shard); the shared arrays _shard_states and "
           "_shard_access_times and _cache_filelock_path that readers/fastiter.py and readers/reserve.py use; the six "
           "SharedMemory objects it creates, each with an atexit cleanup (shared_memory_of, readers/shmprefix.py)"),
    Mirror(f"{_DATASET}._resume_incr_epoch", "b618559b1eeb4c1ea1a6ac71538b0ec98e3352513d6734c5ec3a7476cc1c61c8",
           "readers/fastiter.py iter_spans calls it for (epoch, sample_in_epoch), as stock __iter__ does"),
    Mirror(f"{_DATASET}._resume", "3a7dd19970ba345edec32d33706761ede23abc547655a69d79c262635fe8ecb0",
           "readers/dataset.py ClusterClipDataset._fit_cache: its default num_canonical_nodes (64 x nodes for "
           "py1s/py2s, else nodes), computed before the first epoch; ClusterClipDataset._resume applies the same "
           "fields of a loaded checkpoint when the resume shared memory is gone"),
    Mirror(f"{_DATASET}._set_shuffle_block_size", "f0b4335b271d50ddb2b406934ba96f6b3d5042afe0eee0cb2f1d2c782f912273",
           "readers/dataset.py ClusterClipDataset._fit_cache: its default block max(4_000_000 // "
           "num_canonical_nodes, 1 << 18), and that a block already set (the fitted one) is kept"),
    Mirror(f"{_DATASET}._get_work", "8c7b8c6f63191937066b7ebbe0e2c9a3ecac07aca5f1037934e3d86c8cd923ad",
           "readers/fastiter.py iter_spans calls it; readers/dataset.py ClusterClipDataset._share_work relies on "
           "it passing the node's whole (nodes, ranks, workers, batches, batch) array to _share_work in the "
           "node's leader worker only, between the barriers"),
    Mirror(f"{_DATASET}._share_work", "2612a940beb789e20aabb390f6fbf4c9dc585bed003b296c1ba3c55fb59db7b5",
           "readers/dataset.py ClusterClipDataset._share_work overrides it (a cache check, then the stock one)"),
    Mirror(f"{_DATASET}.resample_streams", "04ba167631c9052e895442d7d7d30892e80e702b7d6dab550c80796b9ec87f6e",
           "readers/dataset.py ClusterClipDataset.resample_streams replaces it: same signature, and the "
           "(shuffle_units, sample_ids) it returns is what generate_work_random_batching consumes"),
    # The epoch's work (readers/cachefit.py).
    Mirror("streaming.base.batching.generate_work", "f248a1f5c107ef2d8644763688523ad6c4215b5c891ced665e249bbe3929b774",
           "readers/dataset.py ClusterClipDataset.__init__ allows batching_method='random' only, the one "
           "readers/cachefit.py epoch_work mirrors"),
    Mirror("streaming.base.batching.random.generate_work_random_batching", "2a20ae71dfa09a96171ee06eb0a68516279440544dc77d44addd30cf79bc2316",
           "readers/cachefit.py epoch_work: mirrors it for a given world and block (resample_streams, "
           "get_partitions, get_shuffle over the partition, -1 padding kept)"),
    Mirror("streaming.base.partition.get_partitions", "7fe6d483c566b04725f7ab5ecd1ef36204b6fe7fb8da2821138033fbc8403774",
           "readers/cachefit.py epoch_work calls it with stock's positional arguments"),
    Mirror("streaming.base.shuffle.get_shuffle", "2f829a8d4b0b5cf279a7ff12c2aa2f24cb07bd4791f2a82b55de4d30d532ad71",
           "readers/cachefit.py epoch_work calls it with stock's positional arguments"),
    Mirror("streaming.base.world.World.__init__", "023b00cc2292d2533817ae49a7b093db4973dbfd5e514b9e2fe6f3c34a926692",
           "readers/fastiter.py _node_keys (node position from rank_of_node, ranks_per_node, worker_of_rank, "
           "workers_per_rank) and readers/dataset.py _fit_cache and _share_work (num_nodes, rank, node)"),
    Mirror("streaming.base.world.World.detect_workers", "db9defb0efab730ca5c291b29a17f60cd4eace6983463d5836149fafb08e04bc",
           "readers/fastiter.py iter_spans calls it, as stock __iter__ does"),
    # Shard files (readers/reserve.py, readers/cachefit.py, readers/spanread.py).
    Mirror(f"{_STREAM}.prepare_shard", "4f7c3ed5e824f1880346f199ae6d1a4d510ae49225e0f2ec8d84b600c10b0bcf",
           "readers/reserve.py prepare_shard_reserved downloads through it and settles the reservation to the "
           "cache delta it returns"),
    Mirror(f"{_STREAM}._prepare_shard_part", "988b85ebfb6f0106639f662496c4d6af183de25fc8ac95107488e37924a7d7ac",
           "readers/reserve.py prepare_shard_reserved: a download's peak is raw + zip (Reader.get_max_size) and "
           "its delta what stays; readers/spanread.py maps the raw file it leaves"),
    Mirror(f"{_STREAM}._decompress_shard_part", "55d49658c767b063ef730be3800e79ed8420f7f4fb5e4166728f49cd76539ebb",
           "readers/spanread.py ShardSpanReader: a raw file is published by rename, never rewritten in place, so a "
           "mapping always shows a whole shard; readers/localdir.py SafeStream overrides it to unlink a planted "
           "raw + '.tmp' before stock opens it for writing (which would follow a symlink)"),
    Mirror(f"{_STREAM}.__init__", "3c9741f3538bc9e2fafd231a11680d5b92b25a837e85c137072ac9ecd961a06e",
           "readers/s3endpoint.py use_endpoint replaces the _downloader it sets; readers/localdir.py guard_streams "
           "swaps the class of each stream for SafeStream, keeping its state"),
    Mirror(f"{_STREAM}.get_index_size", "514b3e5b889b312d7e440b09fde295bade15336f95c9758b95612e2518bad521",
           "readers/cachefit.py _shard_bytes and readers/dataset.py _check_cache_limit: the index bytes always "
           "in the cache"),
    Mirror(f"{_READER}.Reader.__init__", "c7e50abd3bab1a415c3813f9724c8b29b56408f6e1a0611cde3aea30a682a545",
           "readers/spanread.py: dirname, split and samples of each shard reader"),
    Mirror(f"{_READER}.JointReader.__init__", "d2a61bd05f9547b02917080c83b9047030a0bc16c479a331605754723642e538",
           "readers/spanread.py ShardSpanReader.path: one raw file per shard, raw_data.basename; readers/localdir.py "
           "refuse_damaged_raw: raw_data.bytes is that file's size, zip_data None for an uncompressed shard"),
    Mirror(f"{_READER}.Reader.get_max_size", "2ea8f9e356270b9f167fa28c5e11fceebaecd7fe172b75f321544679862659ec",
           "readers/reserve.py (the space reserved), readers/cachefit.py _shard_bytes and readers/dataset.py "
           "_cache_limit_message: raw + zip bytes, a shard's peak while it is decompressed"),
    Mirror(f"{_READER}.Reader._evict_raw", "e355eb4a00cac5e6577bc2a5ae21c4ffdae864f6ad8ab01d7f42033deae3c74f",
           "readers/spanread.py: eviction unlinks the raw file (a mapping stays readable; current() notices)"),
    Mirror(f"{_MDS}.reader.MDSReader.__init__", "1e68ddc8d7dc488527c3ffc6df2c39ca46fb395c2a486b3f2a3f3e3898c5fc4f",
           "readers/spanread.py: column_names, column_encodings and column_sizes of each shard reader"),
    Mirror(f"{_MDS}.reader.MDSReader.get_sample_data", "3a687ca2c1450b8277da4e160de0d190c26c1b613e0473816c329f4bd0cdfe74",
           "readers/spanread.py _Mapped: the raw file's layout (uint32 sample count, then uint32 offsets from byte "
           "4), read from a mapping instead of a seek per sample"),
    Mirror(f"{_MDS}.reader.MDSReader.decode_sample", "1862a75e80398ec386df6c9b00d947e2594d8b07d1877d0c067d40742724938e",
           "readers/spanread.py _parse_columns and ShardSpanReader.read: a sample is a uint32 size per variable "
           "column, then each column's bytes in column order; _read_each calls it for other encodings"),
    Mirror(f"{_MDS}.encodings.mds_decode", "cfe63f3f7de0c98baea55e3b6fcb9088a51a7a89992b98d7c0477f35d31b0208",
           "readers/spanread.py FAST_ENCODINGS: str, int32 and json decoded without it, to the same values"),
    Mirror(f"{_MDS}.encodings.Str.decode", "b3d02c32b9df10bc55d04ea8b137285207e00190d9a215147bd127ae45121514",
           "readers/spanread.py ShardSpanReader.read: str values are the UTF-8 decode of the bytes"),
    Mirror(f"{_MDS}.encodings.JSON.decode", "ea6fbdf2d98aa785e8785b37897bd9c65aba2aec8c3a0a3cef1739a545321446",
           "readers/spanread.py ShardSpanReader.read: json values are json.loads of the UTF-8 text"),
    Mirror(f"{_MDS}.encodings.Scalar.decode", "3d8c958dbb9d338912daa3f5b778ca320ba49921ca74216f507c9fe655c2639a",
           "readers/spanread.py _parse_columns and read: int32 values come back as np.int32 scalars"),
    Mirror(f"{_MDS}.encodings.Int32", "3d7d54b26d73fbb60856c215d608b9305c36ea000ae08d4ce9e477171f8187ea",
           "readers/spanread.py _is_fast: int32 is a 4-byte np.int32 column"),
    # Object storage (readers/dataset.py, readers/spanread.py).
    Mirror(f"{_DOWNLOAD}.S3Downloader.__init__", "9911c08021fc05d4e032528944cb0c01508dc89e14e503bbe0818c7f7aef1380",
           "readers/dataset.py _drop_inherited_s3_clients: the boto3 client lives in _s3_client, None until used"),
    Mirror(f"{_DOWNLOAD}.S3Downloader._download_file_impl", "6fcca1e79e9f29bbd0303633344f23330c5e9fa7aac00f63cd09285b42ef7900",
           "readers/dataset.py _drop_inherited_s3_clients: a None _s3_client is created again on the next "
           "download; readers/spanread.py: boto3 writes a temporary file and renames it"),
    Mirror(f"{_DOWNLOAD}.S3Downloader._create_s3_client", "0ad195e20615de2b1158533aef56120cf865c9eb4f288e72a1b091bb955757f3",
           "readers/s3endpoint.py EndpointS3Downloader: the client reads S3_ENDPOINT_URL from the environment "
           "when it is created, which the override sets for that moment only"),
    Mirror("streaming.base.dataset._IterState", "789eadf12928b357e8e9540eddd1d56a985e0b798da88d80a5a352e7d4f85d0f",
           "readers/fastiter.py: the iterator states it waits on when the epoch ends (EXITED)"),
    # Shared-memory names (readers/shmprefix.py).
    Mirror("streaming.base.shared.prefix.get_shm_prefix", "5a829d4130138a6cab0f607a19dd948734219fbe9e767fba04734f60ba8e3e87",
           "readers/shmprefix.py _registered wraps it, alone on a machine, under a machine-wide lock: it looks up the "
           "lowest free prefix, then creates N_locals (FileExistsError if another job took N in between); inside a "
           "process group, _registered_in_group follows its steps (check own locals, leader looks up and creates "
           "N_locals, the others attach and compare) with the leader's N sent to its ranks instead of each rank looking "
           "it up; StreamingDataset.__init__ calls it through its module's global"),
    Mirror("streaming.base.shared.prefix._check_and_find_retrying", "9e58a7796e43ced25c6bc5cb512bd2e381d836b71607890ccb6b9685d0870c63",
           "readers/shmprefix.py _registered_in_group: the leader's look-up of the lowest free prefix, per SHM_TO_CLEAN name"),
    Mirror("streaming.base.shared.prefix._pack_locals", "e7203ed1512dce52fd79e2bde062fe29d28c401bab3b6b530e5383f46eef2861",
           "readers/shmprefix.py _registered_in_group: what N_locals holds (streams_local and N), written and compared "
           "with _unpack_locals as stock does"),
    Mirror("streaming.base.util.bytes_to_int", "84a49486d6a41f7ed4527e64922ea9daa057ebcaa7ab9ee31effeefe2937fc99",
           "readers/dataset.py: cache_limit is parsed with it, as stock would (stock itself is given no limit)"),
    Mirror(f"{_DOWNLOAD}.LocalDownloader._download_file_impl", "db68c73cd8b873470f56940984efe27539b967159cbfc4850bfc6010b9869b49",
           "readers/spanread.py ShardSpanReader: a raw file copied from a local remote is published by rename"),
)

# Qualified stock name -> fingerprint of the 0.13 source streamclip follows (``MIRRORS`` says who follows it).
MIRRORED: dict[str, str] = {mirror.stock: mirror.fingerprint for mirror in MIRRORS}


def shared_memory_of(dataset: StreamingDataset) -> list[Any]:
    """The ``SharedMemory`` objects stock ``StreamingDataset.__init__`` creates (or, on other ranks, opens)."""
    return [dataset._locals_shm, dataset._shared_barrier._arr.shm, dataset._next_epoch.arr.shm, dataset._cache_usage.arr.shm,
            dataset._shard_states.shm, dataset._shard_access_times.shm]
