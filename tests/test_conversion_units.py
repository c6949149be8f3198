"""``writers/conversion.py`` units the end-to-end tests (test_convert.py, test_workdir.py, test_rejects.py) leave out:
option bounds not yet probed, the reject-line helpers, the id writer and empty-cluster renumbering, one document and
k >= n, inputs where nothing survives, the accounting invariant over several files, embedding batches and resume
keys, clustering by a field, OUT path handling, and bad inputs that must be ``StreamclipError``s, never bare ones."""

from __future__ import annotations

import gc
import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

import streamclip.writers.conversion as conv
from streamclip import open_manifest
from streamclip.errors import ConfigError, InputError, StreamclipError
from streamclip.writers import ConvertConfig, FieldRules, HashingEmbedder, convert
from streamclip.writers.conversion import (
    CLUSTER_IDS, _drop_empty, _IdWriter, _local_output, _local_paths, describe_reject, reject_line,
)
from streamclip.writers.packing import _shorten
from streamclip.writers.sources import Rejection

from conftest import write_jsonl

FAST = dict(embedder="hashing", progress=False)


def texts_of(rows: list[dict]) -> list[str]:
    return [r["text"] for r in rows]


def leftovers(root: Path, *keep: str) -> list[str]:
    """Everything in ``root`` besides the named entries: work, staging or output folders a run left behind."""
    return sorted(p.name for p in root.iterdir() if p.name not in keep)


def read_samples(path: Path) -> list[dict]:
    """Every sample as MosaicML Streaming's own reader returns it (earlier datasets finalised first)."""
    from streaming import StreamingDataset

    gc.collect()
    ds = StreamingDataset(local=str(path), shuffle=False, batch_size=1)
    return [ds[i] for i in range(ds.num_samples)]


class _PowerCut(Exception):
    """Raised by a recording embedder to stand for a crash during embedding."""


class Recording(HashingEmbedder):
    """The real hashing embedder (as ``--embedder hashing`` builds it), recording each batch; optionally crashing on call n."""

    def __init__(self, *, dim: int = 256, crash_on_call: int | None = None) -> None:
        super().__init__(dim=dim, max_tokens=256)
        self.batches: list[list[str]] = []
        self.crash_on_call = crash_on_call

    def encode(self, texts):
        if self.crash_on_call is not None and len(self.batches) + 1 == self.crash_on_call:
            raise _PowerCut("simulated crash")
        self.batches.append(list(texts))
        return super().encode(texts)


# --- ConvertConfig: the bounds test_convert_config.py does not probe ------------------------------------------


@pytest.mark.parametrize("options, message", [
    (dict(engine="spark"), r"--engine 'spark': unknown; choose one of local, ray"),
    (dict(ray_workers=2), r"--ray-workers: only for --engine ray"),
    (dict(engine="ray", ray_workers=0), r"--ray-workers 0: must be an integer >= 1"),
    (dict(engine="ray", num_gpus=-1), r"--num-gpus -1: must be a number of GPUs per embedding actor in 0\.\.64"),
    (dict(engine="ray", num_gpus=65), r"--num-gpus 65:"),
    (dict(engine="ray", num_gpus="1"), r"--num-gpus '1':"),
    (dict(engine="ray", num_gpus=True), r"--num-gpus True:"),
    (dict(bf16=True), r"--bf16 is torch autocast for --embedder minilm; --embedder hashing has no bf16 mode"),
    (dict(embedder="minilm-onnx", max_tokens=7), r"--max-tokens 7: must be an integer >= 8"),
    (dict(seed=2**31), r"--seed 2147483648: must be an integer in 0\.\.2147483647 \(faiss k-means takes a 32-bit seed\)"),
    (dict(clusters=True), r"--clusters True: must be an integer >= 1"),
    (dict(iterations=2.0), r"--iterations 2\.0: must be an integer >= 1"),
    (dict(compression="zstd:0"), r"--compression 'zstd:0'"),
    (dict(compression="zstd:23"), r"--compression 'zstd:23'"),
    (dict(compression="zstd:03"), r"--compression 'zstd:03'"),
    (dict(compression=None), r"--compression None"),
])
def test_options_outside_their_bounds_are_config_errors_naming_the_option(options, message):
    """Bounds and types at the edges of each range, and the Ray-only options, fail at construction as ConfigError."""
    with pytest.raises(ConfigError, match=message):
        ConvertConfig(**{**FAST, **options})


