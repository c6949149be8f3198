"""Which OS errors the CLI reports as the user's (one line naming the option) and which stay bugs (a traceback)."""

from __future__ import annotations

import errno
import os

from streamclip.cli import _user_path


def oserror(kind: type[OSError], path: str) -> OSError:
    return kind(errno.ENOENT, os.strerror(errno.ENOENT), path)


def test_an_error_on_a_typed_path_or_inside_it_names_the_option(tmp_path):
    given = {"inputs": (str(tmp_path / "corpus"),), "out": "ds", "work_dir": str(tmp_path / "corpus" / "w"), "plot_path": None}
    assert _user_path(oserror(FileNotFoundError, "ds"), given) == "OUT ds"
    assert _user_path(oserror(FileNotFoundError, os.path.abspath("ds/index.json")), given) == "OUT ds"
    assert _user_path(oserror(NotADirectoryError, str(tmp_path / "corpus" / "a.txt")), given) == f"INPUTS {tmp_path / 'corpus'}"
    # The closest of two nested paths is the one at fault.
    assert _user_path(oserror(FileNotFoundError, str(tmp_path / "corpus" / "w" / "state.json")), given) == f"--work-dir {tmp_path / 'corpus' / 'w'}"


def test_an_error_elsewhere_is_not_the_users():
    given = {"out": "ds", "dataset": "s3://bucket/ds"}
    assert _user_path(oserror(FileNotFoundError, "/usr/lib/python3/some_module.py"), given) is None
    assert _user_path(oserror(FileNotFoundError, os.path.abspath("dsx")), given) is None  # a sibling with the same prefix
    assert _user_path(FileNotFoundError("no filename at all"), given) is None
