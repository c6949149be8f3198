"""``writers/upload.py`` units test_upload.py leaves out, against the real S3 server (SeaweedFS on loopback).

The datasets here are hand-built directories (shard files, an index.json naming them, a manifest): the
uploader moves files and never parses the manifest, so each case takes milliseconds and no convert.
Every failure comes from the real server or the real file system; ``Recording`` only watches a real client.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from streamclip.errors import InputError, StreamclipError, UploadError
from streamclip.writers.upload import S3Uploader, upload_dataset

pytestmark = pytest.mark.s3


def make_dataset(path: Path, shards: int = 3, *, zipped: bool = True, tag: str = "new", extra: tuple[str, ...] = ("centroids.npy", "rejected.jsonl")) -> Path:
    """A complete dataset directory as upload_dataset sees one: each file's bytes name the file and ``tag``."""
    path.mkdir(parents=True)
    entries = []
    for i in range(shards):
        raw = f"shard.{i:05d}.mds"
        entry = {"raw_data": {"basename": raw}, "zip_data": {"basename": raw + ".zstd"} if zipped else None}
        (path / (raw + ".zstd" if zipped else raw)).write_bytes(f"{tag} {raw} ".encode() * (i + 1))
        entries.append(entry)
    (path / "index.json").write_text(json.dumps({"version": 2, "shards": entries}))
    (path / "streamclip.json").write_text(json.dumps({"tag": tag}))
    for name in extra:
        (path / name).write_bytes(f"{tag} {name}".encode())
    return path


def files(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in path.iterdir()}


def listing(s3, prefix: str) -> dict[str, bytes]:
    client = s3.client()
    found = client.list_objects_v2(Bucket=s3.bucket, Prefix=prefix + "/").get("Contents", [])
    return {item["Key"][len(prefix) + 1 :]: client.get_object(Bucket=s3.bucket, Key=item["Key"])["Body"].read() for item in found}


def put(s3, prefix: str, objects: dict[str, bytes]) -> None:
    client = s3.client()
    for name, data in objects.items():
        client.put_object(Bucket=s3.bucket, Key=f"{prefix}/{name}", Body=data)


class Recording:
    """A real boto3 client that notes the key of every ``put_object`` it passes on, in order."""

    def __init__(self, real) -> None:
        self.real, self.puts, self.lock = real, [], threading.Lock()

    def put_object(self, **kwargs):
        result = self.real.put_object(**kwargs)
        with self.lock:
            self.puts.append(kwargs["Key"])
        return result

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_the_manifest_goes_last_after_the_index_and_the_index_after_every_shard(s3, tmp_path):
    ds = make_dataset(tmp_path / "ds", shards=6)
    client = Recording(s3.client())
    upload_dataset(str(ds), f"s3://{s3.bucket}/units/order", client=client, workers=4, progress=False)
    names = [key.removeprefix("units/order/") for key in client.puts]
    assert sorted(names) == sorted(files(ds))
    assert names[-2:] == ["index.json", "streamclip.json"]
    shards = [i for i, n in enumerate(names) if n.startswith("shard.")]
    assert max(shards) < names.index("centroids.npy") and max(shards) < names.index("rejected.jsonl")
    assert listing(s3, "units/order") == files(ds)


def test_a_second_upload_without_overwrite_is_refused_and_changes_nothing(s3, tmp_path):
    url = f"s3://{s3.bucket}/units/twice"
    first = make_dataset(tmp_path / "first", tag="first")
    upload_dataset(str(first), url, progress=False)
    with pytest.raises(InputError, match=f"{url}: a streamclip dataset exists there; pass --overwrite"):
        upload_dataset(str(make_dataset(tmp_path / "second", tag="second")), url, progress=False)
    assert listing(s3, "units/twice") == files(first)


@pytest.mark.parametrize("present", [{"streamclip.json": b"{}"}, {"index.json": b"{}", "shard.00000.mds": b"x"}])
def test_resume_does_not_accept_a_dataset_only_leftover_shards(s3, present):
    prefix = f"units/resume-refused-{len(present)}"
    put(s3, prefix, present)
    with pytest.raises(InputError, match="exists there"):
        S3Uploader(f"s3://{s3.bucket}/{prefix}", resume=True, progress=False)


