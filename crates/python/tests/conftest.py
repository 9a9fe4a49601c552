"""Fixtures of the `labpipe` Python package's suite: a wheel, a fresh venv, a real local stack.

Everything the tests compare against comes from real parts, as the Rust suites do:
- the wheel is built by maturin from this crate (``--profile dev``: the tests check behaviour,
  not speed; ``LABPIPE_PY_WHEEL=path.whl`` reuses one) and installed into a *fresh* venv, so the
  package is imported from the wheel, never from the source tree. numpy and pandas come from
  the development venv through a ``.pth`` file, so the install needs no network;
- the emulator is the development venv's moto server on 127.0.0.1 (``tests/python/local_emulator.py``,
  shared with the infra suites), started with a deadline and stopped at the end;
- the stack is ``infra/template.yaml`` deployed by ``infra/deploy_local.py``; the data are
  sample sessions from ``labpipe dev generate``, uploaded with ``labpipe upload`` and ingested
  and preprocessed by the backend's ``local-runner``, as ``scripts/demo.sh`` does. So the
  catalog, the output records and ``signals.npy`` / ``features.parquet`` are the pipeline's own.

The binaries are the workspace's debug builds (``scripts/test.sh`` builds them in its build
stage just before); ``LABPIPE_BIN_DIR`` points elsewhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests" / "python"))
from local_emulator import moto_server  # noqa: E402

CRATE = Path(__file__).resolve().parents[1]
REPO = CRATE.parents[1]
STEP_TIMEOUT = 300


def _target_dir() -> Path:
    return Path(os.environ.get("CARGO_TARGET_DIR") or Path.home() / ".cache/labpipe/target")


def _bin(name: str) -> Path:
    folder = Path(os.environ.get("LABPIPE_BIN_DIR") or _target_dir() / "debug")
    path = folder / name
    if not path.is_file():
        pytest.fail(
            f"{path} not found: build it first (cargo build --workspace --bins), or set LABPIPE_BIN_DIR",
            pytrace=False,
        )
    return path


def _run(cmd, *, cwd=None, env=None, timeout=STEP_TIMEOUT, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, cmd))} exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
        )
    return proc


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    given = os.environ.get("LABPIPE_PY_WHEEL")
    if given:
        return Path(given)
    out = tmp_path_factory.mktemp("wheel")
    maturin = Path(sys.executable).parent / "maturin"
    if not maturin.is_file():
        pytest.fail(f"{maturin} not found: run scripts/bootstrap.sh venv", pytrace=False)
    started = time.monotonic()
    _run(
        [maturin, "build", "--profile", "dev", "-m", CRATE / "Cargo.toml", "-o", out, "-i", sys.executable],
        timeout=1800,
    )
    (found,) = out.glob("labpipe-*.whl")
    print(f"\nwheel {found.name}: {found.stat().st_size / 1e6:.1f} MB, built in {time.monotonic() - started:.0f}s")
    return found


@pytest.fixture(scope="session")
def venv_python(wheel, tmp_path_factory) -> Path:
    """A fresh venv with only the wheel installed (its dependencies seen through a .pth)."""
    root = tmp_path_factory.mktemp("venv")
    base = getattr(sys, "_base_executable", sys.executable)
    _run([base, "-m", "venv", root])
    python = root / "bin" / "python"
    purelib = Path(
        _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    )
    (purelib / "labpipe-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([python, "-m", "pip", "install", "--no-index", "--disable-pip-version-check", "-q", wheel])
    return python


class Stack:
    """The running emulator, the deployed stack and the folder whose outputs file names it."""

    def __init__(self, endpoint: str, workdir: Path, outputs: dict):
        self.endpoint = endpoint
        self.workdir = workdir
        self.outputs = outputs
        self.labpipe = _bin("labpipe")

    def env(self, **extra) -> dict:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("LABPIPE_", "AWS_")) and k != "PYTHONPATH"
        }
        env.update(
            AWS_ENDPOINT_URL=self.endpoint,
            AWS_ACCESS_KEY_ID="test",
            AWS_SECRET_ACCESS_KEY="test",
            AWS_REGION="us-east-1",
            LABPIPE_JOURNAL=str(self.workdir / "journal.sqlite3"),
            PYTHONDONTWRITEBYTECODE="1",
        )
        env.update(extra)
        return env

    def cli(self, *args, cwd=None, check=True, env=None) -> subprocess.CompletedProcess:
        return _run([self.labpipe, *args], cwd=cwd or self.workdir, env=env or self.env(), check=check)

    def cli_json(self, *args):
        return json.loads(self.cli(*args).stdout)


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("lab")
    with moto_server(workdir) as endpoint:
        outputs_file = workdir / ".labpipe" / "stack" / "outputs.json"
        s = Stack(endpoint, workdir, {})
        _run(
            [sys.executable, REPO / "infra" / "deploy_local.py", "--endpoint", endpoint, "--outputs", outputs_file],
            env=s.env(),
        )
        s.outputs = json.loads(outputs_file.read_text())
        # Three sessions of different channel counts (the generator varies the hardware).
        s.cli("dev", "generate", "--out", workdir / "sessions", "--count", "3", "--size-mb", "2", "--seed", "7")
        s.cli("upload", workdir / "sessions", "--json")
        _run(
            [_bin("local-runner"), "--until-idle", "--wait", "1"],
            cwd=workdir,
            env=s.env(),
        )
        yield s


@pytest.fixture(scope="session")
def py(venv_python, stack):
    """Runs a snippet in the fresh venv (cwd: the stack's folder) and returns what it prints as JSON."""

    def run(code: str, *, cwd=None, env=None, check=True):
        proc = _run(
            [venv_python, "-c", "import json, labpipe\n" + code],
            cwd=cwd or stack.workdir,
            env=env or stack.env(),
            check=False,
        )
        if not check:
            return proc
        if proc.returncode != 0:
            raise AssertionError(f"python snippet failed ({proc.returncode}):\n{code}\n--- stderr\n{proc.stderr[-4000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])

    return run