@pytest.mark.parametrize("options", [
    dict(seed=2**31 - 1), dict(seed=0), dict(compression="zstd"), dict(compression="zstd:1"), dict(compression="zstd:22"),
    dict(max_tokens=1), dict(embedder="static", max_tokens=1), dict(shard_size=1 << 12),
    dict(engine="ray", num_gpus=0.5), dict(engine="ray", num_gpus=64, ray_workers=1), dict(clusters=1, iterations=1),
])
def test_options_at_the_edges_of_their_ranges_are_accepted(options):
    """The inclusive ends of each range are legal; refusing them would reject valid CLI values."""
    config = ConvertConfig(**{**FAST, **options})
    assert all(getattr(config, name) == value for name, value in options.items())


def test_keep_given_as_one_string_is_refused_not_split_into_letters(tmp_path):
    """``keep="source"`` (a str, not a tuple) silently became six one-letter JSON columns; it must be refused up front."""
    with pytest.raises(ConfigError, match="--keep"):
        ConvertConfig(rules=FieldRules(keep="source"), **FAST)


def test_rules_that_are_not_field_rules_are_a_config_error():
    """Every other option of the wrong type is a ConfigError; ``rules`` must be too, not an AttributeError."""
    with pytest.raises(ConfigError, match="rules"):
        ConvertConfig(rules=None, **FAST)


# --- small helpers: reject lines, the id writer, empty-cluster renumbering, local paths ---------------------


def test_reject_line_is_one_json_row_with_null_line_for_a_whole_file_and_unicode_kept():
    """rejected.jsonl rows name file, line, reason, field and detail; a file-level rejection (line -1) has line null."""
    line_level = Rejection(0, 7, "text_not_string", "field 'körper' is a int", "körper")
    file_level = Rejection(1, -1, "unreadable", "OSError: é broken")
    for path, item, line in [("a/ü.jsonl", line_level, 7), ("b.jsonl.gz", file_level, None)]:
        text = reject_line(path, item)
        assert text.endswith("\n") and text.count("\n") == 1
        assert json.loads(text) == {"file": path, "line": line, "reason": item.reason, "field": item.field, "detail": item.detail}
        assert item.detail in text  # written as UTF-8, not \u-escaped


def test_describe_reject_names_file_line_field_reason_and_detail():
    """The --strict preview shows ``path:line: field 'f' reason (detail)``; no line or field part where there is none."""
    assert describe_reject("c.jsonl", Rejection(0, 12, "bad_cluster", "got 'x'", "g")) == "c.jsonl:12: field 'g' bad_cluster (got 'x')"
    assert describe_reject("c.jsonl", Rejection(0, 3, "malformed_json", "column 9")) == "c.jsonl:3: malformed_json (column 9)"
    assert describe_reject("d.gz", Rejection(1, -1, "unreadable", "EOFError")) == "d.gz: unreadable (EOFError)"


@pytest.mark.parametrize("count", [0, 1, 3, 4, 5, 9])
def test_id_writer_keeps_every_id_in_order_across_buffer_flushes(tmp_path, count):
    """Ids go through a fixed buffer (here 4 long): exact multiples, remainders and nothing at all must all round-trip."""
    ids = [(i * 2**40 + 7) % (2**63 - 1) for i in range(count)] + ([2**63 - 1] if count else [])
    writer = _IdWriter(str(tmp_path / "ids"), chunk=4)
    for value in ids:
        writer.add(value)
    writer.close()
    assert os.path.getsize(tmp_path / "ids") == 8 * len(ids)
    assert np.fromfile(tmp_path / "ids", dtype="<i8").tolist() == ids


def test_drop_empty_renumbers_clusters_densely_in_place_and_keeps_their_central_rows(tmp_path):
    """Empty clusters vanish; the rest become 0..K'-1 in their old order, on the on-disk labels themselves."""
    k = 6
    old = np.array([5, 0, 3, 3, 5, 0, 5], dtype=np.int32)
    central = np.array([1, -1, -1, 2, -1, 6], dtype=np.int64)
    labels = np.lib.format.open_memmap(tmp_path / "labels.npy", mode="w+", dtype=np.int32, shape=old.shape)
    labels[:] = old
    new, new_central, keep = _drop_empty(labels, central, k)
    used = sorted(set(old.tolist()))
    assert keep.tolist() == used
    assert new.tolist() == [used.index(v) for v in old.tolist()]
    assert new_central.tolist() == [central[c] for c in used]
    labels.flush()
    assert np.load(tmp_path / "labels.npy").tolist() == new.tolist()  # renumbered on disk, not in a copy


