#!/usr/bin/env python3
"""Runs the workspace's test binaries side by side: `cargo test`, in lanes.

`cargo test` runs its test binaries one after another. Ours are mostly end-to-end suites that
spend their time waiting on the servers they start (moto, SeaweedFS, dynalite, a WebKit window):
measured alone, `operations` kept the machine 12 % busy, the app suite 20 %, `query_sync` 51 %. So
this script compiles every test target once (`cargo test --no-run`, the same invocation and feature
set as before), then runs the binaries it built in LANES parallel lanes, longest first, each binary
with its tests' own parallelism as `cargo test` would run it, and its doc tests through cargo.

Why not cargo-nextest, which schedules tests across binaries: it runs every test in a process of
its own, and our suites share one emulator per test binary (`Emulator::shared`, started once, 1.1 s
and ~1.2 CPU-s for moto alone); a process per test would start one per test. A binary stays the
unit here, as in `cargo test`.

Output: each binary's output is printed whole when it ends (the same `test result:` lines as
`cargo test`), so lanes never interleave; then a table of every job with its time. Each job is
bounded (--timeout); a job that runs over is killed with its process group and counts as failed.
The times of a run are kept in CARGO_TARGET_DIR (`labpipe-test-times.json`) to order the next run's
jobs longest first; a binary with no time yet goes first.

usage: scripts/test_lanes.py [--lanes N] [--timeout SECS] [--run PACKAGE/TARGET=COMMAND ...]
                             [--job NAME=COMMAND ...] -- CARGO_TEST_ARGS...
  --run gives one target its own command line, `{}` standing for the test binary, e.g.
  --run 'labpipe-e2e-app/app=xvfb-run -a dbus-run-session -- {} --test-threads=1';
  --job adds a job that is not a test binary (another test runner), run with bash -c.
Exit status: 0 when every job passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

TIMES_FILE = "labpipe-test-times.json"


@dataclass
class Job:
    """One test binary (or the doc tests), and how it went."""

    name: str  # "package/target (kind)", stable across runs: the key of the times file
    argv: list[str]
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    returncode: int | None = None
    output: str = ""


def compile_tests(cargo_args: list[str]) -> list[dict]:
    """`cargo test --no-run`; the compiler-artifact messages of the test executables it built."""
    cmd = ["cargo", "test", *cargo_args, "--no-run", "--message-format=json-render-diagnostics"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    artifacts = []
    assert proc.stdout is not None
    for line in proc.stdout:
        if not line.startswith("{"):
            continue
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("profile", {}).get("test") and msg.get("executable"):
            artifacts.append(msg)
    if proc.wait() != 0:
        sys.exit(f"test_lanes: `{shlex.join(cmd)}` failed (exit {proc.returncode})")
    return artifacts


def package_of(package_id: str) -> tuple[str, str]:
    """(name, version) from a package id: `path+file:///…/crates/aws#labpipe-aws@0.1.0`, or
    `path+file:///…/aws#0.1.0` when the folder is the name."""
    tail = package_id.rsplit("#", 1)[-1]
    if "@" in tail:
        name, version = tail.split("@", 1)
    else:
        name, version = package_id.split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1], tail
    return name, version


def sysroot_lib() -> str:
    sysroot = subprocess.run(["rustc", "--print", "sysroot"], capture_output=True, text=True, check=True)
    host = subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True).stdout
    triple = next(line.split(": ", 1)[1] for line in host.splitlines() if line.startswith("host: "))
    return str(Path(sysroot.stdout.strip()) / "lib" / "rustlib" / triple / "lib")


def binary_jobs(artifacts: list[dict], runs: dict[str, str]) -> list[Job]:
    """A job per test binary, with the environment `cargo test` gives it: its package folder as
    the working directory, CARGO_MANIFEST_DIR and friends, the build's libraries on the loader path."""
    cargo = os.environ.get("CARGO") or subprocess.run(
        ["rustup", "which", "cargo"], capture_output=True, text=True
    ).stdout.strip() or "cargo"
    jobs = []
    # cargo's loader path for a test: the build's deps and output folders, then the toolchain's.
    deps = Path(artifacts[0]["executable"]).parent if artifacts else Path()
    lib_path = os.pathsep.join(
        p for p in [str(deps), str(deps.parent), sysroot_lib(), os.environ.get("LD_LIBRARY_PATH", "")] if p
    )
    for art in artifacts:
        exe = Path(art["executable"])
        manifest = Path(art["manifest_path"])
        pkg, version = package_of(art["package_id"])
        target = art["target"]["name"]
        kind = art["target"]["kind"][0]
        key = f"{pkg}/{target}"
        argv = [str(exe)]
        if key in runs:
            argv = [str(exe) if a == "{}" else a for a in shlex.split(runs[key])]
        major, minor, patch = (version.split("-")[0].split(".") + ["0", "0"])[:3]
        env = {
            "CARGO": cargo,
            "CARGO_MANIFEST_DIR": str(manifest.parent),
            "CARGO_MANIFEST_PATH": str(manifest),
            "CARGO_PKG_NAME": pkg,
            "CARGO_PKG_VERSION": version,
            "CARGO_PKG_VERSION_MAJOR": major,
            "CARGO_PKG_VERSION_MINOR": minor,
            "CARGO_PKG_VERSION_PATCH": patch,
            "LD_LIBRARY_PATH": lib_path,
        }
        jobs.append(Job(name=f"{key} ({kind})", argv=argv, cwd=manifest.parent, env=env))
    return jobs


