"""A small byte-level language model trained through ``ClusterClipDataset``: does a plan make a better model?

``train_proxy`` reads its batches the way a user's trainer would (``ClusterClipDataset`` +
``StreamingDataLoader``), so what it measures is the plan as the reader delivers it. Documents
are joined with an end-of-document token and cut into fixed windows, so every step trains on the
same number of bytes whatever the strategy; each step draws its windows at random from a buffer of
``shuffle_windows`` (as LM trainers shuffle packed sequences), because in document order one long
document fills many consecutive steps and the strategy that happens to draw it trains on one text for
a while (seen in the first regime A run: seed spreads of 0.1 bits per byte); strategies differ in how many documents that takes
(``documents_drawn``). The run is fully determined by (dataset, strategy, seed, budget, config):
the initial weights come from ``seed``, the data order from the plan's ``seed``, and a
checkpoint holds everything else that changes (weights, optimiser, scheduler, RNG, the loader's
state and the bytes read but not yet trained on), so a run restarted from one ends where an
uninterrupted run ends.

``evaluate_proxy`` scores held-out bits per byte per cluster on fixed windows of each cluster's
documents joined end to end: every byte weighs the same, whatever the length of its document.
"""

from __future__ import annotations

import gc
import math
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from streamclip.errors import ConfigError, PlanInfeasible, ResumeMismatch
from streamclip.manifest import Manifest, open_manifest
from streamclip.plan import RunSchedule, Strategy, counts_at, strategy_from_spec, summarize
from streamclip.storage import is_remote

__all__ = ["ProxyConfig", "ProxyModel", "ProxyResult", "evaluate_proxy", "train_proxy"]

EOS = 256  # the end-of-document token, after the 256 byte values
VOCAB = 257
CHECKPOINT = "checkpoint.pt"


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyConfig:
    """The model and its optimisation; the defaults make a 3.2M-parameter model of 256-byte context."""

    layers: int = 4
    d_model: int = 256
    heads: int = 4
    context: int = 256
    batch_size: int = 16  # windows per step
    docs_per_batch: int = 16  # documents per loader batch
    epoch_documents: int = 8192  # at most this many documents per loader epoch (one segment of the plan)
    shuffle_windows: int = 4096  # windows in the shuffle buffer each step draws from; 0 trains them in document order
    lr: float = 2e-3
    min_lr: float = 2e-4
    warmup_steps: int = 100
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    bf16: bool = True  # autocast to bfloat16 (on CPU and on CUDA devices that support it)

    def __post_init__(self) -> None:
        for name in ("layers", "d_model", "heads", "context", "batch_size", "docs_per_batch", "epoch_documents"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"ProxyConfig.{name} must be an integer >= 1, got {value!r}")
        if isinstance(self.shuffle_windows, bool) or not isinstance(self.shuffle_windows, int) or self.shuffle_windows < 0:
            raise ConfigError(f"ProxyConfig.shuffle_windows must be an integer >= 0, got {self.shuffle_windows!r}")
        if self.d_model % self.heads:
            raise ConfigError(f"ProxyConfig.d_model={self.d_model} must be a multiple of heads={self.heads}")
        if not 0 < self.min_lr <= self.lr:
            raise ConfigError(f"ProxyConfig: need 0 < min_lr <= lr, got min_lr={self.min_lr}, lr={self.lr}")
        if self.warmup_steps < 0:
            raise ConfigError(f"ProxyConfig.warmup_steps must be >= 0, got {self.warmup_steps}")


@dataclass(slots=True)
class ProxyResult:
    """One training run: what it read, what it learned, what it scored on the held-out set."""

    strategy: dict[str, Any]
    seed: int
    tokens: int  # bytes (tokens) trained on: steps x batch_size x context
    steps: int
    documents_drawn: int  # documents the run took from the loader
    max_repeats: int  # the most times any document is drawn in the plan's first documents_drawn draws
    train_loss: float  # mean training loss (nats per token) over the last 5% of steps
    losses: list[float]
    eval: dict[str, Any] | None
    wall_seconds: float
    parameters: int
    device: str
    completed: bool  # False when stopped early by stop_after (the checkpoint holds the run)
    model: ProxyModel | None = field(default=None, repr=False)

    def record(self) -> dict[str, Any]:
        """The run as JSON-able data, without the model and the per-step losses."""
        return {name: getattr(self, name) for name in self.__slots__ if name not in ("model", "losses")}


