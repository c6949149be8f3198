"""What ``streamclip inspect`` reports: the cluster table and how long-tailed the corpus is.

Long-tail statistics matter because they predict what ClusterClip changes: the larger the
largest/smallest ratio and the Gini coefficient of cluster sizes, the more uniform-over-clusters
sampling departs from random sampling.
"""

from __future__ import annotations

import unicodedata
from typing import Any

import numpy as np
from numpy.typing import NDArray

from streamclip.manifest import Manifest


# Characters a terminal may act on instead of showing: C0/DEL/C1 controls (ESC starts escape sequences,
# OSC ones can set the title or write the clipboard), format characters (bidi overrides reorder text),
# line/paragraph separators and lone surrogates.
_UNSAFE = {"Cc", "Cf", "Zl", "Zp", "Cs"}


def printable(text: str) -> str:
    """``text`` safe to print: each unsafe character becomes a visible JSON-style ``\\uXXXX`` escape.

    Corpus text reaches the terminal through cluster examples and top terms; printed raw it could
    drive the terminal. JSON-style escapes keep ``--json`` output valid JSON.
    """
    return "".join(_escape(ch) if unicodedata.category(ch) in _UNSAFE else ch for ch in text)


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # outside the BMP: a UTF-16 surrogate pair, as JSON spells it
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def gini(sizes: NDArray[np.integer]) -> float:
    """Gini coefficient of cluster sizes: 0 when all equal, towards 1 when one cluster holds everything."""
    x = np.sort(np.asarray(sizes, dtype=np.float64))
    n = len(x)
    if n == 0 or x.sum() == 0:
        return 0.0
    return float((2 * np.arange(1, n + 1) - n - 1) @ x / (n * x.sum()))


def describe(manifest: Manifest) -> dict[str, Any]:
    """The inspect report as plain data (what ``--json`` prints)."""
    sizes = manifest.cluster_sizes
    total = int(sizes.sum())
    order = np.sort(sizes)[::-1]
    cumulative = np.cumsum(order) / max(1, total)
    return {
        "location": manifest.location,
        "format_version": manifest.format_version,
        "streamclip_version": manifest.streamclip_version,
        "embedding": manifest.embedding,
        "clustering": manifest.clustering,
        "totals": {
            "documents": total, "bytes": int(manifest.cluster_bytes.sum()), "shards": manifest.num_shards,
            "shard_bytes": int(manifest.shard_bytes.sum()), "clusters": manifest.num_clusters, "rejected": manifest.rejected,
        },
        "long_tail": {
            "largest": int(order[0]), "smallest": int(order[-1]), "ratio": float(order[0] / order[-1]),
            "gini": gini(sizes),
            "top_10pct_share": float(cumulative[max(0, int(np.ceil(0.1 * len(order))) - 1)]),
        },
        "clusters": [
            {"id": c.id, "documents": c.documents, "share": c.documents / total, "bytes": c.bytes,
             "shards": list(c.shards), "top_terms": list(c.top_terms), "example": c.example}
            for c in manifest.clusters
        ],
    }


def format_table(report: dict[str, Any], *, limit: int | None = None, width: int = 100) -> str:
    """A fixed-width text table of clusters, largest first, plus totals and long-tail figures."""
    rows = sorted(report["clusters"], key=lambda c: (-c["documents"], c["id"]))
    shown = rows if limit is None else rows[:limit]
    lines = [f"{'id':>5} {'docs':>8} {'share':>6} {'bytes':>10} {'shards':>6}  top terms / example"]
    for c in shown:
        terms = ", ".join(c["top_terms"][:6])
        head = f"{c['id']:>5} {c['documents']:>8} {c['share']:>6.1%} {c['bytes']:>10} {c['shards'][1] - c['shards'][0]:>6}  "
        lines.append((head + printable(terms[:width]))[:width])
        lines.append((" " * len(head) + "“" + printable(c["example"][:width]) + "”")[:width])
    if len(shown) < len(rows):
        lines.append(f"… {len(rows) - len(shown)} more clusters (use --limit 0 for all)")
    t, tail = report["totals"], report["long_tail"]
    lines.append("")
    lines.append(f"documents {t['documents']}  text bytes {t['bytes']}  shards {t['shards']} ({t['shard_bytes']} bytes on disk)  clusters {t['clusters']}  rejected {t['rejected']}")
    lines.append(f"long tail: largest/smallest {tail['largest']}/{tail['smallest']} = {tail['ratio']:.1f}x, Gini {tail['gini']:.3f}, top 10% of clusters hold {tail['top_10pct_share']:.1%}")
    return "\n".join(lines)


def plot_sizes(manifest: Manifest, path: str) -> None:
    """Cluster sizes sorted largest first on a log scale: the shape of the long tail at a glance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = np.sort(manifest.cluster_sizes)[::-1]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.bar(np.arange(len(sizes)), sizes, width=1.0, color="#3b75af")
    ax.axhline(sizes.mean(), color="#c44e52", linestyle="--", linewidth=1, label=f"mean {sizes.mean():.0f} (uniform share)")
    ax.set_yscale("log")
    ax.set_xlabel("cluster rank (largest first)")
    ax.set_ylabel("documents (log scale)")
    ax.set_title(f"{manifest.num_clusters} clusters, {manifest.num_documents} documents, Gini {gini(sizes):.2f}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