def test_drop_empty_leaves_labels_alone_when_every_cluster_is_used():
    labels = np.array([2, 0, 1, 1], dtype=np.int32)
    new, central, keep = _drop_empty(labels.copy(), np.array([1, 2, 0]), 3)
    assert new.tolist() == labels.tolist() and keep.tolist() == [0, 1, 2] and central.tolist() == [1, 2, 0]


def test_local_paths_are_the_existing_local_ones_sorted_once(tmp_path):
    """Only paths on this machine take part in the overlap checks: remote and missing ones are dropped, duplicates merged."""
    a, b = tmp_path / "a.jsonl", tmp_path / "dir"
    a.write_text("")
    b.mkdir()
    given = ["s3://bucket/x.jsonl", str(b), str(tmp_path / "missing.jsonl"), str(a), str(a)]
    assert _local_paths(given) == sorted([str(a), str(b)])


def test_an_s3_output_is_staged_in_a_stable_folder_named_after_it(tmp_path):
    """--resume finds an s3:// run's work again only if its local staging name depends on OUT alone."""
    out = "s3://bucket/prefix"
    digest = hashlib.sha256(out.encode()).hexdigest()[:12]
    work = tmp_path / "w" / "work"
    assert _local_output(out, ConvertConfig(**FAST)) == os.path.join(tempfile.gettempdir(), f"streamclip-{digest}")
    assert _local_output(out, ConvertConfig(work_dir=str(work), **FAST)) == str(tmp_path / "w" / f"streamclip-{digest}")
    assert _local_output(out, ConvertConfig(out_local=str(tmp_path / "x" / ".." / "keep"), **FAST)) == str(tmp_path / "keep")
    assert _local_output("s3://bucket/other", ConvertConfig(**FAST)) != _local_output(out, ConvertConfig(**FAST))


# --- OUT handling ----------------------------------------------------------------------------------------------


def test_out_local_for_a_local_out_is_refused_before_anything_is_made(tmp_path, sample_docs):
    src = write_jsonl(tmp_path / "a.jsonl", sample_docs[:10])
    with pytest.raises(ConfigError, match=rf"--out-local is for an s3:// output; '{tmp_path / 'ds'}' is a local directory already"):
        convert([str(src)], str(tmp_path / "ds"), ConvertConfig(clusters=2, out_local=str(tmp_path / "copy"), **FAST))
    assert leftovers(tmp_path, "a.jsonl") == []


def test_out_that_is_a_file_is_an_input_error_and_the_file_is_untouched(tmp_path, sample_docs):
    src = write_jsonl(tmp_path / "a.jsonl", sample_docs[:10])
    out = tmp_path / "ds"
    out.write_text("not a dataset")
    with pytest.raises(InputError, match=rf"{out}: exists and is a file; choose a directory path"):
        convert([str(src)], str(out), ConvertConfig(clusters=2, overwrite=True, **FAST))
    assert out.read_text() == "not a dataset" and leftovers(tmp_path, "a.jsonl", "ds") == []


def test_an_empty_existing_out_folder_is_filled_without_overwrite(tmp_path, sample_docs):
    """Only a non-empty OUT needs --overwrite: an empty folder made in advance is a fine destination."""
    src = write_jsonl(tmp_path / "a.jsonl", sample_docs[:12])
    (tmp_path / "ds").mkdir()
    report = convert([str(src)], str(tmp_path / "ds"), ConvertConfig(clusters=2, **FAST))
    assert report.written == 12 and open_manifest(str(tmp_path / "ds")).num_documents == 12
    assert leftovers(tmp_path, "a.jsonl", "ds") == []


def test_a_trailing_slash_on_out_names_the_same_dataset_and_work_dir(tmp_path, sample_docs):
    """``ds/`` is ``ds``: the work dir is the sibling ``ds.streamclip-work``, not ``ds/.streamclip-work`` inside OUT."""
    src = write_jsonl(tmp_path / "a.jsonl", sample_docs[:12])
    report = convert([str(src)], f"{tmp_path / 'ds'}/", ConvertConfig(clusters=2, keep_work=True, **FAST))
    assert report.out == str(tmp_path / "ds")
    assert leftovers(tmp_path, "a.jsonl") == ["ds", "ds.streamclip-work"]
    assert open_manifest(str(tmp_path / "ds")).num_documents == 12