def test_resume_overwrites_the_interrupted_runs_shards(s3, tmp_path):
    """What an interrupted upload left is replaced by this run's bytes under the same names."""
    prefix = "units/resumed"
    ds = make_dataset(tmp_path / "ds", shards=4)
    put(s3, prefix, {"shard.00000.mds.zstd": b"stale", "shard.00001.mds.zstd": b"stale"})
    uploader = S3Uploader(f"s3://{s3.bucket}/{prefix}", resume=True, progress=False)
    for entry in json.loads((ds / "index.json").read_text())["shards"]:
        uploader.submit_shard_files(str(ds), entry)
    uploader.finish(str(ds))
    assert listing(s3, prefix) == files(ds)


def test_a_shard_like_prefix_that_is_not_a_shard_name_is_no_dataset(s3):
    put(s3, "units/readme", {"shard.readme.txt": b"notes", "shard.": b"", "shards.mds": b"x"})
    S3Uploader(f"s3://{s3.bucket}/units/readme", progress=False)


def test_a_dataset_at_the_bucket_root_is_found_and_refused(s3):
    bucket = "units-root-bucket"
    client = s3.client()
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="index.json", Body=b"{}")
    with pytest.raises(InputError, match=f"s3://{bucket}: an MDS dataset exists there"):
        S3Uploader(f"s3://{bucket}", progress=False)
    with pytest.raises(InputError, match=f"s3://{bucket}: an MDS dataset exists there"):
        S3Uploader(f"s3://{bucket}/", progress=False)


@pytest.mark.parametrize("location, key, url", [
    ("s3://b/p", "p/x.bin", "s3://b/p/x.bin"),
    ("s3://b/p/", "p/x.bin", "s3://b/p/x.bin"),
    ("s3://b/a/b//", "a/b/x.bin", "s3://b/a/b/x.bin"),
    ("s3://b", "x.bin", "s3://b/x.bin"),
])
def test_keys_and_urls_join_the_prefix_once(s3, location, key, url):
    uploader = S3Uploader(location, overwrite=True, client=s3.client(), progress=False)  # overwrite: nothing is listed
    assert (uploader.key("x.bin"), uploader.url("x.bin")) == (key, url)


def test_the_zip_is_uploaded_when_present_else_the_raw_file(s3, tmp_path):
    (tmp_path / "shard.00000.mds").write_bytes(b"raw 0")
    (tmp_path / "shard.00000.mds.zstd").write_bytes(b"zip 0")
    (tmp_path / "shard.00001.mds").write_bytes(b"raw 1")
    uploader = S3Uploader(f"s3://{s3.bucket}/units/parts", progress=False)
    for i in range(2):
        uploader.submit_shard_files(str(tmp_path), {"raw_data": {"basename": f"shard.{i:05d}.mds"}, "zip_data": {"basename": f"shard.{i:05d}.mds.zstd"}})
    uploader.wait()
    uploader.close()
    assert listing(s3, "units/parts") == {"shard.00000.mds.zstd": b"zip 0", "shard.00001.mds": b"raw 1"}


@pytest.mark.parametrize("index, error", [
    (b"[1, 2]", "TypeError"),
    (b'{"version": 2}', "KeyError"),
])
def test_an_index_that_is_not_an_mds_index_is_refused_naming_it(s3, tmp_path, index, error):
    ds = make_dataset(tmp_path / "ds")
    (ds / "index.json").write_bytes(index)
    with pytest.raises(InputError, match=rf"ds/index.json: not a readable MDS index \({error}"):
        upload_dataset(str(ds), f"s3://{s3.bucket}/units/bad-index", progress=False)
    assert listing(s3, "units/bad-index") == {}


@pytest.mark.parametrize("index", [b'{"shards": 3}', b'{"shards": [7]}', b'{"shards": [{"raw_data": {"bytes": 10}}]}',
                                   b'{"shards": [{"raw_data": {"basename": "../../outside.mds"}}]}',
                                   b'{"shards": [{"raw_data": {"basename": "shard.00000.mds"}, "zip_data": {"basename": 5}}]}'])
def test_an_index_whose_shards_are_malformed_is_refused_naming_it(s3, tmp_path, index):
    ds = make_dataset(tmp_path / "ds")
    (ds / "index.json").write_bytes(index)
    with pytest.raises(StreamclipError, match="ds/index.json"):
        upload_dataset(str(ds), f"s3://{s3.bucket}/units/malformed-index", progress=False)


