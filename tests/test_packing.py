"""Unit tests of writers/packing.py: the per-cluster spill and the one-cluster-per-shard packer.

Shards are read back with streaming's own MDS reader (``streaming.base.format.reader_from_json``), never
with streamclip code, and every expected value comes from the input records.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from streamclip.writers import packing
from streamclip.writers.docstore import RecordWriter, encode_record
from streamclip.writers.packing import EXAMPLE_CHARS, ClusterSpill, _shorten, pack_clusters, spill_by_cluster
from streamclip.writers.terms import TermStats

SIMPLE = {"text": "str", "cluster": "int32"}
LOTS = 1 << 30  # a memory budget nothing here reaches


def corpus(sizes: dict[int, int]) -> list[tuple[int, str]]:
    """(cluster, text) pairs, clusters interleaved in read order; every text is distinct and says where it belongs."""
    todo = {k: n for k, n in sizes.items() if n}
    out: list[tuple[int, str]] = []
    while todo:
        for k in sorted(todo):
            out.append((k, f"doc {sizes[k] - todo[k]} of cluster {k} " + "words " * (3 + len(out) % 5)))
            todo[k] -= 1
            if not todo[k]:
                del todo[k]
    return out


def by_cluster(pairs: list[tuple[int, str]], k: int) -> list[str]:
    return [text for c, text in pairs if c == k]


def fill(tmp_path, pairs, budget: int, fields=None) -> ClusterSpill:
    spill = ClusterSpill(str(tmp_path / "spill"), budget_bytes=budget)
    for i, (k, text) in enumerate(pairs):
        spill.add(k, encode_record(text, fields[i] if fields else {}))
    spill.close()
    return spill


def pack(spill, out, num_clusters, *, columns=SIMPLE, size_limit=1 << 20, terms=None, **kwargs):
    return pack_clusters(spill, str(out), num_clusters=num_clusters, columns=columns, compression="zstd", size_limit=size_limit,
                         total=0, terms=terms or TermStats(), progress=False, **kwargs)


def read_shards(out) -> tuple[list[dict], list[list[dict]]]:
    """index.json's shard entries and every shard's samples, decoded by streaming's stock MDS reader."""
    from streaming.base.compression import decompress
    from streaming.base.format import reader_from_json

    shards = json.loads((out / "index.json").read_text())["shards"]
    samples = []
    for entry in shards:
        zipped = (out / entry["zip_data"]["basename"]).read_bytes()
        (out / entry["raw_data"]["basename"]).write_bytes(decompress(entry["compression"], zipped))
        reader = reader_from_json(str(out), None, entry)
        samples.append([reader[i] for i in range(len(reader))])
    return shards, samples


def test_spill_within_budget_stays_in_memory(tmp_path):
    pairs = corpus({0: 3, 1: 4, 2: 1})
    spill = fill(tmp_path, pairs, LOTS)
    assert not spill.spilled and not (tmp_path / "spill").exists()
    for k in (0, 1, 2):
        assert [r for r in spill.records(k)] == [encode_record(t, {}) for t in by_cluster(pairs, k)]


@pytest.mark.parametrize("budget", [0, 1, 100, 250])
def test_spill_beyond_budget_goes_to_one_file_per_cluster_in_add_order(tmp_path, budget):
    """Budgets of 0 and 1 byte flush at every add; with 100 and 250 the last records may still be in memory at ``close``."""
    pairs = corpus({0: 5, 3: 2, 7: 6})
    spill = fill(tmp_path, pairs, budget)
    assert spill.spilled
    assert sorted(os.listdir(tmp_path / "spill")) == ["000000.zst", "000003.zst", "000007.zst"]
    for k in (0, 3, 7):
        assert list(spill.records(k)) == [encode_record(t, {}) for t in by_cluster(pairs, k)]


@pytest.mark.parametrize("budget", [0, LOTS])
def test_a_cluster_never_added_has_no_records(tmp_path, budget):
    spill = fill(tmp_path, corpus({1: 2}), budget)
    assert list(spill.records(0)) == [] and list(spill.records(2)) == []