class Runner:
    def __init__(self, lanes: int, timeout: float) -> None:
        self.lanes = lanes
        self.timeout = timeout
        self.lock = threading.Lock()
        self.running: dict[str, subprocess.Popen] = {}
        self.stopping = False

    def run(self, jobs: list[Job]) -> None:
        queue = list(jobs)
        threads = [threading.Thread(target=self.lane, args=(queue,), daemon=True) for _ in range(self.lanes)]
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.5)

    def lane(self, queue: list[Job]) -> None:
        while True:
            with self.lock:
                if not queue or self.stopping:
                    return
                job = queue.pop(0)
            self.run_one(job)
            with self.lock:
                status = "ok" if job.returncode == 0 else f"FAILED (exit {job.returncode})"
                print(f"     Running {job.name}: {status}, {job.seconds:.1f} s", flush=True)
                sys.stdout.write(job.output)
                sys.stdout.flush()

    def run_one(self, job: Job) -> None:
        t = time.monotonic()
        proc = subprocess.Popen(
            job.argv,
            cwd=job.cwd,
            env={**os.environ, **job.env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,  # its own process group: a timeout kills its servers too
        )
        with self.lock:
            self.running[job.name] = proc
        try:
            job.output, _ = proc.communicate(timeout=self.timeout)
            job.returncode = proc.returncode
        except subprocess.TimeoutExpired:
            kill_group(proc)
            job.output, _ = proc.communicate()
            job.output += f"\ntest_lanes: {job.name} ran over {self.timeout:.0f} s and was killed\n"
            job.returncode = -9
        finally:
            with self.lock:
                self.running.pop(job.name, None)
        job.seconds = time.monotonic() - t

    def stop(self, *_: object) -> None:
        """On SIGINT/SIGTERM: kill every running job's process group, then exit."""
        with self.lock:
            self.stopping = True
            procs = list(self.running.values())
        for p in procs:
            kill_group(p)
        sys.exit(130)


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def load_times(path: Path) -> dict[str, float]:
    try:
        return {k: float(v) for k, v in json.loads(path.read_text()).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Compile every test target once, then run the test binaries in parallel lanes.",
        epilog="Arguments after -- go to `cargo test` (e.g. --workspace --exclude PKG).",
    )
    parser.add_argument("--lanes", type=int, default=3, help="binaries run at once (default 3)")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds one binary may take (default 1200)")
    parser.add_argument("--run", action="append", default=[], metavar="PACKAGE/TARGET=COMMAND",
                        help="run this test binary through COMMAND, {} standing for the binary")
    parser.add_argument("--job", action="append", default=[], metavar="NAME=COMMAND",
                        help="one more job beside the test binaries: a bash command line run in this folder")
    parser.add_argument("--no-doc", action="store_true", help="skip the doc tests")
    parser.add_argument("cargo_args", nargs="*")
    args = parser.parse_args()
    runs = {}
    for spec in args.run:
        key, sep, command = spec.partition("=")
        if not sep or "{}" not in command:
            parser.error(f"--run {spec!r}: expected PACKAGE/TARGET=COMMAND with {{}} for the binary")
        runs[key] = command

    artifacts = compile_tests(args.cargo_args)
    jobs = binary_jobs(artifacts, runs)
    unknown = set(runs) - {j.name.split(" ")[0] for j in jobs}
    if unknown:
        sys.exit(f"test_lanes: --run names no test binary that was built: {', '.join(sorted(unknown))}")
    for spec in args.job:
        name, sep, command = spec.partition("=")
        if not sep or not command.strip():
            parser.error(f"--job {spec!r}: expected NAME=COMMAND")
        jobs.append(Job(name=name, argv=["bash", "-c", command], cwd=Path.cwd()))
    if not args.no_doc:
        jobs.append(Job(name="doc tests", argv=["cargo", "test", *args.cargo_args, "--doc"], cwd=Path.cwd()))

    target_dir = Path(os.environ.get("CARGO_TARGET_DIR", "target"))
    times_path = target_dir / TIMES_FILE
    times = load_times(times_path)
    jobs.sort(key=lambda j: -times.get(j.name, float("inf")))

    runner = Runner(args.lanes, args.timeout)
    signal.signal(signal.SIGTERM, runner.stop)
    signal.signal(signal.SIGINT, runner.stop)
    started = time.monotonic()
    print(f"test_lanes: {len(jobs)} jobs in {args.lanes} lanes, longest first", flush=True)
    runner.run(jobs)
    wall = time.monotonic() - started

    times.update({j.name: round(j.seconds, 1) for j in jobs if j.returncode is not None})
    try:
        times_path.write_text(json.dumps(times, indent=1, sort_keys=True))
    except OSError as e:
        print(f"test_lanes: could not keep the times in {times_path}: {e}", file=sys.stderr)

    failed = [j for j in jobs if j.returncode != 0]
    busy = sum(j.seconds for j in jobs)
    print(f"\ntest_lanes: {len(jobs)} jobs, {wall:.0f} s wall in {args.lanes} lanes ({busy:.0f} s one after another)")
    for j in sorted(jobs, key=lambda j: -j.seconds)[:8]:
        print(f"  {j.seconds:7.1f} s  {j.name}")
    if failed:
        print(f"test_lanes: {len(failed)} failed: " + ", ".join(j.name for j in failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
