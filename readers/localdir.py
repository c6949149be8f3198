"""What a local dataset or cache directory may hold before streaming writes into it.

Stock streaming 0.13 decompresses a shard by ``open(raw + ".tmp", "wb")`` and a rename, and
trusts any ``shard.*`` name it finds: both follow symlinks. A dataset unpacked from someone else's
tarball (tar keeps symlinks) could then make reading overwrite any file the user can write
(``shard.00000.mds.tmp -> ~/.bashrc``) or read one as a shard. So a directory holding a symlink
or anything but a regular file under a name streaming reads or writes is refused before
streaming touches it, and a leftover ``.tmp`` is unlinked before a shard is decompressed over it
(a file may be planted after the check).
"""

from __future__ import annotations

import os
import stat


from streamclip.errors import ManifestError
from streamclip.readers.compat import Stream

__all__ = ["SafeStream", "guard_streams", "refuse_damaged_raw", "refuse_planted_files"]


def _is_streaming_name(name: str) -> bool:
    return name.startswith("shard.") or name.endswith(".tmp")


def refuse_planted_files(directory: str) -> None:
    """Raise ``ManifestError`` naming the first symlink or non-regular file among ``shard.*`` / ``*.tmp`` in ``directory``."""
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return  # nothing there yet (a cache streaming creates), or a path stock streaming reports itself
    for entry in sorted(entries, key=lambda e: e.name):
        if not _is_streaming_name(entry.name):
            continue
        mode = entry.stat(follow_symlinks=False).st_mode
        if not stat.S_ISREG(mode):
            kind = "a symlink" if stat.S_ISLNK(mode) else "not a regular file"
            raise ManifestError(
                f"{entry.path} is {kind}: streaming would read or write through it (a planted link can overwrite any "
                "file). Shards and their temporary files must be plain files: remove it, or unpack the dataset again "
                "without links"
            )


def refuse_damaged_raw(directory: str, shards: list) -> None:
    """Raise ``ManifestError`` naming the first decompressed shard in ``directory`` whose size is not its index's.

    Stock streaming reads a raw ``shard.*.mds`` it finds as is, with no hash (only downloads and
    decompressions are checked), so a truncated or replaced file would be read as samples. The size
    is the cheap part of that check: one ``stat`` per shard.
    """
    for shard in shards:
        raw = shard.raw_data
        path = os.path.join(directory, raw.basename)
        try:
            size = os.stat(path, follow_symlinks=False).st_size
        except FileNotFoundError:
            continue  # not decompressed yet: the zip is checked by hash when it is
        if size != raw.bytes:
            fix = (f"delete it and it is decompressed again from {shard.zip_data.basename}" if shard.zip_data is not None
                   else "convert the dataset again (it is the only copy of these samples)")
            raise ManifestError(f"{path} is {size} bytes but index.json says {raw.bytes}: the shard is damaged; {fix}")


class SafeStream(Stream):
    """Stock ``Stream`` that unlinks a leftover ``raw.tmp`` before decompressing a shard over it.

    Only the worker that set the shard PREPARING decompresses it, so a ``.tmp`` found here is
    stale (a crash) or planted, never another worker's write in progress.
    """

    def _decompress_shard_part(self, zip_info, zip_filename: str, raw_filename: str, compression: str | None) -> None:
        tmp = raw_filename + ".tmp"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        super()._decompress_shard_part(zip_info, zip_filename, raw_filename, compression)


def guard_streams(streams: list[Stream]) -> None:
    """Give each stock stream ``SafeStream``'s decompression (same state; the class pickles by name to workers)."""
    for stream in streams:
        if type(stream) is Stream:
            stream.__class__ = SafeStream