def test_spill_by_cluster_routes_read_order_documents_and_picks_examples(tmp_path):
    pairs = corpus({0: 4, 1: 3, 2: 5})
    ex0 = max(i for i, (k, _) in enumerate(pairs) if k == 0)
    ex2 = min(i for i, (k, _) in enumerate(pairs) if k == 2)
    pairs[ex0] = (0, "  an example\n\twith   messy  whitespace " + "long " * 80)
    docs = tmp_path / "docs.zst"
    writer = RecordWriter(str(docs))
    for _, text in pairs:
        writer.write(encode_record(text, {}))
    writer.close()
    np.save(tmp_path / "labels.npy", np.array([k for k, _ in pairs], dtype=np.int32))
    labels = np.load(tmp_path / "labels.npy", mmap_mode="r")  # an on-disk label array, as convert passes it
    examples = np.array([ex0, -1, ex2, -1], dtype=np.int64)  # clusters 1 and 3 have no chosen example
    spill = ClusterSpill(str(tmp_path / "spill"), budget_bytes=150)

    texts = spill_by_cluster(str(docs), labels, spill, examples=examples, progress=False)

    assert texts == {0: _shorten(pairs[ex0][1]), 2: _shorten(pairs[ex2][1])}
    assert spill.spilled
    for k in (0, 1, 2, 3):  # spill_by_cluster closed the spill: a tail still in memory went to disk too
        assert [r for r in spill.records(k)] == [encode_record(t, {}) for t in by_cluster(pairs, k)]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", ""),
        ("one\n\ttwo   three \r\n", "one two three"),
        ("x" * EXAMPLE_CHARS, "x" * EXAMPLE_CHARS),
        ("x" * (EXAMPLE_CHARS + 1), "x" * (EXAMPLE_CHARS - 1) + "…"),
        ("é" * 300, "é" * (EXAMPLE_CHARS - 1) + "…"),  # characters, not UTF-8 bytes, are counted
        ("a " * EXAMPLE_CHARS, ("a " * EXAMPLE_CHARS)[: EXAMPLE_CHARS - 1] + "…"),  # measured after collapsing
    ],
)
def test_shorten(text, expected):
    assert _shorten(text) == expected
    assert len(_shorten(text)) <= EXAMPLE_CHARS


@pytest.mark.parametrize("budget", [0, LOTS])
def test_every_record_packed_once_in_cluster_order_with_one_cluster_per_shard(tmp_path, monkeypatch, budget):
    """Small batches and a small size limit make clusters span several batches and shards; clusters 1 and 4 are empty."""
    monkeypatch.setattr(packing, "PACK_BATCH", 3)
    pairs = corpus({0: 9, 2: 14, 3: 1})
    packed = pack(fill(tmp_path, pairs, budget), tmp_path / "out", 5, size_limit=700)
    shards, samples = read_shards(tmp_path / "out")

    flat = [s for shard in samples for s in shard]
    expected = [(k, t) for k in range(5) for t in by_cluster(pairs, k)]
    assert [(s["cluster"], s["text"]) for s in flat] == expected
    assert all(len({s["cluster"] for s in shard}) == 1 for shard in samples)
    assert len(shards) > 3  # the size limit split clusters

    shard = sample = 0
    for k, p in enumerate(packed):
        texts = by_cluster(pairs, k)
        assert p.documents == len(texts) and p.bytes == sum(len(t.encode()) for t in texts)
        assert p.shards[0] == shard and p.samples == (sample, sample + len(texts))
        assert [s["cluster"] for part in samples[p.shards[0] : p.shards[1]] for s in part] == [k] * len(texts)
        assert p.example == (_shorten(texts[0]) if texts else "")
        shard, sample = p.shards[1], p.samples[1]
    assert shard == len(shards) and sample == len(pairs)
    assert packed[1].shards[0] == packed[1].shards[1] and packed[4].shards == (len(shards), len(shards))


def test_shards_respect_the_size_limit(tmp_path):
    """A shard's raw file (what the writer's size rule counts) stays within the limit unless it holds one sample."""
    pairs = corpus({0: 40, 1: 25})
    limit = 1 << 10
    pack(fill(tmp_path, pairs, LOTS), tmp_path / "out", 2, size_limit=limit)
    shards, _ = read_shards(tmp_path / "out")
    assert len(shards) > 2
    for entry in shards:
        assert entry["size_limit"] == limit
        assert entry["raw_data"]["bytes"] <= limit or entry["samples"] == 1
        assert os.path.getsize(tmp_path / "out" / entry["raw_data"]["basename"]) == entry["raw_data"]["bytes"]


def test_single_record(tmp_path):
    packed = pack(fill(tmp_path, [(0, "alone")], LOTS), tmp_path / "out", 1)
    _, samples = read_shards(tmp_path / "out")
    assert samples == [[{"cluster": 0, "text": "alone"}]]
    assert (packed[0].documents, packed[0].shards, packed[0].samples, packed[0].bytes) == (1, (0, 1), (0, 1), 5)