class _Block(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        x = x + self.proj(F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.norm2(x))


class ProxyModel(nn.Module):
    """A decoder-only transformer over bytes (pre-norm, learned positions, tied input and output embeddings)."""

    def __init__(self, config: ProxyConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(VOCAB, config.d_model)
        self.position = nn.Embedding(config.context, config.d_model)
        self.blocks = nn.ModuleList(_Block(config.d_model, config.heads) for _ in range(config.layers))
        self.norm = nn.LayerNorm(config.d_model)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens) + self.position(torch.arange(tokens.shape[1], device=tokens.device))
        for block in self.blocks:
            x = block(x)
        return self.norm(x) @ self.embed.weight.T


def train_proxy(
    dataset: str, strategy: Strategy | str, *, tokens: int, seed: int, model: ProxyConfig | None = None, eval: str | None = None,
    checkpoint_dir: str | None = None, checkpoint_every: int = 200, device: str | None = None, threads: int | None = None,
    stop_after: int | None = None, strategy_params: dict[str, Any] | None = None, cache_dir: str | None = None,
    plan_margin: float = 0.3, progress: bool = False,
) -> ProxyResult:
    """Train a ``ProxyModel`` on ``tokens`` bytes of ``dataset`` drawn by ``strategy`` (an object or a name with ``strategy_params``).

    With ``checkpoint_dir``, a checkpoint is written atomically every ``checkpoint_every`` steps and at the
    end, and a run finds and continues the one there (``ResumeMismatch`` if it belongs to another run).
    ``stop_after`` ends the run after that many steps with a checkpoint (``completed=False``), as a kill
    would. ``eval`` is a held-out dataset (``streamclip split``) scored at the end. ``threads`` sets
    ``torch.set_num_threads`` for the run. ``device`` defaults to CUDA when present.
    """
    config = model or ProxyConfig()
    if isinstance(strategy, str):
        strategy = strategy_from_spec(strategy, **(strategy_params or {}))
    steps = tokens // (config.batch_size * config.context) if isinstance(tokens, int) and not isinstance(tokens, bool) else 0
    if steps < 1:
        raise ConfigError(f"tokens={tokens!r} is less than one step of batch_size x context = {config.batch_size * config.context} bytes; give more tokens")
    if stop_after is not None and not 0 < stop_after <= steps:
        raise ConfigError(f"stop_after={stop_after!r} must be in 1..{steps} (the run's steps)")
    if checkpoint_every < 1:
        raise ConfigError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _Run(dataset, strategy, config, steps=steps, seed=seed, device=_device(device), cache_dir=cache_dir,
                    plan_margin=plan_margin).train(eval=eval, checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every,
                                                   stop_after=stop_after, progress=progress)
    finally:
        torch.set_num_threads(previous_threads)


def _device(device: str | None) -> torch.device:
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def _autocast(device: torch.device, enabled: bool):  # -> a context manager
    if device.type == "cuda" and enabled and not torch.cuda.is_bf16_supported():
        enabled = False
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def plan_documents(manifest: Manifest, strategy: Strategy, needed_bytes: int, *, margin: float, extra: int = 0) -> int:
    """Documents a run must plan for to yield ``needed_bytes`` (text plus one end token each) under ``strategy``.

    A strategy's draws favour some clusters, whose documents are longer or shorter than the corpus
    average; the expected bytes per draw come from the plan's per-cluster draws (``summarize``), which
    depend on the budget, so the estimate is refined a few times. Draws vary about that mean (a cluster's
    last pass is a random part of it), hence ``margin`` and ``extra`` documents on top, within what the
    strategy's caps allow. Only phased strategies (whose phases end at fractions of the plan) are shaped
    by the surplus; the others draw the same first documents whatever the plan's length.
    """
    sizes = manifest.cluster_sizes
    per_doc = manifest.cluster_bytes / sizes + 1.0
    total = max(1, math.ceil(needed_bytes / float(per_doc @ sizes / sizes.sum())))
    for _ in range(6):
        draws = summarize(sizes, RunSchedule(sizes, strategy, total)).draws
        estimate = max(1, math.ceil(needed_bytes / (float(draws @ per_doc) / total)))
        if abs(estimate - total) <= max(1, total // 1000):
            break
        total = estimate
    total = math.ceil(max(estimate, total) * (1 + margin)) + extra
    try:
        RunSchedule(sizes, strategy, total)
    except PlanInfeasible as e:
        if e.max_total_samples is None or e.max_total_samples < estimate:
            raise
        total = e.max_total_samples
    return total


class _Run:
    """One run's fixed parts: the plan's size, the model, the optimiser and the schedule."""

    def __init__(self, dataset: str, strategy: Strategy, config: ProxyConfig, *, steps: int, seed: int, device: torch.device,
                 cache_dir: str | None, plan_margin: float) -> None:
        self.dataset, self.strategy, self.config, self.steps, self.seed, self.device = dataset, strategy, config, steps, seed, device
        self.cache_dir, self.plan_margin = cache_dir, plan_margin
        self.manifest = open_manifest(dataset)
        window = config.context + 1
        documents = plan_documents(self.manifest, strategy, steps * config.batch_size * window, margin=plan_margin, extra=2 * config.docs_per_batch)
        epochs = math.ceil(documents / config.epoch_documents)
        per_epoch = max(1, documents // epochs // config.docs_per_batch) * config.docs_per_batch  # whole batches: stock pads nothing
        self.epoch_size, self.total_samples = per_epoch, per_epoch * epochs
        torch.manual_seed(seed)
        self.model = ProxyModel(config).to(device)
        decay = [p for n, p in self.model.named_parameters() if p.dim() >= 2]
        rest = [p for n, p in self.model.named_parameters() if p.dim() < 2]
        self.optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay}, {"params": rest, "weight_decay": 0.0}],
                                           lr=config.lr, betas=config.betas)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.identity = {
            "dataset": self.manifest.fingerprint(), "strategy": strategy.to_dict(), "seed": seed, "steps": steps,
            "config": asdict(config), "total_samples": self.total_samples, "epoch_size": self.epoch_size,
        }

    def _lr_factor(self, step: int) -> float:
        """Linear warm-up, then a cosine from ``lr`` down to ``min_lr`` at the last step."""
        c = self.config
        if step < c.warmup_steps:
            return (step + 1) / c.warmup_steps
        progress = min(1.0, (step - c.warmup_steps) / max(1, self.steps - c.warmup_steps))
        return (c.min_lr + (c.lr - c.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))) / c.lr

    def _dataset(self):  # -> ClusterClipDataset
        from streamclip.readers.dataset import ClusterClipDataset

        gc.collect()  # streaming frees shared memory by name when a dataset is collected: finalise old ones first
        location = {"local": self.dataset}
        if is_remote(self.dataset):
            location = {"remote": self.dataset, "local": self.cache_dir or tempfile.mkdtemp(prefix="streamclip-proxy-")}
        return ClusterClipDataset(**location, strategy=self.strategy, total_samples=self.total_samples, epoch_size=self.epoch_size,
                                  batch_size=self.config.docs_per_batch, seed=self.seed, num_canonical_nodes=1)

    def train(self, *, eval: str | None, checkpoint_dir: str | None, checkpoint_every: int, stop_after: int | None, progress: bool) -> ProxyResult:
        from streaming import StreamingDataLoader

        began = time.perf_counter()
        state = _load_checkpoint(checkpoint_dir, self.identity, self.device)
        ds = self._dataset()
        step, losses, documents, carry, elapsed = 0, [], 0, b"", 0.0
        if state is not None:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng"])
            step, losses, documents, carry, elapsed = state["step"], state["losses"], state["documents"], state["carry"], state["elapsed"]
            if step < self.steps:
                ds.load_state_dict(state["loader"])
        loader = StreamingDataLoader(ds, batch_size=self.config.docs_per_batch, num_workers=0, collate_fn=_texts)
        first_epoch = state["loader"]["epoch"] if state is not None else 0
        windows = _Windows(_batches(loader, first_epoch, ds.num_epochs), self.config.context + 1, carry,
                           pool=self.config.shuffle_windows, seed=self.seed, rng_state=state.get("window_rng") if state else None)
        end = min(self.steps, stop_after) if stop_after is not None else self.steps

        def save() -> None:
            if checkpoint_dir is not None:
                _save_checkpoint(checkpoint_dir, {
                    "identity": self.identity, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(), "rng": torch.get_rng_state(), "loader": loader.state_dict(),
                    "step": step, "losses": losses, "documents": documents + windows.documents, "carry": windows.carry(),
                    "window_rng": windows.rng.bit_generator.state,
                    "elapsed": elapsed + time.perf_counter() - began,
                })

        self.model.train()
        with tqdm(total=self.steps, initial=step, desc=f"train {self.strategy.to_dict()['name']}", unit="step", disable=not progress) as bar:
            while step < end:
                batch = torch.from_numpy(windows.take(self.config.batch_size)).to(self.device)
                if batch.shape[0] < self.config.batch_size:
                    raise PlanInfeasible(
                        f"the plan of {self.total_samples} documents ran out at step {step} of {self.steps}: the documents drawn were "
                        f"shorter than their clusters' means; pass a larger plan_margin (now {self.plan_margin})",
                        max_total_samples=self.total_samples,
                    )
                with _autocast(self.device, self.config.bf16):
                    logits = self.model(batch[:, :-1])
                loss = F.cross_entropy(logits.float().reshape(-1, VOCAB), batch[:, 1:].reshape(-1))
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
                self.optimizer.step()
                self.scheduler.step()
                losses.append(float(loss.detach()))
                step += 1
                bar.update(1)
                if step % checkpoint_every == 0 or step == end:
                    save()
        documents += windows.documents
        drawn = counts_at(ds.schedule, min(documents, ds.schedule.total_samples))
        result = ProxyResult(
            strategy=self.strategy.to_dict(), seed=self.seed, tokens=step * self.config.batch_size * self.config.context, steps=step,
            documents_drawn=documents, max_repeats=int((-(-drawn // ds.schedule.sizes)).max()),
            train_loss=float(np.mean(losses[-max(1, len(losses) // 20):])), losses=losses, eval=None,
            wall_seconds=elapsed + time.perf_counter() - began, parameters=sum(p.numel() for p in self.model.parameters()),
            device=str(self.device), completed=step == self.steps, model=self.model,
        )
        del windows, loader, ds
        if eval is not None and result.completed:
            result.eval = evaluate_proxy(self.model, eval, device=str(self.device))
        return result

def _texts(batch: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Dict-of-lists batches: StreamingDataLoader counts the samples of a batch by the length of its first value."""
    return {"text": [s["text"] for s in batch]}


def _batches(loader: Any, first_epoch: int, num_epochs: int) -> Iterator[list[str]]:
    """Every loader batch of the plan from ``first_epoch`` on (the loader resumes mid-epoch when its dataset was loaded)."""
    for _ in range(first_epoch, num_epochs):
        for batch in loader:
            yield batch["text"]


class _Windows:
    """Documents as bytes, each followed by ``EOS``, joined end to end and cut into windows of ``length`` tokens;
    each ``take`` draws its windows at random from a buffer of ``pool`` windows (``pool=0``: in order).

    Whole loader batches are taken at a time, so what the loader has yielded is either trained on or in
    the buffer that a checkpoint keeps (``carry``, with ``rng``'s state): the loader's state counts every
    sample of a batch. The buffer's row order is part of that state, so a restored run draws what the
    uninterrupted one drew.
    """

    def __init__(self, batches: Iterator[list[str]], length: int, carry: bytes, *, pool: int = 0, seed: int = 0,
                 rng_state: dict[str, Any] | None = None) -> None:
        self.source, self.length, self.pool = batches, length, pool
        tokens = np.frombuffer(carry, dtype=np.int16) if carry else np.empty(0, dtype=np.int16)
        whole = len(tokens) // length * length
        self.windows = tokens[:whole].reshape(-1, length).copy()  # int16: a 4,096-window buffer of 257 tokens is 2 MB
        self.tail = tokens[whole:].copy()  # fewer than ``length`` tokens: the start of the next window
        self.rng = np.random.Generator(np.random.PCG64([seed, 0x57494E]))  # its own stream: the plan's seed draws documents
        if rng_state is not None:
            self.rng.bit_generator.state = rng_state
        self.documents = 0  # taken from the source since construction

    def _fill(self, need: int) -> None:
        parts, have = [self.tail], len(self.windows) * self.length + len(self.tail)
        target = need * self.length
        while have < target:
            texts = next(self.source, None)
            if texts is None:
                break
            for text in texts:
                doc = np.frombuffer(text.encode("utf-8") + b"\0", dtype=np.uint8).astype(np.int16)
                doc[-1] = EOS
                parts.append(doc)
                have += len(doc)
            self.documents += len(texts)
        if len(parts) == 1:
            return
        joined = np.concatenate(parts)
        whole = len(joined) // self.length * self.length
        self.windows = np.concatenate([self.windows, joined[:whole].reshape(-1, self.length)])
        self.tail = joined[whole:]

    def take(self, count: int) -> np.ndarray:
        """Up to ``count`` windows, int64[n, length]; fewer only when the documents run out."""
        self._fill(max(count, self.pool))
        n = min(count, len(self.windows))
        if self.pool == 0:
            chosen, self.windows = self.windows[:n], self.windows[n:]
        else:
            picked = self.rng.choice(len(self.windows), size=n, replace=False)
            keep = np.ones(len(self.windows), dtype=bool)
            keep[picked] = False
            chosen, self.windows = self.windows[picked], self.windows[keep]
        return chosen.astype(np.int64)

    def carry(self) -> bytes:
        """The tokens read but not yet trained on, buffer rows in order, then the tail (int16: the checkpoint stays small)."""
        return np.concatenate([self.windows.ravel(), self.tail]).astype(np.int16).tobytes()


def _save_checkpoint(directory: str, state: dict[str, Any]) -> None:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, CHECKPOINT)
    tmp = f"{path}.tmp-{os.getpid()}"
    torch.save(state, tmp)
    os.replace(tmp, path)


def _load_checkpoint(directory: str | None, identity: dict[str, Any], device: torch.device) -> dict[str, Any] | None:
    path = os.path.join(directory, CHECKPOINT) if directory else None
    if path is None or not os.path.exists(path):
        return None
    state = torch.load(path, map_location=device, weights_only=False)
    saved = state.get("identity", {})
    if saved != identity:
        differences = [f"{k}: checkpoint {saved.get(k)!r}, this run {v!r}" for k, v in identity.items() if saved.get(k) != v]
        raise ResumeMismatch(f"{path} belongs to another run ({'; '.join(differences)[:600]}); use another checkpoint_dir or the run's own settings")
    state["rng"] = state["rng"].cpu()
    return state


@torch.no_grad()
def evaluate_proxy(model: ProxyModel, eval_dataset: str, *, window: int | None = None, device: str | None = None,
                   batch_size: int = 32, max_documents_per_cluster: int | None = None, clusters: Sequence[int] | None = None) -> dict[str, Any]:
    """Bits per byte of ``model`` on each cluster of ``eval_dataset`` (a directory or ``s3://`` prefix), plus their
    macro mean, the micro mean (over all bytes) and the worst cluster.

    A cluster's documents (its first ``max_documents_per_cluster``, if given) are joined, each followed by the
    end token, and cut into windows of ``window`` + 1 tokens (default: the model's context) that overlap by one,
    so every byte after the first is predicted once; end tokens are context, not scored. Clusters are named by
    the ids of the dataset ``streamclip split`` made them from (``extra.split.cluster_ids``), else by their own;
    ``clusters`` (those ids) scores only these.
    """
    from streaming import StreamingDataset

    target = _device(device)
    length = (window or model.config.context) + 1
    if not 2 <= length <= model.config.context + 1:
        raise ConfigError(f"window={window!r} must be in 1..{model.config.context} (the model's context)")
    manifest = open_manifest(eval_dataset)
    ids = manifest.extra.get("split", {}).get("cluster_ids") or list(range(manifest.num_clusters))
    chosen = list(range(len(ids)))
    if clusters is not None:
        where = {int(c): i for i, c in enumerate(ids)}
        missing = [c for c in clusters if c not in where]
        if missing or not clusters:
            raise ConfigError(f"clusters {missing or list(clusters)} are not clusters of {eval_dataset} (it holds {len(ids)}: ids {ids[:8]}...)")
        chosen = [where[int(c)] for c in clusters]
    gc.collect()
    location = {"remote": eval_dataset, "local": tempfile.mkdtemp(prefix="streamclip-eval-")} if is_remote(eval_dataset) else {"local": eval_dataset}
    stored = StreamingDataset(**location, shuffle=False, batch_size=1)
    was_training = model.training
    model.eval()
    bits, counted = [], []
    for index in chosen:
        start, stop = manifest.clusters[index].samples
        if max_documents_per_cluster is not None:
            stop = min(stop, start + max_documents_per_cluster)
        total, n = _stream_bits(model, _join([stored[i]["text"] for i in range(start, stop)]), length, batch_size, target)
        bits.append(total)
        counted.append(n)
    model.train(was_training)
    del stored
    ids = [ids[i] for i in chosen]
    bpb = [b / max(1, n) for b, n in zip(bits, counted)]
    worst = int(np.argmax(bpb))
    return {
        "clusters": [int(i) for i in ids], "bpb": bpb, "bytes": counted, "macro": float(np.mean(bpb)),
        "micro": float(sum(bits) / max(1, sum(counted))), "worst": bpb[worst], "worst_cluster": int(ids[worst]),
        "window": length - 1,
    }


@torch.no_grad()
def score_texts(model: ProxyModel, texts: Sequence[str], *, window: int | None = None, device: str | None = None, batch_size: int = 32) -> float:
    """Bits per byte of ``model`` on ``texts`` joined as ``evaluate_proxy`` joins a cluster (a target set scored directly)."""
    if not texts:
        raise ConfigError("score_texts needs at least one text")
    length = (window or model.config.context) + 1
    if not 2 <= length <= model.config.context + 1:
        raise ConfigError(f"window={window!r} must be in 1..{model.config.context} (the model's context)")
    was_training = model.training
    model.eval()
    total, n = _stream_bits(model, _join(texts), length, batch_size, _device(device))
    model.train(was_training)
    return total / max(1, n)


def _join(texts: Sequence[str]) -> np.ndarray:
    return np.concatenate([np.append(np.frombuffer(t.encode("utf-8"), dtype=np.uint8).astype(np.int64), EOS) for t in texts])


def _stream_bits(model: ProxyModel, stream: np.ndarray, length: int, batch_size: int, target: torch.device) -> tuple[float, int]:
    """Total bits and the count of scored bytes over ``stream``'s windows."""
    total, n = 0.0, 0
    for tokens, scored in _eval_windows(stream, length, batch_size):
        inputs = torch.from_numpy(tokens).to(target)
        with _autocast(target, model.config.bf16):
            logits = model(inputs[:, :-1])
        nll = F.cross_entropy(logits.float().reshape(-1, VOCAB), inputs[:, 1:].reshape(-1), reduction="none")
        mask = torch.from_numpy(scored).to(target).reshape(-1)
        total += float((nll * mask).sum())
        n += int(mask.sum())
    return total / math.log(2), n


def _eval_windows(stream: np.ndarray, length: int, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Batches of windows over ``stream`` with stride ``length - 1``, the last one padded with end tokens; and which
    targets count (bytes: end tokens and padding are not scored)."""
    stride = length - 1
    count = max(1, math.ceil((len(stream) - 1) / stride))
    padded = np.concatenate([stream, np.full(count * stride + 1 - len(stream), EOS, dtype=np.int64)])
    starts = np.arange(count) * stride
    for at in range(0, count, batch_size):
        rows = starts[at : at + batch_size, None] + np.arange(length)
        tokens = padded[rows]
        yield tokens, (tokens[:, 1:] != EOS).astype(np.float32)
