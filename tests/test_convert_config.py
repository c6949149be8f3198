"""Every ``convert`` option is checked before anything is read, each refusal naming the option as the CLI spells it."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from streamclip.cli import main
from streamclip.errors import ConfigError
from streamclip.writers import ConvertConfig, FieldRules, HashingEmbedder, MiniLMEmbedder, convert

from conftest import write_jsonl

FAST = dict(clusters=2, embedder="hashing", progress=False)


@pytest.mark.parametrize("options, message", [
    (dict(compression="zstd:99"), r"--compression 'zstd:99': use zstd or zstd:LEVEL with LEVEL in 1\.\.22"),
    (dict(compression="zstd:-5"), r"--compression 'zstd:-5'"),
    (dict(compression="zstdx"), r"--compression 'zstdx'"),
    (dict(compression="gz"), r"--compression 'gz'"),
    (dict(seed=-1), r"--seed -1: must be an integer in 0\.\.2147483647"),
    (dict(seed=2**70), r"--seed 1180591620717411303424: must be an integer in 0\.\.2147483647"),
    (dict(clusters=0), r"--clusters 0: must be an integer >= 1"),
    (dict(iterations=0), r"--iterations 0: must be an integer >= 1"),
    (dict(max_tokens=0), r"--max-tokens 0: must be an integer >= 1"),
    (dict(max_tokens=4, embedder="minilm"), r"--max-tokens 4: must be an integer >= 8"),
    (dict(memory_budget=0), r"--memory-budget 0: must be an integer >= 1"),
    (dict(shard_size=100), r"--shard-size 100: must be an integer >= 4096"),
    (dict(rules=FieldRules(max_doc_bytes=0)), r"--max-doc-bytes 0: must be an integer >= 1"),
    (dict(embedder="bert"), r"--embedder 'bert': unknown; choose one of minilm, minilm-onnx, minilm-onnx-int8, static, hashing"),
    (dict(clusters="8"), r"--clusters '8': must be an integer"),
])
def test_bad_options_are_refused_at_construction(options, message):
    with pytest.raises(ConfigError, match=message):
        ConvertConfig(**{**FAST, **options})


@pytest.mark.parametrize("rules, named", [
    (FieldRules(keep=("source", "cluster")), "cluster"),
    (FieldRules(keep=("text",)), "text"),
    (FieldRules(text_field="body", keep=("body",)), "body"),
    (FieldRules(cluster_field="group", keep=("group", "source")), "group"),
])
def test_keep_refuses_the_reserved_columns(rules, named):
    with pytest.raises(ConfigError, match=rf"--keep {named}: 'text' and 'cluster' are the dataset's own columns.*drop these names from --keep"):
        ConvertConfig(rules=rules, **FAST)


def test_embedders_refuse_bad_sizes_with_config_errors():
    with pytest.raises(ConfigError, match="--max-tokens 0"):
        HashingEmbedder(max_tokens=0)
    with pytest.raises(ConfigError, match="dim must be an integer >= 8"):
        HashingEmbedder(dim=4)
    with pytest.raises(ConfigError, match="--max-tokens 3: the MiniLM embedder needs at least 8 tokens"):
        MiniLMEmbedder(max_tokens=3)


@pytest.mark.parametrize("args, option", [
    (["--compression", "zstd:99"], "--compression"),
    (["--seed", "-1"], "--seed"),
    (["--keep", "cluster"], "--keep"),
    (["--max-tokens", "0"], "--max-tokens"),
])
def test_cli_prints_one_line_and_exits_2_before_reading(tmp_path, args, option):
    result = CliRunner().invoke(main, ["convert", str(tmp_path / "missing.jsonl"), str(tmp_path / "ds"), "--embedder", "hashing", "--no-progress", *args])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and option in result.output and result.output.count("\n") == 1  # the input's absence was never reached


def test_out_as_the_current_directory_is_refused_up_front(tmp_path, sample_docs, monkeypatch):
    src = write_jsonl(tmp_path / "a.jsonl", sample_docs[:20])
    project = tmp_path / "project"
    (project / "sub").mkdir(parents=True)
    (project / "keep.txt").write_text("mine")
    for cwd, out in [(project, "."), (project / "sub", "..")]:
        monkeypatch.chdir(cwd)
        with pytest.raises(ConfigError, match="is the current directory or holds it"):
            convert([str(src)], out, ConvertConfig(overwrite=True, **FAST))
    assert sorted(p.name for p in project.iterdir()) == ["keep.txt", "sub"]  # no work or staging directory made


def test_overwrite_refuses_an_out_that_holds_an_input(tmp_path, sample_docs):
    out = tmp_path / "ds"
    out.mkdir()
    src = write_jsonl(out / "a.jsonl", sample_docs[:20])
    with pytest.raises(ConfigError, match=rf"the input {src} lies inside OUT {out}, which would be deleted"):
        convert([str(src)], str(out), ConvertConfig(overwrite=True, **FAST))
    assert src.is_file()


class _Broken:
    """An Embedder that breaks its promise: one dimension short, or NaN rows."""

    def __init__(self, nan: bool) -> None:
        self.dim, self.nan = 8, nan

    def encode(self, texts):
        import numpy as np

        return np.full((len(texts), 8), np.nan, dtype=np.float32) if self.nan else np.ones((len(texts), 7), dtype=np.float32)

    def describe(self):
        return {"model": "broken", "dim": 8}


@pytest.mark.parametrize("nan, shown", [(False, r"\(20, 7\) rows for 20 texts"), (True, r"\(20, 8\) rows with NaN/inf for 20 texts")])
def test_an_embedder_breaking_its_contract_is_named(tmp_path, sample_docs, nan, shown):
    src = write_jsonl(tmp_path / "a.jsonl", sample_docs[:20])
    with pytest.raises(ConfigError, match=rf"embedder _Broken.encode returned {shown}; an Embedder must return \(len\(texts\), dim=8\)"):
        convert([str(src)], str(tmp_path / "ds"), ConvertConfig(**FAST), embedder=_Broken(nan))