def test_unicode_text_round_trips_and_bytes_count_utf8(tmp_path):
    texts = ["naïve café", "日本語のテキスト", "emoji 🎉👩‍👩‍👧", "e\u0301 combining", "עברית RTL", "nul \x00 inside", ""]
    pairs = [(i % 2, t) for i, t in enumerate(texts)]
    packed = pack(fill(tmp_path, pairs, 0), tmp_path / "out", 2)
    _, samples = read_shards(tmp_path / "out")
    assert [s["text"] for shard in samples for s in shard] == by_cluster(pairs, 0) + by_cluster(pairs, 1)
    assert [p.bytes for p in packed] == [sum(len(t.encode("utf-8")) for t in by_cluster(pairs, k)) for k in (0, 1)]


def test_kept_json_columns_round_trip_and_a_missing_field_reads_as_none(tmp_path):
    pairs = corpus({0: 3, 1: 2})
    fields = [{"source": f"s{i}", "meta": {"n": i, "tags": ["a", "ü"]}} for i in range(len(pairs))]
    del fields[2]["meta"]
    columns = {**SIMPLE, "source": "json", "meta": "json"}
    pack(fill(tmp_path, pairs, LOTS, fields), tmp_path / "out", 2, columns=columns)
    _, samples = read_shards(tmp_path / "out")
    expected = [{"text": t, "cluster": k, "source": f["source"], "meta": f.get("meta")}
                for k in (0, 1) for (c, t), f in zip(pairs, fields) if c == k]
    assert [s for shard in samples for s in shard] == expected


def test_cluster_ids_packs_only_those_clusters_in_that_order(tmp_path):
    pairs = corpus({0: 2, 1: 3, 2: 4})
    packed = pack(fill(tmp_path, pairs, LOTS), tmp_path / "out", 3, cluster_ids=[2, 0])
    _, samples = read_shards(tmp_path / "out")
    assert [(s["cluster"], s["text"]) for shard in samples for s in shard] == [(k, t) for k in (2, 0) for t in by_cluster(pairs, k)]
    assert [(p.documents, p.shards, p.samples) for p in packed] == [(4, (0, 1), (0, 4)), (2, (1, 2), (4, 6))]


def test_on_shard_gets_each_index_entry_once_after_its_file_is_written(tmp_path):
    out = tmp_path / "out"
    seen = []

    def on_shard(entry):
        assert (out / entry["zip_data"]["basename"]).is_file()
        seen.append(entry)

    pack(fill(tmp_path, corpus({0: 30, 1: 1, 2: 20}), LOTS), out, 3, size_limit=700, on_shard=on_shard)
    shards, _ = read_shards(out)
    assert len(shards) > 3 and seen == shards


def test_a_failure_while_packing_propagates_and_writes_no_index(tmp_path):
    def on_shard(entry):
        raise RuntimeError("upload refused")

    with pytest.raises(RuntimeError, match="upload refused"):
        pack(fill(tmp_path, corpus({0: 3, 1: 3}), LOTS), tmp_path / "out", 2, on_shard=on_shard)
    assert not (tmp_path / "out" / "index.json").exists()


def test_term_statistics_are_closed_once_per_cluster_empty_ones_included(tmp_path):
    pairs = [(0, "zebra giraffe zebra savanna"), (0, "zebra lion"), (2, "photon electron photon quark"), (2, "photon")]
    terms = TermStats()
    pack(fill(tmp_path, pairs, LOTS), tmp_path / "out", 3, terms=terms)
    top = terms.top_terms()
    assert len(top) == 3 and top[1] == []
    assert "zebra" in top[0] and "photon" in top[2]
    assert not {"photon", "electron", "quark"} & set(top[0]) and not {"zebra", "giraffe", "lion"} & set(top[2])


def test_a_document_larger_than_the_size_limit_gets_a_shard_of_its_own_and_no_shard_is_empty(tmp_path):
    big = "x" * 6000
    pairs = [(0, "small"), (1, big), (1, "after the big one")]
    packed = pack(fill(tmp_path, pairs, LOTS), tmp_path / "out", 2, size_limit=1 << 12)
    shards, samples = read_shards(tmp_path / "out")
    assert [s["text"] for shard in samples for s in shard] == [t for _, t in pairs]
    assert all(entry["samples"] >= 1 for entry in shards)  # open_manifest requires it (streamclip/manifest.py)
    assert packed[1].shards[1] - packed[1].shards[0] == 2
