"""``writers/upload.py`` against a real S3 server (SeaweedFS on loopback): what counts as an existing dataset, and bad uploads."""

from __future__ import annotations

import json

import pytest

from streamclip.errors import InputError, UploadError
from streamclip.writers import ConvertConfig, convert
from streamclip.writers.upload import S3Uploader, upload_dataset

from conftest import convert_docs, write_jsonl

pytestmark = pytest.mark.s3

FAST = dict(clusters=2, embedder="hashing", progress=False)


def put(s3, prefix: str, files: dict[str, bytes]) -> None:
    client = s3.client()
    for name, data in files.items():
        client.put_object(Bucket=s3.bucket, Key=f"{prefix}/{name}", Body=data)


def listing(s3, prefix: str) -> dict[str, bytes]:
    client = s3.client()
    found = client.list_objects_v2(Bucket=s3.bucket, Prefix=prefix + "/").get("Contents", [])
    return {item["Key"][len(prefix) + 1 :]: client.get_object(Bucket=s3.bucket, Key=item["Key"])["Body"].read() for item in found}


STOCK = {"index.json": json.dumps({"version": 2, "shards": []}).encode(), "shard.00000.mds.zstd": b"stock shard"}


@pytest.mark.parametrize("files, message", [
    (STOCK, r"an MDS dataset exists there \(index.json\); pass --overwrite"),
    ({"index.json": STOCK["index.json"]}, r"an MDS dataset exists there \(index.json\)"),
    ({"shard.00003.mds": b"x", "notes.txt": b"y"}, r"shard files are there \(shard.00003.mds, ...\) but no index; pass --overwrite"),
])
def test_any_dataset_at_the_prefix_needs_overwrite(s3, tmp_path, sample_docs, files, message):
    prefix = f"exists/{len(files)}-{sorted(files)[0]}"
    put(s3, prefix, files)
    url = f"s3://{s3.bucket}/{prefix}"
    with pytest.raises(InputError, match=message):
        S3Uploader(url)
    src = write_jsonl(tmp_path / "a.jsonl", sample_docs[:30])
    with pytest.raises(InputError, match=message):  # refused before reading: no work directory made
        convert([str(src)], url, ConvertConfig(work_dir=str(tmp_path / "w"), **FAST))
    assert not (tmp_path / "w").exists()
    assert listing(s3, prefix) == files


def test_a_near_name_is_not_a_dataset(s3):
    put(s3, "near", {"index.json.bak": b"x", "sub/index.json": b"y", "shardless.txt": b"z"})
    put(s3, "near-sibling", STOCK)  # a sibling prefix sharing the name's start
    S3Uploader(f"s3://{s3.bucket}/near")


def test_resume_accepts_shards_without_an_index(s3):
    put(s3, "partial", {"shard.00000.mds.zstd": b"from the interrupted run"})
    S3Uploader(f"s3://{s3.bucket}/partial", resume=True)


def test_overwriting_a_stock_dataset_leaves_exactly_the_new_one(s3, tmp_path, sample_docs):
    old = {**STOCK, "index.json": json.dumps({"version": 2, "shards": [
        {"raw_data": {"basename": f"shard.{i:05d}.mds"}, "zip_data": {"basename": f"shard.{i:05d}.mds.zstd"}} for i in range(40)
    ]}).encode(), **{f"shard.{i:05d}.mds.zstd": b"old" for i in range(40)}}
    put(s3, "replace", old)
    small = convert_docs(tmp_path, sample_docs[:60], name="small", **FAST)
    upload_dataset(str(small), f"s3://{s3.bucket}/replace", overwrite=True, progress=False)
    assert listing(s3, "replace") == {p.name: p.read_bytes() for p in small.iterdir()}


def test_incomplete_local_datasets_and_bad_locations_are_refused(s3, tmp_path, sample_docs):
    small = convert_docs(tmp_path, sample_docs[:30], name="small", **FAST)
    (small / "index.json").write_text("{not json")
    with pytest.raises(InputError, match=r"index.json: not a readable MDS index \(JSONDecodeError"):
        upload_dataset(str(small), f"s3://{s3.bucket}/bad", progress=False)
    (small / "index.json").unlink()
    with pytest.raises(InputError, match="no streamclip.json or index.json; only a complete streamclip dataset"):
        upload_dataset(str(small), f"s3://{s3.bucket}/bad", progress=False)
    with pytest.raises(InputError, match="a dataset goes to a local directory or to s3://bucket/prefix"):
        S3Uploader("s3://")
    uploader = S3Uploader(f"s3://{s3.bucket}/bad", progress=False)
    with pytest.raises(UploadError, match="no local file for shard 'shard.00009.mds'"):
        uploader.submit_shard_files(str(small), {"raw_data": {"basename": "shard.00009.mds"}, "zip_data": None})
    uploader.abort()
    assert listing(s3, "bad") == {}
