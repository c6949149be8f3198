"""Reading small dataset files (manifest, index, centroids) from a directory or object storage.

Only metadata goes through here; shards are read by MosaicML Streaming's own downloaders, so
the endpoint rules are the same as streaming's: ``S3_ENDPOINT_URL`` selects an S3-compatible store.
S3 failures (wrong credentials, missing bucket, unreachable endpoint) become one-line
``ManifestError`` messages that name the location, the S3 error code and the likely fix.
"""

from __future__ import annotations

import os
import posixpath

from streamclip.errors import ConfigError, ManifestError

# S3 error code -> the likely cause, in words a user can act on.
S3_HINTS = {
    "SignatureDoesNotMatch": "the secret key does not match the access key: check AWS_SECRET_ACCESS_KEY",
    "InvalidAccessKeyId": "the store does not know this access key: check AWS_ACCESS_KEY_ID and S3_ENDPOINT_URL",
    "AccessDenied": "these credentials may not access it",
    "NoSuchBucket": "the bucket does not exist: check the bucket name and S3_ENDPOINT_URL",
    "InvalidBucketName": "not a valid bucket name (S3 bucket names have 3 to 63 characters)",
    "403": "access denied: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY",
}


def is_remote(location: str) -> bool:
    """True for ``scheme://`` locations (``s3://bucket/prefix``); plain paths are local."""
    return "://" in location


def read_bytes(location: str, name: str) -> bytes:
    """The bytes of file ``name`` inside dataset ``location``; ``FileNotFoundError`` if absent."""
    if not is_remote(location):
        with open(os.path.join(location, name), "rb") as f:
            return f.read()
    if not location.startswith("s3://"):
        raise ConfigError(f"unsupported dataset location {location!r}: only local directories and s3://bucket/prefix are supported")
    bucket, prefix = split_s3(location)
    return _s3_get(bucket, posixpath.join(prefix, name))


def split_s3(url: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` -> ``("bucket", "some/key")``."""
    # Split by hand, not with urlparse: "#" and "?" are legal in S3 keys, and urlparse would cut the key
    # there (a fragment, a query) and so name another object.
    prefix = "s3://"
    bucket, _, key = url[len(prefix):].partition("/") if url.startswith(prefix) else ("", "", "")
    if not bucket:
        raise ConfigError(f"{url!r} is not an s3://bucket/key URL: give the bucket and key, e.g. s3://my-bucket/data/corpus.jsonl")
    return bucket, key.lstrip("/")


def s3_client(endpoint_url: str | None = None):  # -> botocore client; untyped to keep boto3 lazy
    """A boto3 S3 client honouring ``S3_ENDPOINT_URL`` like MosaicML Streaming does."""
    import boto3
    from botocore.config import Config

    endpoint = endpoint_url or os.environ.get("S3_ENDPOINT_URL") or None
    return boto3.session.Session().client("s3", endpoint_url=endpoint, config=Config(retries={"mode": "adaptive", "max_attempts": 5}))


def s3_error_code(error: BaseException) -> str | None:
    """The S3 error code of a botocore ``ClientError`` (``NoSuchKey``, ``SignatureDoesNotMatch``...), else None."""
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return None
    return response.get("Error", {}).get("Code") or None


def describe_s3_error(error: BaseException, url: str) -> str:
    """One line for a botocore error on ``url``: what failed, the S3 error code, and the likely fix."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    endpoint = os.environ.get("S3_ENDPOINT_URL") or "the default AWS endpoint"
    if isinstance(error, ClientError):
        code = s3_error_code(error) or "unknown"
        hint = S3_HINTS.get(code, error.response.get("Error", {}).get("Message") or "see the store's logs")
        return f"{url}: S3 error {code} at {endpoint} ({hint})"
    if isinstance(error, NoCredentialsError):
        return f"{url}: no AWS credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or an AWS profile)"
    if isinstance(error, EndpointConnectionError):
        return f"{url}: cannot reach the S3 endpoint {endpoint}; check S3_ENDPOINT_URL and that the store is up"
    return f"{url}: S3 request failed at {endpoint} ({type(error).__name__}: {error})"


def _s3_get(bucket: str, key: str) -> bytes:
    from botocore.exceptions import BotoCoreError, ClientError

    url = f"s3://{bucket}/{key}"
    try:
        return s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as e:
        if s3_error_code(e) in ("NoSuchKey", "404"):
            raise FileNotFoundError(url) from None
        raise ManifestError(describe_s3_error(e, url)) from None
    except BotoCoreError as e:
        raise ManifestError(describe_s3_error(e, url)) from None