def test_out_given_as_a_symlink_is_refused_or_converted_never_a_bare_error(tmp_path, sample_docs):
    """Whatever streamclip does with a symlinked OUT, the call must not report a bare OSError after publishing."""
    src = write_jsonl(tmp_path / "a.jsonl", sample_docs[:12])
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    try:
        report = convert([str(src)], str(tmp_path / "link"), ConvertConfig(clusters=2, **FAST))
    except StreamclipError as e:
        assert str(tmp_path / "link") in str(e)
        assert (tmp_path / "link").is_symlink() and list((tmp_path / "real").iterdir()) == []
    else:
        assert report.written == 12 and open_manifest(str(tmp_path / "link")).num_documents == 12


# --- nothing to write ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("content, rejected", [
    (b"", 0),
    (b"\n   \n\t\n", 0),
    (b'{"text": ""}\n{"body": "x"}\n[1]\n{"text": 3}\n', 4),
], ids=["empty-file", "blank-lines-only", "all-rejected"])
def test_an_input_with_no_document_is_an_input_error_pointing_at_the_rejects(tmp_path, content, rejected):
    """No OUT and no staging folder appear; the rejects file the message names exists and holds every rejection."""
    src = tmp_path / "bad.jsonl"
    src.write_bytes(content)
    out = tmp_path / "ds"
    work = tmp_path / "ds.streamclip-work"
    with pytest.raises(InputError, match=rf"no document could be read from 1 input file\(s\); see {work / 'rejected.jsonl'}"):
        convert([str(src)], str(out), ConvertConfig(clusters=2, **FAST))
    rows = [json.loads(line) for line in (work / "rejected.jsonl").read_text().splitlines()]
    assert len(rows) == rejected and all(r["file"] == str(src) for r in rows)
    assert [r["line"] for r in rows] == list(range(1, rejected + 1))
    assert leftovers(tmp_path, "bad.jsonl") == ["ds.streamclip-work"]
    src.write_text('{"text": "now a real document"}\n')  # fixed: the kept work dir does not stand in the way
    assert convert([str(src)], str(out), ConvertConfig(clusters=1, **FAST)).written == 1
    assert leftovers(tmp_path, "bad.jsonl") == ["ds"]


def test_no_inputs_at_all_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match=r"no document could be read from 0 input file\(s\)"):
        convert([], str(tmp_path / "ds"), ConvertConfig(**FAST))
    assert not (tmp_path / "ds").exists()


def test_strict_previews_at_most_ten_rejects_but_counts_them_all(tmp_path, sample_docs):
    """A long list of rejects is cut to 10 lines in the message; the count still says how many there were."""
    bad = [b'{"text": 1}'] * 12 + [b"{oops"]
    src = write_jsonl(tmp_path / "a.jsonl", sample_docs[:5], raw_lines=bad)
    with pytest.raises(InputError, match=rf"--strict: {len(bad)} document\(s\) rejected, nothing written:") as info:
        convert([str(src)], str(tmp_path / "ds"), ConvertConfig(clusters=2, strict=True, **FAST))
    preview = str(info.value).splitlines()[1:]
    assert preview == [f"  {src}:{6 + i}: field 'text' text_not_string (field 'text' is a int)" for i in range(10)]
    assert leftovers(tmp_path, "a.jsonl") == []


def test_strict_without_rejects_converts_normally(tmp_path, sample_docs):
    src = write_jsonl(tmp_path / "a.jsonl", sample_docs[:15])
    report = convert([str(src)], str(tmp_path / "ds"), ConvertConfig(clusters=3, strict=True, **FAST))
    assert (report.read, report.written, report.rejected) == (15, 15, 0)


# --- accounting ------------------------------------------------------------------------------------------------


