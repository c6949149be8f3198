"""Metadata reads from a directory or a real S3 store (SeaweedFS on loopback): every failure is a clear
``ManifestError`` or ``ConfigError`` naming the location, a missing file a ``FileNotFoundError``."""

from __future__ import annotations

import socket

import pytest

from streamclip.errors import ConfigError, ManifestError
from streamclip.storage import is_remote, read_bytes, split_s3

pytestmark = pytest.mark.s3


def test_local_and_remote_locations_are_told_apart():
    assert not is_remote("data/ds") and not is_remote("/abs/ds")
    assert is_remote("s3://bucket/ds") and is_remote("gs://bucket/ds")


@pytest.mark.parametrize("url, bucket, key", [("s3://b/k", "b", "k"), ("s3://bucket/a/b/c.json", "bucket", "a/b/c.json"), ("s3://bucket", "bucket", "")])
def test_split_s3_gives_bucket_and_key(url, bucket, key):
    assert split_s3(url) == (bucket, key)


@pytest.mark.parametrize("url", ["gs://bucket/key", "s3:///key", "bucket/key"])
def test_split_s3_refuses_what_is_not_an_s3_url(url):
    with pytest.raises(ConfigError, match=r"is not an s3://bucket/key URL"):
        split_s3(url)


def test_read_bytes_local(tmp_path):
    (tmp_path / "index.json").write_bytes(b'{"shards": []}')
    assert read_bytes(str(tmp_path), "index.json") == b'{"shards": []}'
    with pytest.raises(FileNotFoundError):
        read_bytes(str(tmp_path), "missing.json")


def test_read_bytes_refuses_other_schemes():
    with pytest.raises(ConfigError, match="only local directories and s3://bucket/prefix are supported"):
        read_bytes("gs://bucket/ds", "index.json")


def test_read_bytes_s3_round_trip_and_missing_key(s3):
    s3.client().put_object(Bucket=s3.bucket, Key="storage/ds/index.json", Body=b"payload")
    assert read_bytes(f"s3://{s3.bucket}/storage/ds", "index.json") == b"payload"
    assert read_bytes(f"s3://{s3.bucket}/storage/ds/", "index.json") == b"payload"
    with pytest.raises(FileNotFoundError, match=f"s3://{s3.bucket}/storage/ds/absent.json"):
        read_bytes(f"s3://{s3.bucket}/storage/ds", "absent.json")


def test_wrong_credentials_name_the_s3_code_and_the_fix(s3, monkeypatch):
    s3.client().put_object(Bucket=s3.bucket, Key="storage/creds/index.json", Body=b"x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(ManifestError, match=r"storage/creds/index.json: S3 error SignatureDoesNotMatch .*AWS_SECRET_ACCESS_KEY"):
        read_bytes(f"s3://{s3.bucket}/storage/creds", "index.json")


def test_a_missing_bucket_is_named(s3):
    with pytest.raises(ManifestError, match=r"s3://no-such-bucket-here/ds/index.json: S3 error NoSuchBucket"):
        read_bytes("s3://no-such-bucket-here/ds", "index.json")


def test_an_unreachable_endpoint_says_so(s3, monkeypatch):
    with socket.socket() as s:  # a loopback port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("S3_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(ManifestError, match=rf"cannot reach the S3 endpoint http://127.0.0.1:{port}"):
        read_bytes(f"s3://{s3.bucket}/ds", "index.json")
