"""The AWS emulator (moto server) for the Python test suites, as `tests/src/server.rs` is for the
Rust ones: on a free port of 127.0.0.1, from the repository's `.venv`, its log in a folder of the
test's, killed with the test process (Linux: PR_SET_PDEATHSIG), stopped when the `with` ends.

    with moto_server(log_dir) as endpoint:                       # http://127.0.0.1:PORT
    with moto_server(log_dir, unchecked_requests=3) as endpoint:  # IAM checked after 3 requests

Used by infra/tests, infra/node_tests (through infra/tests) and crates/python/tests.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
HOST = "127.0.0.1"
START_TIMEOUT = float(os.environ.get("LABPIPE_EMULATOR_TIMEOUT_SECS", "60"))
PORT_ATTEMPTS = 3


def die_with_parent() -> None:
    """The emulator gets SIGKILL if the test process dies (Linux)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def answers(url: str) -> bool:
    """True once the server returns any HTTP response."""
    try:
        urllib.request.urlopen(url + "/moto-api/", timeout=1)
    except urllib.error.HTTPError:
        pass
    except OSError:
        return False
    return True


@contextlib.contextmanager
def moto_server(log_dir: Path, *, unchecked_requests: int | None = None) -> Iterator[str]:
    """A fresh emulator; yields its endpoint. `unchecked_requests`: moto checks IAM on every
    request after the first N (`INITIAL_NO_AUTH_ACTION_COUNT`), as `Emulator::start_with_authorization`."""
    moto = VENV_BIN / "moto_server"
    if not moto.is_file():
        raise AssertionError(f"moto server not found at {moto}: run scripts/bootstrap.sh")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    if unchecked_requests is not None:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(unchecked_requests)
    log = Path(log_dir) / "moto.log"
    for _attempt in range(PORT_ATTEMPTS):
        url = f"http://{HOST}:{free_port()}"
        with open(log, "w") as out:
            proc = subprocess.Popen(
                [str(moto), "-H", HOST, "-p", url.rsplit(":", 1)[1]], env=env,
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while proc.poll() is None and not answers(url) and time.monotonic() < deadline:
            time.sleep(0.1)
        if proc.poll() is None and answers(url):
            break
        proc.kill()
        proc.wait()
        if "Address already in use" not in log.read_text():
            raise AssertionError(
                f"moto server did not start within {START_TIMEOUT:.0f}s (raise LABPIPE_EMULATOR_TIMEOUT_SECS "
                f"on a slow machine); log {log}:\n{log.read_text()[-2000:]}")
    else:
        raise AssertionError(f"moto server port was taken {PORT_ATTEMPTS} times in a row")
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