def test_read_equals_written_plus_rejected_per_file_and_in_total(tmp_path, sample_docs):
    """Over several files (one of them wholly rejected, one unreadable), each input's counts add up, blank lines apart."""
    a = write_jsonl(tmp_path / "a.jsonl", sample_docs[:20], raw_lines=[b"", b'{"text": 5}', b"  ", b"[2]"])
    b = write_jsonl(tmp_path / "b.jsonl", [], raw_lines=[b'{"nope": 1}', b"", b'{"text": "   "}'])
    c = tmp_path / "c.jsonl.gz"
    c.write_bytes(b"\x1f\x8b\x08\x00 not gzip")
    d = write_jsonl(tmp_path / "d.jsonl", sample_docs[20:27])
    expected = {str(a): (22, 20, 2, 2), str(b): (2, 0, 2, 1), str(c): (1, 0, 1, 0), str(d): (7, 7, 0, 0)}  # read, written, rejected, blank
    report = convert([str(p) for p in (a, b, c, d)], str(tmp_path / "ds"), ConvertConfig(clusters=3, **FAST))
    manifest = open_manifest(str(tmp_path / "ds"))
    assert {i.path: (i.documents, i.written, i.rejected, i.blank_lines) for i in manifest.inputs} == expected
    assert [i.path for i in manifest.inputs] == [str(a), str(b), str(c), str(d)]
    assert report.read == report.written + report.rejected == sum(v[0] for v in expected.values())
    assert report.written == manifest.num_documents == sum(v[1] for v in expected.values())
    assert report.rejected == manifest.rejected == sum(report.rejected_by_reason.values()) == sum(v[2] for v in expected.values())
    assert report.blank_lines == sum(v[3] for v in expected.values())
    rows = [json.loads(line) for line in (tmp_path / "ds" / "rejected.jsonl").read_text().splitlines()]
    assert [(r["file"], r["line"]) for r in rows] == [(str(a), 22), (str(a), 24), (str(b), 1), (str(b), 3), (str(c), None)]


def test_a_run_without_rejects_still_ships_an_empty_rejects_file(tmp_path, sample_docs):
    src = write_jsonl(tmp_path / "a.jsonl", sample_docs[:10])
    convert([str(src)], str(tmp_path / "ds"), ConvertConfig(clusters=2, **FAST))
    assert (tmp_path / "ds" / "rejected.jsonl").read_bytes() == b""


# --- clustering edge cases -------------------------------------------------------------------------------------


def test_one_document_makes_one_cluster_holding_it(tmp_path):
    src = write_jsonl(tmp_path / "one.jsonl", [{"text": "a single lonely document"}])
    report = convert([str(src)], str(tmp_path / "ds"), ConvertConfig(clusters=1, **FAST))
    manifest = open_manifest(str(tmp_path / "ds"))
    assert (report.read, report.written, report.clusters, report.shards) == (1, 1, 1, 1)
    (cluster,) = manifest.clusters
    assert (cluster.id, cluster.documents, cluster.samples, cluster.example) == (0, 1, (0, 1), "a single lonely document")
    assert cluster.bytes == len("a single lonely document".encode())
    assert np.load(tmp_path / "ds" / "centroids.npy").shape == (1, HashingEmbedder().dim)


def test_as_many_clusters_as_documents_gives_dense_non_empty_clusters(tmp_path, sample_docs):
    """k = n is the largest legal k: every kept cluster has a document, ids are 0..K'-1, and kept + dropped = k."""
    docs = sample_docs[:9]
    src = write_jsonl(tmp_path / "a.jsonl", docs)
    report = convert([str(src)], str(tmp_path / "ds"), ConvertConfig(clusters=len(docs), **FAST))
    manifest = open_manifest(str(tmp_path / "ds"))
    assert [c.id for c in manifest.clusters] == list(range(report.clusters))
    assert all(c.documents >= 1 for c in manifest.clusters) and sum(c.documents for c in manifest.clusters) == len(docs)
    assert report.clusters + manifest.clustering["empty_dropped"] == len(docs) == manifest.clustering["requested_k"]
    assert np.load(tmp_path / "ds" / "centroids.npy").shape[0] == report.clusters


def test_more_clusters_than_documents_left_after_rejects_names_the_written_count(tmp_path, sample_docs):
    """k is checked against the documents written, not the lines read: 3 good + 4 bad lines refuse k=4."""
    src = write_jsonl(tmp_path / "a.jsonl", sample_docs[:3], raw_lines=[b"{"] * 4)
    with pytest.raises(InputError, match="--clusters 4 is more than the 3 documents written; use at most 3"):
        convert([str(src)], str(tmp_path / "ds"), ConvertConfig(clusters=4, **FAST))
    assert not (tmp_path / "ds").exists()


def test_identical_documents_collapse_into_one_cluster_and_the_empty_ones_are_dropped(tmp_path):
    """Equal texts embed to one vector, so they can only share one cluster: the other k-1 are dropped and counted."""
    text = "exactly the same words every time"
    k, n = 4, 10
    src = write_jsonl(tmp_path / "same.jsonl", [{"text": text}] * n)
    report = convert([str(src)], str(tmp_path / "ds"), ConvertConfig(clusters=k, **FAST))
    manifest = open_manifest(str(tmp_path / "ds"))
    assert report.clusters == 1 and manifest.clustering["empty_dropped"] == k - 1
    assert [(c.id, c.documents, c.example) for c in manifest.clusters] == [(0, n, text)]
    centroids = np.load(tmp_path / "ds" / "centroids.npy")
    assert centroids.shape == (1, HashingEmbedder().dim)
    assert float(centroids[0] @ HashingEmbedder().encode([text])[0]) > 0.999  # the kept row is that cluster's centroid


