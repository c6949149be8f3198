"""CLIMB end to end: weights.json into the reader and the planner, fingerprints, the command and built-in proxies, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import convert_docs

from streamclip import open_manifest
from streamclip.errors import ConfigError
from streamclip.manifest import clustering_fingerprint
from streamclip.mixture import CommandObjective, read_weights_file, search
from streamclip.plan import RunSchedule, Weighted
from streamclip.plan.counts import counts_at
from streamclip.writers import split

TINY_MODEL = {"layers": 1, "d_model": 32, "heads": 2, "context": 32, "batch_size": 8, "docs_per_batch": 4, "warmup_steps": 5,
              "epoch_documents": 64, "shuffle_windows": 64}


@pytest.fixture(scope="module")
def sets(tmp_path_factory, sample_docs) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("climb")
    ds = convert_docs(root, sample_docs, clusters=6)
    other = convert_docs(root, sample_docs[:300], name="other", clusters=6)
    split(str(ds), str(root / "train"), str(root / "eval"), eval_per_cluster=8, seed=0)
    return {"ds": ds, "other": other, "train": root / "train", "eval": root / "eval"}


def _search_toward(target: np.ndarray, dataset: Path, **kwargs):
    m = open_manifest(str(dataset))
    f = lambda w: float(np.abs(w - target).sum())  # noqa: E731
    return search(f, m.num_clusters, iterations=2, runs=(24, 8), pool=2000, prior=m.cluster_sizes.astype(float), seed=0,
                  dataset=m.fingerprint(), clustering=clustering_fingerprint(str(dataset), m), **kwargs)


def _clusters_read(ds) -> np.ndarray:
    from streaming import StreamingDataLoader

    seen = []
    for batch in StreamingDataLoader(ds, batch_size=10, num_workers=0, collate_fn=lambda rows: {"c": [int(r["cluster"]) for r in rows]}):
        seen += batch["c"]
    return np.bincount(seen, minlength=ds.manifest.num_clusters)


def test_weights_json_drives_the_reader_draw_for_draw_and_the_clip_holds(sets, tmp_path):
    from streamclip.readers import ClusterClipDataset

    m = open_manifest(str(sets["ds"]))
    target = np.linspace(1, 2, m.num_clusters)[::-1] / np.linspace(1, 2, m.num_clusters).sum()
    result = _search_toward(target, sets["ds"])
    result.save(tmp_path / "weights.json")
    doc = read_weights_file(tmp_path / "weights.json")
    assert doc["dataset"] == m.fingerprint() and doc["clusters"] == m.num_clusters and len(doc["history"]) == 32
    loaded = Weighted.load(str(tmp_path / "weights.json"), clip=3)
    assert np.allclose(loaded.values, np.maximum(result.weights / result.weights.sum(), 1e-12) / np.maximum(result.weights / result.weights.sum(), 1e-12).sum())
    total = 400
    for ds in (ClusterClipDataset(local=str(sets["ds"]), strategy=loaded, total_samples=total, batch_size=10, seed=1),
               ClusterClipDataset(local=str(sets["ds"]), strategy="weighted", strategy_params={"weights_file": str(tmp_path / "weights.json"), "clip": 3},
                                  total_samples=total, batch_size=10, seed=1)):
        drawn = _clusters_read(ds)
        assert np.array_equal(drawn, counts_at(RunSchedule(m.cluster_sizes, loaded, total), total))
        assert (drawn <= 3 * m.cluster_sizes).all()
        del ds


def test_weights_of_another_dataset_are_refused_naming_both_but_a_split_of_it_is_accepted(sets, tmp_path):
    from streamclip.readers import ClusterClipDataset

    train = open_manifest(str(sets["train"]))
    other = open_manifest(str(sets["other"]))
    _search_toward(np.full(train.num_clusters, 1 / train.num_clusters), sets["train"]).save(tmp_path / "w.json")
    with pytest.raises(ConfigError) as refused:
        ClusterClipDataset(local=str(sets["other"]), strategy=Weighted.load(str(tmp_path / "w.json")), total_samples=50, batch_size=10)
    assert train.fingerprint() in str(refused.value) and other.fingerprint() in str(refused.value)
    # the train set of a split keeps its source's centroids: weights found on it fit the full dataset
    ds = ClusterClipDataset(local=str(sets["ds"]), strategy=Weighted.load(str(tmp_path / "w.json")), total_samples=50, batch_size=10)
    assert ds.total_samples == 50
    del ds
    cli = subprocess.run([sys.executable, "-m", "streamclip.cli", "plan", str(sets["other"]), "--strategy", "weighted", "--weights", str(tmp_path / "w.json")],
                         capture_output=True, text=True)
    assert cli.returncode == 2 and cli.stderr.startswith("error:") and other.fingerprint() in cli.stderr and "Traceback" not in cli.stderr


def test_a_command_proxy_gets_a_weights_file_and_its_printed_score_guides_the_search(sets, tmp_path):
    k = open_manifest(str(sets["ds"])).num_clusters
    script = tmp_path / "score.py"
    script.write_text("import json, sys\nw = json.load(open(sys.argv[1]))['weights']\nprint('training...')\nprint(abs(w[0] - 0.5) + sum(w[1:]) * 0)\n")
    proxy = CommandObjective([sys.executable, str(script)], str(tmp_path / "runs"))
    result = search(proxy, k, iterations=2, runs=(16, 8), pool=1000, seed=0)
    assert all(abs(h["score"] - abs(h["weights"][0] - 0.5)) < 1e-9 for h in result.history)
    assert len(list((tmp_path / "runs").glob("candidate-*.json"))) == 24
    bad = CommandObjective([sys.executable, "-c", "print('not a number')"], str(tmp_path / "runs"))
    with pytest.raises(ConfigError, match="not a score"):
        bad(np.full(k, 1 / k))
    failing = CommandObjective([sys.executable, "-c", "import sys; sys.exit(3)"], str(tmp_path / "runs"))
    with pytest.raises(ConfigError, match="exited 3"):
        failing(np.full(k, 1 / k))


def test_streamclip_climb_with_the_built_in_proxy_writes_weights_the_planner_reads(sets, tmp_path):
    out = tmp_path / "weights.json"
    argv = [sys.executable, "-m", "streamclip.cli", "climb", str(sets["train"]), "--eval", str(sets["eval"]), "--target", "0,1",
            "--iterations", "2", "--runs", "4,2", "--pool", "200", "--tokens", str(40 * 8 * 32), "--model", json.dumps(TINY_MODEL),
            "--threads", "1", "--out", str(out), "--plot", str(tmp_path / "climb.png")]
    done = subprocess.run(argv, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    doc = read_weights_file(out)
    assert len(doc["history"]) == 6 and doc["clusters"] == open_manifest(str(sets["train"])).num_clusters
    assert all(np.isfinite(h["score"]) and h["score"] > 0 for h in doc["history"])
    assert (tmp_path / "climb.png").stat().st_size > 0
    rerun = subprocess.run(argv, capture_output=True, text=True)  # every run is in the state file: nothing trains again
    assert rerun.returncode == 0 and read_weights_file(out)["weights"] == doc["weights"]
    planned = subprocess.run([sys.executable, "-m", "streamclip.cli", "plan", str(sets["ds"]), "--strategy", "weighted", "--weights", str(out),
                              "--json"], capture_output=True, text=True)
    assert planned.returncode == 0, planned.stderr


def _stored(dataset: Path, n: int) -> tuple[list[str], list[int]]:
    from streaming import StreamingDataset

    ds = StreamingDataset(local=str(dataset), shuffle=False, batch_size=1)
    rows = [ds[i] for i in range(0, ds.num_samples, max(1, ds.num_samples // n))]
    return [r["text"] for r in rows], [int(r["cluster"]) for r in rows]


def test_documents_of_the_dataset_are_placed_in_the_clusters_convert_gave_them(sets):
    from streamclip.writers.targets import assign_texts

    texts, clusters = _stored(sets["ds"], 120)
    assert len(set(clusters)) > 1
    assert assign_texts(str(sets["ds"]), texts).tolist() == clusters
    assert assign_texts(str(sets["train"]), texts).tolist() == clusters  # a split keeps the centroids and the embedder


def test_an_embedder_record_this_installation_cannot_reproduce_is_refused(sets):
    from streamclip.writers.embedders import embedder_for

    record = dict(open_manifest(str(sets["ds"])).embedding)
    assert embedder_for(record).describe()["model"] == record["model"]
    with pytest.raises(ConfigError, match="weights_sha256"):  # other weights: new documents would land in another vector space
        embedder_for({**record, "weights_sha256": "ab" * 32}, where="ds")
    with pytest.raises(ConfigError, match="cannot rebuild"):
        embedder_for({**record, "model": "someone/else"}, where="ds")


def test_climb_places_target_documents_in_clusters_and_can_search_around_them(sets, tmp_path):
    from streamclip.writers.targets import assign_texts

    texts, _ = _stored(sets["ds"], 40)
    target = tmp_path / "target.jsonl"
    target.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[:15]))
    script = tmp_path / "score.py"
    script.write_text("import json, sys\nprint(json.load(open(sys.argv[1]))['weights'][0])\n")
    out = tmp_path / "w.json"
    done = subprocess.run([sys.executable, "-m", "streamclip.cli", "climb", str(sets["train"]), "--target", str(target), "--prior", "target",
                           "--command", f"{sys.executable} {script}", "--iterations", "1", "--runs", "4", "--out", str(out),
                           "--plot", str(tmp_path / "t.png")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    placed = np.bincount(assign_texts(str(sets["train"]), texts[:15]), minlength=open_manifest(str(sets["train"])).num_clusters)
    doc = read_weights_file(out)
    assert doc["target"] == {"documents": 15, "per_cluster": placed.tolist()}
    assert np.allclose(doc["prior"], (placed + 0.5) / (placed + 0.5).sum())
    assert "target: 15 documents fall in" in done.stdout
    refused = subprocess.run([sys.executable, "-m", "streamclip.cli", "climb", str(sets["train"]), "--eval", str(sets["eval"]), "--target", "0",
                              "--prior", "target", "--command", f"{sys.executable} {script}", "--runs", "4", "--iterations", "1", "--out", str(out)],
                             capture_output=True, text=True)
    assert refused.returncode == 2 and "--prior target needs" in refused.stderr and "Traceback" not in refused.stderr