def test_a_shard_missing_locally_stops_the_upload_before_any_index(s3, tmp_path):
    ds = make_dataset(tmp_path / "ds", shards=3)
    (ds / "shard.00002.mds.zstd").unlink()
    with pytest.raises(UploadError, match="no local file for shard 'shard.00002.mds'"):
        upload_dataset(str(ds), f"s3://{s3.bucket}/units/missing-shard", progress=False)
    remote = listing(s3, "units/missing-shard")
    assert set(remote) <= {"shard.00000.mds.zstd", "shard.00001.mds.zstd"}


def test_abort_leaves_only_complete_shards_and_no_index(s3, tmp_path):
    ds = make_dataset(tmp_path / "ds", shards=30)
    uploader = S3Uploader(f"s3://{s3.bucket}/units/aborted", workers=1, progress=False)
    for entry in json.loads((ds / "index.json").read_text())["shards"]:
        uploader.submit_shard_files(str(ds), entry)
    uploader.abort()
    uploader.abort()  # a second abort (a caller's cleanup after finish failed) is harmless
    remote = listing(s3, "units/aborted")
    assert remote.items() <= {k: v for k, v in files(ds).items() if k.startswith("shard.")}.items()


def test_an_aborted_overwrite_has_already_unpublished_the_old_dataset(s3, tmp_path):
    """Replacing deletes the old manifest and index before the first byte: an interrupted replacement
    leaves no readable dataset rather than the old manifest over a mix of old and new shards."""
    url = f"s3://{s3.bucket}/units/unpublished"
    upload_dataset(str(make_dataset(tmp_path / "old", tag="old")), url, progress=False)
    new = make_dataset(tmp_path / "new", shards=1, tag="new")
    uploader = S3Uploader(url, overwrite=True, progress=False)
    uploader.submit(str(new / "shard.00000.mds.zstd"))
    uploader.wait()
    uploader.abort()
    remote = listing(s3, "units/unpublished")
    assert "streamclip.json" not in remote and "index.json" not in remote
    assert remote["shard.00000.mds.zstd"] == (new / "shard.00000.mds.zstd").read_bytes()


def test_overwrite_deletes_only_old_shards_its_index_named_inside_the_prefix(s3, tmp_path):
    old_index = {"shards": [
        {"raw_data": {"basename": f"shard.{i:05d}.mds"}, "zip_data": {"basename": f"shard.{i:05d}.mds.zstd"}} for i in range(5)
    ] + [{"raw_data": {"basename": "../victim/keep.bin"}}, {"raw_data": {"basename": "sub/keep.bin"}}, "not a dict", {"raw_data": 7}]}
    put(s3, "units/scoped", {"index.json": json.dumps(old_index).encode(), "streamclip.json": b"old", "notes.txt": b"mine",
                             "sub/keep.bin": b"nested", **{f"shard.{i:05d}.mds.zstd": b"old" for i in range(5)}})
    put(s3, "units/victim", {"keep.bin": b"a sibling's"})
    new = make_dataset(tmp_path / "new", shards=2)
    upload_dataset(str(new), f"s3://{s3.bucket}/units/scoped", overwrite=True, progress=False)
    assert listing(s3, "units/scoped") == {**files(new), "notes.txt": b"mine", "sub/keep.bin": b"nested"}
    assert listing(s3, "units/victim") == {"keep.bin": b"a sibling's"}


def test_overwriting_over_an_unreadable_old_index_still_replaces_the_dataset(s3, tmp_path):
    put(s3, "units/garbled", {"index.json": b"{not json", "streamclip.json": b"old"})
    new = make_dataset(tmp_path / "new")
    upload_dataset(str(new), f"s3://{s3.bucket}/units/garbled", overwrite=True, progress=False)
    assert listing(s3, "units/garbled") == files(new)


def test_overwriting_a_fresh_prefix_is_a_plain_upload(s3, tmp_path):
    new = make_dataset(tmp_path / "new")
    upload_dataset(str(new), f"s3://{s3.bucket}/units/fresh-overwrite", overwrite=True, progress=False)
    assert listing(s3, "units/fresh-overwrite") == files(new)


@pytest.mark.parametrize("bucket, reason", [("no-such-bucket-units", "S3 error NoSuchBucket"), ("bad!bucket", "S3 request failed at .*ParamValidationError")])
def test_a_destination_that_cannot_be_listed_is_refused_naming_it(s3, bucket, reason):
    with pytest.raises(InputError, match=rf"cannot write the dataset: s3://{bucket}/ds: {reason}"):
        S3Uploader(f"s3://{bucket}/ds", progress=False)


