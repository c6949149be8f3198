"""The proxy trainer and the outcome experiment on the bundled sample: determinism, exact resume, records written."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import convert_docs, write_jsonl

from streamclip import open_manifest
from streamclip.errors import ConfigError, ResumeMismatch
from streamclip.readers import ProxyConfig, evaluate_proxy, train_proxy
from streamclip.writers import split

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import bench_outcome  # noqa: E402

TINY = ProxyConfig(layers=1, d_model=32, heads=2, context=32, batch_size=8, docs_per_batch=4, warmup_steps=10, epoch_documents=12)
STEPS = 120


@pytest.fixture(scope="module")
def halves(tmp_path_factory, sample_docs) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("proxy")
    ds = convert_docs(root, sample_docs, clusters=4)
    split(str(ds), str(root / "train"), str(root / "eval"), eval_per_cluster=10, seed=0)
    return root / "train", root / "eval"


def run(halves, **kwargs):
    train, held = halves
    kwargs.setdefault("seed", 1)
    return train_proxy(str(train), "clusterclip", strategy_params={"clip": 4}, tokens=STEPS * TINY.batch_size * TINY.context,
                       model=TINY, eval=str(held), threads=1, checkpoint_every=25, **kwargs)


def test_same_seed_same_run_and_a_restart_from_the_checkpoint_ends_where_the_whole_run_ends(halves, tmp_path):
    whole = run(halves)
    assert whole.completed and whole.steps == STEPS and len(whole.losses) == STEPS
    assert run(halves).losses == whole.losses
    assert run(halves, seed=2).losses != whole.losses
    # Stopped mid-run (between checkpoints, several loader epochs in), then restarted from what is on disk.
    stopped = run(halves, checkpoint_dir=str(tmp_path / "ck"), stop_after=STEPS // 2 + 7)
    assert not stopped.completed and stopped.eval is None and stopped.steps == STEPS // 2 + 7
    resumed = run(halves, checkpoint_dir=str(tmp_path / "ck"))
    assert resumed.completed
    assert resumed.losses == whole.losses
    assert resumed.eval == whole.eval
    assert resumed.documents_drawn == whole.documents_drawn and resumed.max_repeats == whole.max_repeats
    assert whole.documents_drawn > TINY.epoch_documents  # the run crossed loader epochs
    with pytest.raises(ResumeMismatch, match="seed"):
        run(halves, seed=5, checkpoint_dir=str(tmp_path / "ck"))


def test_held_out_scores_every_byte_once_and_the_summaries_agree(halves):
    train, held = halves
    model = run(halves).model
    result = evaluate_proxy(model, str(held))
    m = open_manifest(str(held))
    assert result["clusters"] == m.extra["split"]["cluster_ids"]
    # Each cluster's documents are one stream: every byte but the stream's first is predicted exactly once.
    assert result["bytes"] == [c.bytes - 1 for c in m.clusters]
    bpb = result["bpb"]
    assert result["macro"] == pytest.approx(sum(bpb) / len(bpb))
    assert result["micro"] == pytest.approx(sum(b * n for b, n in zip(bpb, result["bytes"])) / sum(result["bytes"]))
    assert result["worst"] == max(bpb) and result["clusters"][bpb.index(max(bpb))] == result["worst_cluster"]
    shorter = evaluate_proxy(model, str(held), window=8)
    assert shorter["bytes"] == result["bytes"] and shorter["window"] == 8
    capped = evaluate_proxy(model, str(train), max_documents_per_cluster=3)
    assert len(capped["bpb"]) == open_manifest(str(train)).num_clusters


def test_a_budget_below_one_step_is_a_config_error(halves):
    train, _ = halves
    with pytest.raises(ConfigError, match="tokens"):
        train_proxy(str(train), "random", tokens=TINY.batch_size * TINY.context - 1, seed=0, model=TINY)
    with pytest.raises(ConfigError, match="d_model"):
        ProxyConfig(d_model=30, heads=4)


def test_outcome_pipeline_writes_records_resumes_and_repeats_exactly(tmp_path, sample_docs):
    corpus = write_jsonl(tmp_path / "corpus.jsonl", sample_docs)
    model = {k: getattr(TINY, k) for k in ("layers", "d_model", "heads", "context", "batch_size", "docs_per_batch", "warmup_steps")}
    common = ["--corpus", str(corpus), "--embedder", "hashing", "--clusters", "4", "--eval-per-cluster", "10", "--train-fraction", "0.5",
              "--tokens", str(STEPS * TINY.batch_size * TINY.context), "--strategies", "random,uniform", "--seeds", "0",
              "--model", json.dumps(model), "--threads", "1", "--regime", "A"]

    def outcome(name: str, *extra: str) -> int:
        return bench_outcome.main([*common, "--work", str(tmp_path / name), "--results", str(tmp_path / name / "outcome.json"), *extra])

    assert outcome("a", "--stop-after", str(STEPS // 2)) == 3  # interrupted: no record, a checkpoint
    assert not (tmp_path / "a" / "outcome.json").exists()
    assert outcome("a") == 0  # resumes the interrupted run, then runs the other strategy
    assert outcome("b") == 0  # uninterrupted, from scratch
    records = {name: json.loads((tmp_path / name / "outcome.json").read_text()) for name in ("a", "b")}
    assert [(r["regime"], r["strategy"], r["seed"]) for r in records["a"]] == [("A", "random", 0), ("A", "uniform", 0)]
    for got, want in zip(records["a"], records["b"]):
        assert {k: v for k, v in got.items() if k != "wall_seconds"} == {k: v for k, v in want.items() if k != "wall_seconds"}
    record = records["a"][1]
    assert set(record["bpb"]) == {"macro", "worst", "rare_half", "common_half", "micro"}
    assert record["tokens"] == STEPS * TINY.batch_size * TINY.context and record["documents_drawn"] > 0 and record["max_repeats"] >= 1
    assert outcome("a") == 0 and json.loads((tmp_path / "a" / "outcome.json").read_text()) == records["a"]  # finished runs are skipped
    table = (tmp_path / "a" / "outcome.md").read_text()
    assert "uniform − random" in table and (tmp_path / "a" / "outcome.png").stat().st_size > 0


def _window_source(seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    docs = ["".join(chr(97 + int(c)) for c in rng.integers(0, 26, int(n))) for n in rng.integers(1, 400, 60)]
    docs[7] = "x" * 3000  # one long document: in order it would fill many consecutive windows
    return [docs[i:i + 4] for i in range(0, len(docs), 4)]


def _drain(windows, count: int):
    out = []
    while True:
        got = windows.take(count)
        if len(got) == 0:
            return out
        out.append(got)


def test_the_window_buffer_draws_every_window_once_in_a_seeded_order_that_survives_a_checkpoint():
    import numpy as np

    from streamclip.readers.proxy import _Windows

    ordered = np.concatenate(_drain(_Windows(iter(_window_source()), 17, b"", pool=0), 5))
    shuffled = np.concatenate(_drain(_Windows(iter(_window_source()), 17, b"", pool=32, seed=3), 5))
    assert sorted(map(bytes, ordered.astype(np.int16))) == sorted(map(bytes, shuffled.astype(np.int16)))  # same windows
    assert not np.array_equal(ordered, shuffled)

    def steps_of_one_document(windows):  # steps of 5 windows that are all of the long document
        return int((windows[: len(windows) // 5 * 5].reshape(-1, 5, 17) == ord("x")).all(axis=2).all(axis=1).sum())

    assert steps_of_one_document(ordered) >= 30
    wide = np.concatenate(_drain(_Windows(iter(_window_source()), 17, b"", pool=512, seed=3), 5))
    assert steps_of_one_document(wide) == 0  # a buffer wider than the document spreads it over the run

    source = iter(_window_source())
    first = _Windows(source, 17, b"", pool=32, seed=3)
    head = [first.take(5) for _ in range(6)]
    resumed = _Windows(source, 17, first.carry(), pool=32, seed=3, rng_state=first.rng.bit_generator.state)
    again = np.concatenate(head + _drain(resumed, 5))
    assert np.array_equal(again, shuffled)
