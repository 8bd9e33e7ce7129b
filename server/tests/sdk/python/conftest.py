"""Starts `ciphervec serve` for the SDK tests: the release binary (CIPHERVEC_BIN, else
target/release/ciphervec), a temporary database folder, a random service API key, a free
loopback port. The server's log is kept so that tests can check it holds no secret."""

import os
import pathlib
import secrets
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[4]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Serve:
    """A running server: its URL, API key, folder and log."""

    def __init__(self, binary, extra_args=(), db_dir=None, **extra_env):
        self.dir = tempfile.TemporaryDirectory(prefix="cv-serve-")
        self.db = pathlib.Path(db_dir) if db_dir else pathlib.Path(self.dir.name) / "db"
        self.api_key = "sdk-" + secrets.token_hex(16)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = pathlib.Path(self.dir.name) / "serve.log"
        env = dict(os.environ, CIPHERVEC_API_KEY=self.api_key, **extra_env)
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(binary), "serve", str(self.db),
             "--listen", f"127.0.0.1:{self.port}", *extra_args],
            env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(self.url + "/v1/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ciphervec serve did not start: {self.log_path.read_text()}")
            time.sleep(0.05)

    def logs(self):
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        finally:
            self.log.close()
            self.dir.cleanup()


def _binary():
    binary = pathlib.Path(os.environ.get("CIPHERVEC_BIN", ROOT / "target" / "release" / "ciphervec"))
    if not binary.exists():
        pytest.fail(f"no ciphervec binary at {binary}: run scripts/test_server.sh (it builds one)")
    return binary


@pytest.fixture(scope="session")
def serve():
    server = Serve(_binary())
    yield server
    server.stop()