def test_an_overwrite_into_a_missing_bucket_fails_naming_the_location(s3, tmp_path):
    (tmp_path / "shard.00000.mds").write_bytes(b"x")
    uploader = S3Uploader("s3://no-such-bucket-units/ds", overwrite=True, progress=False)  # overwrite: not listed up front
    with pytest.raises(UploadError, match=r"cannot list the dataset being replaced: s3://no-such-bucket-units/ds: S3 error NoSuchBucket"):
        uploader.submit(str(tmp_path / "shard.00000.mds"))
    uploader.abort()


def test_a_rejected_put_names_the_object_and_says_no_manifest_was_written(s3, tmp_path):
    """The store starts refusing this client after the destination was checked (credentials rotated mid-run)."""
    ds = make_dataset(tmp_path / "ds", shards=1)
    uploader = S3Uploader(f"s3://{s3.bucket}/units/refused", progress=False)
    uploader.client = s3.client(secret="not-the-secret")
    uploader.submit(str(ds / "shard.00000.mds.zstd"))
    with pytest.raises(UploadError, match=rf"upload failed, no manifest was written: s3://{s3.bucket}/units/refused/shard.00000.mds.zstd: "
                                          r"S3 error SignatureDoesNotMatch .*AWS_SECRET_ACCESS_KEY"):
        uploader.finish(str(ds))
    assert listing(s3, "units/refused") == {}


def test_a_local_file_that_cannot_be_read_fails_finish_before_any_metadata(s3, tmp_path):
    ds = make_dataset(tmp_path / "ds", shards=1)
    unreadable = tmp_path / "a-directory"
    unreadable.mkdir()
    uploader = S3Uploader(f"s3://{s3.bucket}/units/unreadable", progress=False)
    uploader.submit(str(unreadable), "shard.00007.mds")
    with pytest.raises(UploadError, match=rf"upload of s3://{s3.bucket}/units/unreadable/shard.00007.mds failed, "
                                          r"no manifest was written: IsADirectoryError"):
        uploader.finish(str(ds))
    assert listing(s3, "units/unreadable") == {}


def test_submitting_a_missing_file_names_it_and_the_destination(s3, tmp_path):
    uploader = S3Uploader(f"s3://{s3.bucket}/units/missing-file", progress=False)
    with pytest.raises(UploadError, match=rf"{tmp_path}/gone.mds: no such file to upload as s3://{s3.bucket}/units/missing-file/shard.00000.mds"):
        uploader.submit(str(tmp_path / "gone.mds"), "shard.00000.mds")
    uploader.abort()
    assert listing(s3, "units/missing-file") == {}


def test_after_a_failed_upload_the_next_submit_raises_it(s3, tmp_path):
    """Fail fast: the producer (packing) learns of a failed shard at its next shard, not at the end."""
    (tmp_path / "dir").mkdir()
    good = tmp_path / "shard.00001.mds"
    good.write_bytes(b"fine")
    uploader = S3Uploader(f"s3://{s3.bucket}/units/fail-fast", workers=1, progress=False)
    uploader.submit(str(tmp_path / "dir"), "shard.00000.mds")
    deadline = time.monotonic() + 20
    with pytest.raises(UploadError, match="shard.00000.mds failed"):
        while time.monotonic() < deadline:
            uploader.submit(str(good))
            time.sleep(0.02)
    uploader.abort()


def test_overwriting_leaves_no_metadata_file_of_the_old_dataset(s3, tmp_path):
    url = f"s3://{s3.bucket}/units/old-metadata"
    upload_dataset(str(make_dataset(tmp_path / "old", tag="old")), url, progress=False)
    new = make_dataset(tmp_path / "new", tag="new", extra=())
    upload_dataset(str(new), url, overwrite=True, progress=False)
    assert listing(s3, "units/old-metadata") == files(new)


def test_a_retried_overwrite_still_removes_the_old_datasets_shards(s3, tmp_path):
    url = f"s3://{s3.bucket}/units/retried"
    upload_dataset(str(make_dataset(tmp_path / "old", shards=6, tag="old")), url, progress=False)
    broken = make_dataset(tmp_path / "broken", shards=2, tag="new")
    (broken / "shard.00001.mds.zstd").unlink()
    with pytest.raises(UploadError, match="no local file for shard"):
        upload_dataset(str(broken), url, overwrite=True, progress=False)
    new = make_dataset(tmp_path / "new", shards=2, tag="new")
    upload_dataset(str(new), url, overwrite=True, progress=False)
    assert listing(s3, "units/retried") == files(new)
