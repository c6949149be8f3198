"""streamclip's ties to streaming 0.13: gathered in one compat module per wing, checked by version and by source.

An upgrade of streaming must fail here, naming the stock function that changed and the streamclip code
that mirrors it, instead of drifting silently; and no reader or writer module may reach into streaming's
private modules except through its wing's compat module.
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from streamclip._compat import STREAMING_PIN, Mirror, check_streaming_version, drift, source_fingerprint
from streamclip.errors import CompatError, StreamclipError
from streamclip.readers import compat as reader_compat
from streamclip.writers import compat as writer_compat

ROOT = Path(__file__).resolve().parent.parent
WINGS = {"readers": reader_compat, "writers": writer_compat}


@pytest.mark.parametrize(
    "mirror", [m for wing in WINGS.values() for m in wing.MIRRORS], ids=lambda m: m.stock.removeprefix("streaming.base.")
)
def test_stock_source_is_the_one_mirrored(mirror: Mirror) -> None:
    assert drift(mirror) is None, drift(mirror)


@pytest.mark.parametrize("wing", WINGS.values(), ids=WINGS.keys())
def test_mirrored_table_lists_each_stock_callable_once(wing) -> None:
    names = [m.stock for m in wing.MIRRORS]
    assert len(set(names)) == len(names)
    assert wing.MIRRORED == {m.stock: m.fingerprint for m in wing.MIRRORS}


def _load(path: Path, source: str):
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fingerprint_ignores_layout_and_sees_any_token(tmp_path: Path) -> None:
    base = _load(tmp_path / "base.py", "def f(x):\n    return x + 1\n")
    relaid = _load(tmp_path / "relaid.py", "class C:\n\n    def f(x):\n\n        return  x + 1   \n")
    changed = _load(tmp_path / "changed.py", "def f(x):\n    return x + 2\n")
    assert source_fingerprint(base.f) == source_fingerprint(relaid.C.f)
    assert source_fingerprint(base.f) != source_fingerprint(changed.f)


def test_drift_names_the_stock_function_and_its_mirror() -> None:
    stock = "streaming.base.dataset.StreamingDataset._prepare_thread"
    stale = Mirror(stock, "0" * 64, "readers/fastiter.py prepare_spans")
    message = drift(stale)
    assert message is not None and stock in message and "readers/fastiter.py prepare_spans" in message
    gone = drift(Mirror("streaming.base.dataset.StreamingDataset._no_such_method", "0" * 64, "somewhere.py f"))
    assert gone is not None and "cannot be read" in gone and "somewhere.py f" in gone


@pytest.mark.parametrize("version", ["0.14.0", "0.12.3", "1.13.0", "0.130.0", "dev"])
def test_version_check_refuses_other_releases(version: str) -> None:
    with pytest.raises(CompatError) as caught:
        check_streaming_version(version)
    message = str(caught.value)
    assert version in message and STREAMING_PIN in message and f"pip install '{STREAMING_PIN}'" in message
    assert isinstance(caught.value, StreamclipError) and isinstance(caught.value, ImportError)


@pytest.mark.parametrize("version", ["0.13.0", "0.13.7", "0.13.1rc1", "0.13.0.dev0"])
def test_version_check_accepts_the_supported_release(version: str) -> None:
    check_streaming_version(version)


def test_importing_a_compat_module_under_another_release_fails_by_name() -> None:
    """A fresh interpreter where streaming reports another release: both compat modules refuse to load."""
    script = (
        "import streaming\n"
        "streaming.__version__ = '0.14.0'\n"
        "from streamclip.errors import CompatError\n"
        "for name in ('streamclip.readers.compat', 'streamclip.writers.compat'):\n"
        "    try:\n"
        "        __import__(name)\n"
        "    except CompatError as e:\n"
        "        assert '0.14.0' in str(e), e\n"
        "    else:\n"
        "        raise SystemExit(name + ' imported under streaming 0.14.0')\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr


def _private_streaming_imports(path: Path) -> list[str]:
    """Imports of streaming's submodules (``streaming.base...``) or of underscore names from streaming."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            deep = node.module.startswith("streaming.")
            private = node.module == "streaming" and any(alias.name.startswith("_") for alias in node.names)
            if deep or private:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.Import):
            found += [f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}" for alias in node.names
                      if alias.name.startswith("streaming.")]
    return found


def test_only_the_compat_modules_reach_into_streaming() -> None:
    modules = [p for wing in WINGS for p in sorted((ROOT / wing).glob("*.py")) if p.name != "compat.py"]
    assert modules
    found = [line for path in modules for line in _private_streaming_imports(path)]
    assert not found, "import these from the wing's compat module instead:\n" + "\n".join(found)
