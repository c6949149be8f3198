"""``s3_endpoint_url=`` for one dataset, without changing ``S3_ENDPOINT_URL`` for the whole process.

Stock streaming 0.13 (and ``streamclip.storage``) take the endpoint of an S3-compatible store
only from the ``S3_ENDPOINT_URL`` variable, read when a client is created. So the variable is set
just around the two places that create one for this dataset: construction (the manifest and
``index.json``) and each shard downloader's client (``EndpointS3Downloader``, which travels to
DataLoader workers with the dataset). Another thread creating an S3 client at that instant would
see the endpoint too: the one thing the scoping cannot rule out.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from threading import RLock
from typing import Any

from streamclip.readers.compat import S3Downloader


__all__ = ["EndpointS3Downloader", "endpoint_env", "use_endpoint"]

VARIABLE = "S3_ENDPOINT_URL"
_LOCK = RLock()


@contextmanager
def endpoint_env(url: str | None) -> Iterator[None]:
    """``S3_ENDPOINT_URL=url`` inside the block (unchanged when ``url`` is None), restored after."""
    if not url:
        yield
        return
    with _LOCK:
        before = os.environ.get(VARIABLE)
        os.environ[VARIABLE] = url
        try:
            yield
        finally:
            if before is None:
                os.environ.pop(VARIABLE, None)
            else:
                os.environ[VARIABLE] = before


class EndpointS3Downloader(S3Downloader):
    """Stock ``S3Downloader`` whose clients go to ``endpoint_url``."""

    def __init__(self, endpoint_url: str) -> None:
        super().__init__()
        self.endpoint_url = endpoint_url

    def _create_s3_client(self, unsigned: bool = False, timeout: float = 60) -> Any:
        with endpoint_env(self.endpoint_url):
            return super()._create_s3_client(unsigned=unsigned, timeout=timeout)


def use_endpoint(streams: list[Any], url: str | None) -> None:
    """Point every S3 stream's downloader at ``url``."""
    if not url:
        return
    for stream in streams:
        if isinstance(getattr(stream, "_downloader", None), S3Downloader):
            stream._downloader = EndpointS3Downloader(url)