def test_each_document_sits_in_its_nearest_centroids_cluster_and_examples_are_most_central(tmp_path, sample_docs):
    """After empty clusters are dropped, centroid row k still belongs to cluster k, and the example is its most central text."""
    docs = sample_docs[:90]
    src = write_jsonl(tmp_path / "a.jsonl", docs)
    convert([str(src)], str(tmp_path / "ds"), ConvertConfig(clusters=6, **FAST))
    centroids = np.load(tmp_path / "ds" / "centroids.npy")
    manifest = open_manifest(str(tmp_path / "ds"))
    samples = read_samples(tmp_path / "ds")
    vectors = HashingEmbedder(max_tokens=256).encode([s["text"] for s in samples])
    sims = vectors @ centroids.T
    labels = np.array([int(s["cluster"]) for s in samples])
    assert np.all(sims[np.arange(len(labels)), labels] >= sims.max(axis=1) - 1e-5)
    for cluster in manifest.clusters:
        rows = np.arange(*cluster.samples)
        shown = [i for i in rows if _shorten(samples[i]["text"]) == cluster.example]  # examples are flattened and cut
        assert shown, cluster.example
        assert max(sims[i, cluster.id] for i in shown) >= sims[rows, cluster.id].max() - 1e-5


def test_a_custom_embedders_width_and_description_reach_the_dataset(tmp_path, sample_docs):
    embedder = Recording(dim=16)
    src = write_jsonl(tmp_path / "a.jsonl", sample_docs[:30])
    report = convert([str(src)], str(tmp_path / "ds"), ConvertConfig(clusters=3, **FAST), embedder=embedder)
    assert np.load(tmp_path / "ds" / "centroids.npy").shape == (report.clusters, 16)
    assert open_manifest(str(tmp_path / "ds")).embedding == embedder.describe()
    assert set(report.seconds) == {"read", "embed", "cluster", "pack"}


