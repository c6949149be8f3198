"""A process that imports a framework once and forks one fresh process per training run.

    python zygote.py MODULE...     # then one JSON request per line on stdin

Importing Lightning or the Hugging Face Trainer (with torch, torchmetrics, transformers) takes 6-8 s here,
most of each short training run the framework tests start. Each request forks a child that runs a script
as ``python SCRIPT ARGS`` would (``__main__``, its folder first on ``sys.path``, stdout and stderr to files)
and is a process of its own: it can be SIGKILLed, and it shares nothing with the next run but the imported
modules. The reply gives the child's pid first (so the caller can kill it on a timeout), then its exit code
(negative: the signal that ended it).

Request: ``{"script": PATH, "argv": [...], "stdout": PATH, "stderr": PATH}``.
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import runpy
import sys
import traceback


def _child(request: dict) -> int:
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    sys.stdin = open(os.devnull)  # noqa: SIM115  the zygote's requests are not the script's
    sys.argv = [request["script"], *request["argv"]]
    sys.path[0] = os.path.dirname(os.path.abspath(request["script"]))  # the zygote's folder, as python SCRIPT sets it
    try:
        runpy.run_path(request["script"], run_name="__main__")
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if not isinstance(e.code, int | None):
            print(e.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001  reported as a script's uncaught error is
        traceback.print_exc()
        code = 1
    atexit._run_exitfuncs()  # what a normal interpreter exit runs (streaming frees its shared memory there)
    sys.stdout.flush()
    sys.stderr.flush()
    return code


def main() -> None:
    for module in sys.argv[1:]:
        importlib.import_module(module)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            os._exit(_child(request))
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        print(json.dumps({"returncode": code}), flush=True)


if __name__ == "__main__":
    main()
