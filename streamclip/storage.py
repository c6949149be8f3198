"""Reading small dataset files (manifest, index, centroids) from a directory or object storage.

Only metadata goes through here; shards are read by MosaicML Streaming's own downloaders, so
the endpoint rules are the same as streaming's: ``S3_ENDPOINT_URL`` selects an S3-compatible store.
"""

from __future__ import annotations

import os
import posixpath
from urllib.parse import urlparse


def is_remote(location: str) -> bool:
    """True for ``scheme://`` locations (``s3://bucket/prefix``); plain paths are local."""
    return "://" in location


def read_bytes(location: str, name: str) -> bytes:
    """The bytes of file ``name`` inside dataset ``location``; ``FileNotFoundError`` if absent."""
    if not is_remote(location):
        with open(os.path.join(location, name), "rb") as f:
            return f.read()
    url = urlparse(location)
    if url.scheme != "s3":
        raise ValueError(f"unsupported dataset location {location!r}: use a local directory or s3://bucket/prefix")
    return _s3_get(url.netloc, posixpath.join(url.path.lstrip("/"), name))


def s3_client(endpoint_url: str | None = None):  # -> botocore client; untyped to keep boto3 lazy
    """A boto3 S3 client honouring ``S3_ENDPOINT_URL`` like MosaicML Streaming does."""
    import boto3
    from botocore.config import Config

    endpoint = endpoint_url or os.environ.get("S3_ENDPOINT_URL") or None
    return boto3.session.Session().client("s3", endpoint_url=endpoint, config=Config(retries={"mode": "adaptive", "max_attempts": 5}))


def _s3_get(bucket: str, key: str) -> bytes:
    from botocore.exceptions import ClientError

    try:
        return s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            raise FileNotFoundError(f"s3://{bucket}/{key}") from None
        raise
