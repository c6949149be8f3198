"""``split``: a train set and a held-out set per cluster, in the streamclip format, deterministic and atomic."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import convert_docs
from torch.utils.data import DataLoader

from streamclip import open_manifest
from streamclip.cli import main
from streamclip.errors import ConfigError
from streamclip.manifest import load_centroids
from streamclip.readers import ClusterClipDataset
from streamclip.writers import split


@pytest.fixture(scope="module")
def source(tmp_path_factory, sample_docs) -> Path:
    return convert_docs(tmp_path_factory.mktemp("split"), sample_docs, clusters=8)


@pytest.fixture(scope="module")
def middle(source) -> int:
    """An eval size with clusters on both sides of it: some too small to hold out from, some larger."""
    sizes = np.sort(open_manifest(str(source)).cluster_sizes)
    assert sizes[0] < sizes[-1]
    return int(sizes[len(sizes) // 2 - 1])


def stored_rows(path: Path) -> list[dict]:
    """Every stored row in order, read by stock streaming (no streamclip code)."""
    from streaming import StreamingDataset

    ds = StreamingDataset(local=str(path), shuffle=False, batch_size=1)
    return [ds[i] for i in range(ds.num_samples)]


def digest(root: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.iterdir())}


def test_same_dataset_and_seed_give_byte_identical_outputs_and_another_seed_does_not(source, middle, tmp_path):
    outs = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        split(str(source), str(tmp_path / f"{name}-train"), str(tmp_path / f"{name}-eval"), eval_per_cluster=middle, train_fraction=0.5, seed=seed)
        outs.append((digest(tmp_path / f"{name}-train"), digest(tmp_path / f"{name}-eval")))
    assert outs[0] == outs[1]
    assert outs[0][0]["index.json"] != outs[2][0]["index.json"]
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]  # nothing left of the staging directories


def test_counts_add_up_small_clusters_stay_whole_in_train_and_nothing_leaks(source, middle, tmp_path):
    fraction = 0.5
    report = split(str(source), str(tmp_path / "train"), str(tmp_path / "eval"), eval_per_cluster=middle, train_fraction=fraction, seed=1)
    src = open_manifest(str(source))
    sizes = src.cluster_sizes
    small = np.flatnonzero(sizes <= middle)
    assert report.small_clusters == tuple(small.tolist()) and len(small) > 0
    assert report.documents == src.num_documents == report.train_documents + report.eval_documents + report.dropped
    per = {k: np.array(v) for k, v in report.per_cluster.items()}
    np.testing.assert_array_equal(per["train"] + per["eval"] + per["dropped"], sizes)
    rest = sizes - middle
    expected_train = np.where(sizes <= middle, sizes, np.maximum(1, np.floor(fraction * rest + 0.5)))
    np.testing.assert_array_equal(per["train"], expected_train)
    np.testing.assert_array_equal(per["eval"], np.where(sizes <= middle, 0, middle))

    rows = {name: stored_rows(tmp_path / name) for name in ("train", "eval")}
    train_m, eval_m = open_manifest(str(tmp_path / "train")), open_manifest(str(tmp_path / "eval"))
    assert train_m.num_documents == report.train_documents and eval_m.num_documents == report.eval_documents
    # Every output document is a source document of the same cluster, and no source document is in both sets.
    source_rows = stored_rows(source)
    cluster_of = {r["text"]: int(r["cluster"]) for r in source_rows}
    assert len(cluster_of) == len(source_rows)  # texts identify documents in this corpus
    train_texts, eval_texts = Counter(r["text"] for r in rows["train"]), Counter(r["text"] for r in rows["eval"])
    assert not (train_texts & eval_texts) and max((train_texts + eval_texts).values()) == 1
    assert set(train_texts) | set(eval_texts) <= set(cluster_of)
    assert [cluster_of[r["text"]] for r in rows["train"]] == [int(r["cluster"]) for r in rows["train"]]
    for k in small:  # a small cluster is entirely in train
        assert {t for t, c in cluster_of.items() if c == k} <= set(train_texts)


def test_cluster_ids_map_to_the_source_and_centroids_are_carried_over(source, middle, tmp_path):
    split(str(source), str(tmp_path / "train"), str(tmp_path / "eval"), eval_per_cluster=middle, seed=2)
    src = open_manifest(str(source))
    train_m, eval_m = open_manifest(str(tmp_path / "train")), open_manifest(str(tmp_path / "eval"))
    assert train_m.num_clusters == src.num_clusters
    assert train_m.extra["split"]["cluster_ids"] == list(range(src.num_clusters))
    ids = eval_m.extra["split"]["cluster_ids"]
    assert ids == np.flatnonzero(src.cluster_sizes > middle).tolist() and len(ids) == eval_m.num_clusters < src.num_clusters
    cluster_of = {r["text"]: int(r["cluster"]) for r in stored_rows(source)}
    eval_rows = stored_rows(tmp_path / "eval")
    assert [ids[int(r["cluster"])] for r in eval_rows] == [cluster_of[r["text"]] for r in eval_rows]
    centroids = load_centroids(str(source), src)
    np.testing.assert_array_equal(load_centroids(str(tmp_path / "train"), train_m), centroids)
    np.testing.assert_array_equal(load_centroids(str(tmp_path / "eval"), eval_m), centroids[ids])
    assert train_m.embedding == eval_m.embedding == src.embedding
    for m, part in ((train_m, "train"), (eval_m, "eval")):
        record = m.extra["split"]
        assert record["part"] == part and record["source_fingerprint"] == src.fingerprint()
        assert (record["eval_per_cluster"], record["train_fraction"], record["seed"]) == (middle, 1.0, 2)


def test_both_outputs_read_through_clusterclip_dataset(source, middle, tmp_path):
    split(str(source), str(tmp_path / "train"), str(tmp_path / "eval"), eval_per_cluster=middle, train_fraction=0.25, seed=0)
    for name in ("train", "eval"):
        expected = {r["text"] for r in stored_rows(tmp_path / name)}
        ds = ClusterClipDataset(local=str(tmp_path / name), strategy="random", batch_size=1, num_canonical_nodes=1, seed=5)
        seen = [s["text"] for batch in DataLoader(ds, batch_size=1, collate_fn=lambda b: b) for s in batch]
        assert Counter(seen) == Counter(expected)  # random over one epoch of the dataset: every document once


def test_existing_outputs_are_refused_before_any_work_and_replaced_with_overwrite(source, middle, tmp_path):
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="--overwrite"):
        split(str(source), str(tmp_path / "train"), str(tmp_path / "eval"), eval_per_cluster=middle)
    assert not (tmp_path / "train").exists() and (tmp_path / "eval" / "keep.txt").read_text() == "mine"
    split(str(source), str(tmp_path / "train"), str(tmp_path / "eval"), eval_per_cluster=middle, overwrite=True)
    assert open_manifest(str(tmp_path / "eval")).extra["split"]["part"] == "eval"
    assert not (tmp_path / "eval" / "keep.txt").exists()


@pytest.mark.parametrize(
    "options, named",
    [
        (dict(eval_per_cluster=0), "--eval-per-cluster"),
        (dict(eval_per_cluster=10**6), "--eval-per-cluster"),
        (dict(eval_per_cluster=5, train_fraction=0.0), "--train-fraction"),
        (dict(eval_per_cluster=5, train_fraction=1.5), "--train-fraction"),
        (dict(eval_per_cluster=5, seed=-1), "--seed"),
    ],
)
def test_bad_options_are_config_errors_naming_the_option(source, tmp_path, options, named):
    with pytest.raises(ConfigError, match=named):
        split(str(source), str(tmp_path / "train"), str(tmp_path / "eval"), **options)
    assert not list(tmp_path.iterdir())


def test_outputs_must_differ_from_each_other_and_from_the_source(source, tmp_path):
    with pytest.raises(ConfigError, match="three different locations"):
        split(str(source), str(tmp_path / "same"), str(tmp_path / "same") + "/", eval_per_cluster=5)
    with pytest.raises(ConfigError, match="three different locations"):
        split(str(source), str(source), str(tmp_path / "eval"), eval_per_cluster=5)


def test_cli_prints_the_counts_and_fails_cleanly(source, middle, tmp_path):
    args = ["split", str(source), "--eval-per-cluster", str(middle), "--train-fraction", "0.5", "--seed", "1",
            "--train", str(tmp_path / "train"), "--eval", str(tmp_path / "eval"), "--no-progress"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    report = split(str(source), str(tmp_path / "t2"), str(tmp_path / "e2"), eval_per_cluster=middle, train_fraction=0.5, seed=1)
    assert f"in {report.documents} = train {report.train_documents} + eval {report.eval_documents} + dropped {report.dropped}" in result.output
    assert "kept whole in train, absent from eval: " + ", ".join(map(str, report.small_clusters)) in result.output
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 2 and "pass --overwrite" in again.output and "Traceback" not in again.output


@pytest.mark.s3
def test_split_to_s3_matches_the_local_split(s3, source, middle, tmp_path):
    url = f"s3://{s3.bucket}/split"
    split(str(source), f"{url}/train", f"{url}/eval", eval_per_cluster=middle, train_fraction=0.5, seed=7)
    split(str(source), str(tmp_path / "train"), str(tmp_path / "eval"), eval_per_cluster=middle, train_fraction=0.5, seed=7)
    client = s3.client()
    for part in ("train", "eval"):
        local = digest(tmp_path / part)
        remote = {name: hashlib.sha256(client.get_object(Bucket=s3.bucket, Key=f"split/{part}/{name}")["Body"].read()).hexdigest() for name in local}
        assert remote == local
        assert open_manifest(f"{url}/{part}").num_documents == open_manifest(str(tmp_path / part)).num_documents
    with pytest.raises(ConfigError, match="--overwrite"):
        split(str(source), f"{url}/train", str(tmp_path / "e3"), eval_per_cluster=middle)