# --- the embedding stage -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 8, 9])
def test_documents_are_embedded_once_each_in_read_order_in_chunks(tmp_path, sample_docs, monkeypatch, n):
    """Batches are EMBED_CHUNK long except the last; together they are the written texts, in input order."""
    monkeypatch.setattr(conv, "EMBED_CHUNK", 4)
    docs = sample_docs[:n]
    embedder = Recording()
    src = write_jsonl(tmp_path / "a.jsonl", docs, raw_lines=[b'{"text": null}'])
    convert([str(src)], str(tmp_path / "ds"), ConvertConfig(clusters=1, **FAST), embedder=embedder)
    assert [len(b) for b in embedder.batches] == [4] * (n // 4) + ([n % 4] if n % 4 else [])
    assert [t for b in embedder.batches for t in b] == texts_of(docs)


@pytest.mark.parametrize("bad, shown", [
    (lambda n: np.ones((n - 1, 8), np.float32), rf"returned \(\d+, 8\) rows for \d+ texts"),
    (lambda n: np.full((n, 8), np.inf, np.float32), r"returned \(6, 8\) rows with NaN/inf"),
    (lambda n: None, r"returned \(\) rows"),
], ids=["too-few-rows", "inf", "none"])
def test_an_embedder_breaking_its_promise_is_a_config_error_naming_it(tmp_path, sample_docs, bad, shown):
    """Row-count, infinite and missing results (beyond test_convert_config's width and NaN cases) are named, not broadcast."""

    class Liar:
        dim = 8

        def encode(self, texts):
            return bad(len(texts))

        def describe(self):
            return {"model": "liar", "dim": 8}

    src = write_jsonl(tmp_path / "a.jsonl", sample_docs[:6])
    with pytest.raises(ConfigError, match=rf"embedder Liar\.encode {shown}"):
        convert([str(src)], str(tmp_path / "ds"), ConvertConfig(clusters=2, **FAST), embedder=Liar())
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize("rows", [
    lambda n: [[0.5] * 8 for _ in range(n - 1)] + [[0.5] * 7],
    lambda n: [["x"] * 8 for _ in range(n)],
], ids=["ragged", "strings"])
def test_an_embedder_returning_non_numeric_or_ragged_rows_is_a_config_error(tmp_path, sample_docs, rows):
    """_checked promises the error names the embedder, not numpy; rows numpy cannot even shape are the plainest case."""

    class Ragged:
        dim = 8

        def encode(self, texts):
            return rows(len(texts))

        def describe(self):
            return {"model": "ragged", "dim": 8}

    src = write_jsonl(tmp_path / "a.jsonl", sample_docs[:6])
    with pytest.raises(ConfigError, match=r"embedder Ragged\.encode"):
        convert([str(src)], str(tmp_path / "ds"), ConvertConfig(clusters=2, **FAST), embedder=Ragged())


@pytest.mark.parametrize("dim", [0, "8"])
def test_an_embedder_with_an_impossible_width_is_a_config_error_naming_it(tmp_path, sample_docs, dim):
    """``dim`` is part of the Embedder promise; a zero or non-integer width must be named, not crash the memmap."""

    class Flat:
        def __init__(self) -> None:
            self.dim = dim

        def encode(self, texts):
            return np.zeros((len(texts), 0), np.float32)

        def describe(self):
            return {"model": "flat", "dim": dim}

    src = write_jsonl(tmp_path / "a.jsonl", sample_docs[:6])
    with pytest.raises(ConfigError, match=r"Flat"):
        convert([str(src)], str(tmp_path / "ds"), ConvertConfig(clusters=2, **FAST), embedder=Flat())


# --- resume and the work key -------------------------------------------------------------------------------------


def test_resume_embeds_only_the_rows_after_the_crash(tmp_path, sample_docs, monkeypatch):
    """After a crash in batch 3 the resumed run hands the embedder exactly the texts from row 2*chunk on, once."""
    monkeypatch.setattr(conv, "EMBED_CHUNK", 8)
    docs = sample_docs[:30]
    src = write_jsonl(tmp_path / "a.jsonl", docs)
    with pytest.raises(_PowerCut):
        convert([str(src)], str(tmp_path / "ds"), ConvertConfig(clusters=3, **FAST), embedder=Recording(crash_on_call=3))
    again = Recording()
    report = convert([str(src)], str(tmp_path / "ds"), ConvertConfig(clusters=3, resume=True, **FAST), embedder=again)
    assert report.resumed_embeddings == 16
    assert [t for b in again.batches for t in b] == texts_of(docs)[16:]
    assert leftovers(tmp_path, "a.jsonl") == ["ds"]


def test_resume_of_finished_kept_work_with_another_k_re_embeds_nothing_and_matches_a_fresh_run(tmp_path, sample_docs):
    """--clusters, --seed and --iterations are not in the work key: kept embeddings serve a new k, with identical output."""
    docs = sample_docs[:40]
    dirty = write_jsonl(tmp_path / "a.jsonl", docs, raw_lines=[b"", b"{bad"])
    first = convert([str(dirty)], str(tmp_path / "k3"), ConvertConfig(clusters=3, keep_work=True, **FAST), embedder=Recording())
    reuse = Recording()
    work = str(tmp_path / "k3.streamclip-work")
    resumed = convert([str(dirty)], str(tmp_path / "k5"), ConvertConfig(clusters=5, seed=2, resume=True, work_dir=work, **FAST), embedder=reuse)
    fresh = convert([str(dirty)], str(tmp_path / "fresh"), ConvertConfig(clusters=5, seed=2, **FAST), embedder=Recording())
    assert reuse.batches == [] and resumed.resumed_embeddings == len(docs)
    counts = lambda r: (r.read, r.written, r.rejected, r.rejected_by_reason, r.blank_lines)  # noqa: E731
    assert counts(first) == counts(resumed) == counts(fresh) == (41, 40, 1, {"malformed_json": 1}, 1)
    digest = lambda root: {p.name: p.read_bytes() for p in sorted(root.iterdir())}  # noqa: E731
    assert digest(tmp_path / "k5") == digest(tmp_path / "fresh")


def test_resume_with_no_saved_state_is_a_fresh_run(tmp_path, sample_docs):
    src = write_jsonl(tmp_path / "a.jsonl", sample_docs[:12])
    embedder = Recording()
    report = convert([str(src)], str(tmp_path / "ds"), ConvertConfig(clusters=2, resume=True, **FAST), embedder=embedder)
    assert report.resumed_embeddings == 0 and sum(len(b) for b in embedder.batches) == 12
    assert leftovers(tmp_path, "a.jsonl") == ["ds"]


@pytest.mark.parametrize("change", ["rules", "embedder", "mtime"])
def test_resume_refuses_work_staged_with_other_rules_embedder_or_file_version(tmp_path, sample_docs, change):
    """Anything that shapes read or embed is in the key: reusing such work would mix two corpora or two vector spaces."""
    src = write_jsonl(tmp_path / "a.jsonl", [{**d, "n": i} for i, d in enumerate(sample_docs[:12])])
    convert([str(src)], str(tmp_path / "ds"), ConvertConfig(clusters=2, keep_work=True, **FAST), embedder=Recording())
    rules, embedder = FieldRules(), Recording()
    if change == "rules":
        rules = FieldRules(keep=("n",))
    elif change == "embedder":
        embedder = Recording(dim=128)
    else:
        st = os.stat(src)
        os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    config = ConvertConfig(clusters=2, resume=True, overwrite=True, rules=rules, **FAST)
    with pytest.raises(InputError, match=rf"--resume: {tmp_path / 'ds.streamclip-work'} was staged from other inputs or settings; drop --resume"):
        convert([str(src)], str(tmp_path / "ds"), config, embedder=embedder)
    assert embedder.batches == []


# --- clustering by an input field ----------------------------------------------------------------------------------


def test_clustering_by_field_ignores_k_loads_no_model_and_uses_each_groups_first_document(tmp_path, monkeypatch):
    """With --cluster-field, k (default 64, here > n) plays no part, no embedder is built, ids are renumbered in
    ascending order of the source ids, and each cluster's example is its first document in input order."""
    def no_model(*args, **kwargs):
        raise AssertionError("an embedder was built for a field-clustered run")

    monkeypatch.setattr(conv, "make_embedder", no_model)
    groups = [2**63 - 1, 5, 0, 5, 2**63 - 1, 5, 0]
    rows = [{"text": f"doc {i} in group {g}", "g": g} for i, g in enumerate(groups)]
    src = write_jsonl(tmp_path / "g.jsonl", rows, raw_lines=[b'{"text": "no group"}'])
    report = convert([str(src)], str(tmp_path / "ds"), ConvertConfig(rules=FieldRules(cluster_field="g"), progress=False, keep_work=True))
    manifest = open_manifest(str(tmp_path / "ds"))
    ids = sorted(set(groups))
    assert report.clusters == len(ids) and manifest.clustering["source_ids"] == ids
    assert report.rejected_by_reason == {"bad_cluster": 1} and set(report.seconds) == {"read", "cluster", "pack"}
    assert [c.documents for c in manifest.clusters] == [groups.count(g) for g in ids]
    assert [c.example for c in manifest.clusters] == [rows[groups.index(g)]["text"] for g in ids]
    staged = np.fromfile(tmp_path / "ds.streamclip-work" / CLUSTER_IDS, dtype="<i8")
    assert staged.tolist() == groups  # one id per written document, in read order
    assert not (tmp_path / "ds" / "centroids.npy").exists() and manifest.embedding is None


def test_resume_with_the_saved_embeddings_deleted_embeds_again_from_the_start(tmp_path, sample_docs, monkeypatch):
    """The state says 16 rows are embedded, but their file is gone: zeros must not stand in for them."""
    monkeypatch.setattr(conv, "EMBED_CHUNK", 8)
    docs = sample_docs[:30]
    src = write_jsonl(tmp_path / "a.jsonl", docs)
    with pytest.raises(_PowerCut):
        convert([str(src)], str(tmp_path / "ds"), ConvertConfig(clusters=3, **FAST), embedder=Recording(crash_on_call=3))
    (tmp_path / "ds.streamclip-work" / "embeddings.f32").unlink()
    again = Recording()
    report = convert([str(src)], str(tmp_path / "ds"), ConvertConfig(clusters=3, resume=True, **FAST), embedder=again)
    assert report.resumed_embeddings == 0
    assert [t for b in again.batches for t in b] == texts_of(docs)
    fresh = convert([str(src)], str(tmp_path / "fresh"), ConvertConfig(clusters=3, **FAST), embedder=Recording())
    assert np.array_equal(np.load(tmp_path / "ds" / "centroids.npy"), np.load(tmp_path / "fresh" / "centroids.npy"))
    assert fresh.clusters == report.clusters


def test_inputs_and_out_may_be_pathlib_paths(tmp_path, sample_docs):
    src = write_jsonl(tmp_path / "a.jsonl", sample_docs[:12])
    report = convert([src], tmp_path / "ds", ConvertConfig(clusters=2, **FAST))
    assert report.written == 12 and open_manifest(str(tmp_path / "ds")).num_documents == 12
