"""``streamclip/storage.py`` units test_storage.py leaves out: the message for every S3 error kind, ``split_s3``
edge cases, and ``read_bytes`` on odd names, payloads and locations (local, and the real SeaweedFS server)."""

from __future__ import annotations

import re

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, ReadTimeoutError

from streamclip.errors import ConfigError, ManifestError
from streamclip.storage import describe_s3_error, read_bytes, s3_error_code, split_s3

URL = "s3://bucket/ds/index.json"


def client_error(code: str | None, message: str | None = None) -> ClientError:
    error = {} if code is None else {"Code": code}
    if message is not None:
        error["Message"] = message
    return ClientError({"Error": error} if error else {}, "GetObject")


@pytest.mark.parametrize("code, fix", [
    ("SignatureDoesNotMatch", "check AWS_SECRET_ACCESS_KEY"),
    ("InvalidAccessKeyId", "check AWS_ACCESS_KEY_ID and S3_ENDPOINT_URL"),
    ("AccessDenied", "may not access it"),
    ("NoSuchBucket", "check the bucket name"),
    ("InvalidBucketName", "3 to 63 characters"),
    ("403", "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"),
])
def test_each_known_code_names_the_url_the_code_the_endpoint_and_the_fix(monkeypatch, code, fix):
    monkeypatch.setenv("S3_ENDPOINT_URL", "http://127.0.0.1:9")
    message = describe_s3_error(client_error(code, "the store's own words"), URL)
    assert message.startswith(f"{URL}: S3 error {code} at http://127.0.0.1:9 (")
    assert fix in message and "the store's own words" not in message  # the hint replaces the raw message
    assert "\n" not in message


def test_an_unknown_code_falls_back_to_the_stores_message_then_to_its_logs(monkeypatch):
    monkeypatch.delenv("S3_ENDPOINT_URL", raising=False)
    assert describe_s3_error(client_error("SlowDown", "Please reduce your request rate."), URL) == (
        f"{URL}: S3 error SlowDown at the default AWS endpoint (Please reduce your request rate.)")
    assert describe_s3_error(client_error("SlowDown"), URL).endswith("(see the store's logs)")
    assert f"{URL}: S3 error unknown at" in describe_s3_error(client_error(None), URL)


def test_an_empty_endpoint_variable_means_the_default_endpoint(monkeypatch):
    monkeypatch.setenv("S3_ENDPOINT_URL", "")
    assert "at the default AWS endpoint" in describe_s3_error(client_error("AccessDenied"), URL)


def test_missing_credentials_and_an_unreachable_endpoint_say_what_to_set(monkeypatch):
    monkeypatch.setenv("S3_ENDPOINT_URL", "http://127.0.0.1:9")
    assert describe_s3_error(NoCredentialsError(), URL) == (
        f"{URL}: no AWS credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or an AWS profile)")
    unreachable = describe_s3_error(EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), URL)
    assert unreachable.startswith(f"{URL}: cannot reach the S3 endpoint http://127.0.0.1:9; check S3_ENDPOINT_URL")


def test_any_other_error_keeps_its_type_and_text(monkeypatch):
    monkeypatch.setenv("S3_ENDPOINT_URL", "http://127.0.0.1:9")
    error = ReadTimeoutError(endpoint_url="http://127.0.0.1:9/bucket")
    assert describe_s3_error(error, URL) == f"{URL}: S3 request failed at http://127.0.0.1:9 (ReadTimeoutError: {error})"


@pytest.mark.parametrize("error", [ValueError("x"), client_error(None), client_error("", "no code")])
def test_s3_error_code_is_none_without_a_code(error):
    assert s3_error_code(error) is None


def test_s3_error_code_reads_the_code_of_a_client_error():
    assert s3_error_code(client_error("NoSuchKey", "gone")) == "NoSuchKey"


@pytest.mark.parametrize("url", ["", "s3://", "s3:/bucket/key", "s3:bucket/key", "S3//bucket/key", "https://bucket.s3.amazonaws.com/key", "/bucket/key"])
def test_split_s3_refuses_bad_urls_quoting_them(url):
    with pytest.raises(ConfigError, match=rf"^{re.escape(repr(url))} is not an s3://bucket/key URL: .*e\.g\. s3://"):
        split_s3(url)


@pytest.mark.parametrize("url, expected", [
    ("s3://b/dir/", ("b", "dir/")),
    ("s3://b/a//b", ("b", "a//b")),
    ("s3://my.bucket-1/ü ñ/файл.json", ("my.bucket-1", "ü ñ/файл.json")),
])
def test_split_s3_keeps_the_key_as_written(url, expected):
    assert split_s3(url) == expected


@pytest.mark.parametrize("key", ["data/part#1.jsonl", "runs/exp?v=2/corpus.jsonl"])
def test_split_s3_keeps_hash_and_question_mark_in_keys(key):
    assert split_s3(f"s3://bucket/{key}") == ("bucket", key)


def test_read_bytes_local_gives_the_exact_bytes_of_nested_and_empty_files(tmp_path):
    payload = bytes(range(256)) * 64
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "blob.bin").write_bytes(payload)
    (tmp_path / "empty").write_bytes(b"")
    assert read_bytes(str(tmp_path), "sub/blob.bin") == payload
    assert read_bytes(str(tmp_path), "empty") == b""
    with pytest.raises(FileNotFoundError):
        read_bytes(str(tmp_path / "no-such-dataset"), "index.json")


@pytest.mark.s3
def test_read_bytes_s3_gives_the_exact_bytes_of_nested_empty_and_large_objects(s3):
    client = s3.client()
    objects = {"sub/blob.bin": bytes(range(256)) * 64, "empty": b"", "large.bin": bytes(range(251)) * (12 << 10)}  # ~3 MiB
    for name, data in objects.items():
        client.put_object(Bucket=s3.bucket, Key=f"storage-units/{name}", Body=data)
    for name, data in objects.items():
        assert read_bytes(f"s3://{s3.bucket}/storage-units", name) == data


@pytest.mark.s3
def test_read_bytes_s3_at_a_bucket_root(s3):
    bucket = "storage-units-root"
    client = s3.client()
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="index.json", Body=b"at the root")
    assert read_bytes(f"s3://{bucket}", "index.json") == b"at the root"
    with pytest.raises(FileNotFoundError, match=f"s3://{bucket}/absent.json"):
        read_bytes(f"s3://{bucket}", "absent.json")


@pytest.mark.s3
def test_read_bytes_s3_with_an_invalid_bucket_name_names_the_url(s3):
    with pytest.raises(ManifestError, match=r"s3://bad!bucket/ds/index.json: S3 request failed at .*ParamValidationError"):
        read_bytes("s3://bad!bucket/ds", "index.json")


@pytest.mark.s3
def test_read_bytes_s3_without_credentials_says_what_to_set(s3, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata lookup: nothing leaves loopback
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(ManifestError, match=rf"s3://{s3.bucket}/ds/index.json: no AWS credentials found; set AWS_ACCESS_KEY_ID"):
        read_bytes(f"s3://{s3.bucket}/ds", "index.json")
