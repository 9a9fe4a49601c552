"""LabPipe for researchers: the session catalog and its preprocessed files, in Python.

The same engines as the ``labpipe`` command (a compiled extension, ``labpipe._labpipe``): the
same filter language and lab schema, the same catalog queries, the same verified and resumable
downloads. This module only shapes their answers into pandas DataFrames and numpy arrays.

Configuration is the CLI's: ``LABPIPE_TABLE``, ``LABPIPE_PROCESSED_BUCKET``,
``LABPIPE_RAW_BUCKET``, ``LABPIPE_STACK_OUTPUTS``, ``LABPIPE_SCHEMA`` (else the stack outputs file
``.labpipe/stack/outputs.json`` in the current folder or a parent) and the AWS SDK's own
(``AWS_ENDPOINT_URL``, ``AWS_REGION``, ``AWS_PROFILE``, credentials). Every function takes the
same names as keyword overrides: ``table=``, ``processed_bucket=``, ``raw_bucket=``,
``stack_outputs=``, ``schema=``, ``endpoint_url=``, ``region=``, ``profile=``.

    >>> import labpipe
    >>> sessions = labpipe.query("fatigue > 3 and hardware_model = 'X200'")
    >>> labpipe.sync("fatigue > 3", "/data/labpipe")
    >>> signals, features = labpipe.load("20210301_090000", "/data/labpipe")
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Union

import numpy as np
import pandas as pd

from . import _labpipe
from ._labpipe import (  # noqa: F401  (re-exported)
    CatalogError,
    ConfigError,
    DataError,
    FilterError,
    LabpipeError,
    SyncError,
)

__version__ = _labpipe.__version__
__all__ = [
    "query",
    "files",
    "sync",
    "load",
    "check_filter",
    "LabpipeError",
    "FilterError",
    "ConfigError",
    "CatalogError",
    "SyncError",
    "DataError",
]

# Columns every session row has; metadata fields follow, one column each.
SESSION_COLUMNS = [
    "session",
    "recorded_at",
    "status",
    "status_message",
    "total_bytes",
    "file_count",
    "pipeline_version",
]
FILE_COLUMNS = ["session", "uri", "bucket", "key", "size", "sha256", "version", "path"]
# The keyword arguments every function takes: the extension's own list, so the two never differ.
SETTINGS = tuple(_labpipe.SETTINGS)


def _config(settings: dict) -> dict:
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise TypeError(
            f"unknown keyword argument(s) {', '.join(unknown)}; the settings are: {', '.join(SETTINGS)}"
        )
    return {k: (None if v is None else os.fspath(v) if isinstance(v, os.PathLike) else str(v)) for k, v in settings.items()}


def check_filter(filter: str, **settings: Any) -> None:
    """Raises FilterError if ``filter`` does not parse or does not fit the lab schema."""
    _labpipe.check_filter(filter, _config(settings))


def sessions_frame(rows: list) -> pd.DataFrame:
    """Rows as ``labpipe query --json`` prints them → one DataFrame row per session.

    Metadata fields become columns of their own (a field named like a built-in column gets a
    ``meta.`` prefix); ``recorded_at`` becomes a timestamp.
    """
    records = []
    meta_keys: list = []
    for row in rows:
        rec = {c: row.get(c) for c in SESSION_COLUMNS}
        for k, v in row.get("metadata", {}).items():
            name = f"meta.{k}" if k in SESSION_COLUMNS else k
            if name not in meta_keys:
                meta_keys.append(name)
            rec[name] = v
        records.append(rec)
    meta_keys.sort()
    df = pd.DataFrame.from_records(records, columns=SESSION_COLUMNS + meta_keys)
    df["recorded_at"] = pd.to_datetime(df["recorded_at"], format="%Y-%m-%dT%H:%M:%S")
    df["pipeline_version"] = df["pipeline_version"].astype("Int64")
    return df


def query(
    filter: str = "",
    *,
    limit: Optional[int] = None,
    as_frame: bool = True,
    **settings: Any,
) -> Union[pd.DataFrame, list]:
    """The sessions ``filter`` selects (the language of ``labpipe query``; empty: all).

    A DataFrame with one row per session (``session``, ``recorded_at``, ``status``,
    ``status_message``, ``total_bytes``, ``file_count``, ``pipeline_version``, then one column per
    metadata field), oldest recording first; ``as_frame=False`` gives the list of dicts that
    ``labpipe query --json`` prints. Raises FilterError (its message shows the filter with a caret
    under the mistake and names the field) for a bad filter.
    """
    rows = json.loads(_labpipe.query(filter, limit, _config(settings)))
    return sessions_frame(rows) if as_frame else rows


def files(
    filter: str = "",
    pipeline_version: Optional[int] = None,
    *,
    limit: Optional[int] = None,
    as_frame: bool = True,
    **settings: Any,
) -> Union[pd.DataFrame, list]:
    """The preprocessed files of the sessions ``filter`` selects (``labpipe query --files``).

    Columns: ``session``, ``uri`` (``s3://bucket/key``), ``bucket``, ``key``, ``size``,
    ``sha256``, ``version`` (pipeline version) and ``path`` (where ``sync`` puts it under its
    destination). ``pipeline_version=None``: each session's latest. Matching sessions without
    outputs are listed in ``df.attrs["unprocessed"]`` (``[{session, status}]``).
    """
    answer = json.loads(_labpipe.files(filter, pipeline_version, limit, _config(settings)))
    if not as_frame:
        return answer["files"]
    df = pd.DataFrame.from_records(answer["files"], columns=FILE_COLUMNS)
    df["version"] = df["version"].astype("Int64")
    df.attrs["unprocessed"] = answer["unprocessed"]
    return df


class _Progress:
    """A one-line progress display on stderr (works in a terminal and in a notebook)."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.total = 0
        self.files = 0
        self.done = 0
        self.shown = False

    @staticmethod
    def _size(n: float) -> str:
        for unit in ("B", "kB", "MB", "GB", "TB"):
            if n < 1000 or unit == "TB":
                return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
            n /= 1000
        return f"{n:.1f} TB"

    def __call__(self, line: str) -> None:
        event = json.loads(line)
        kind = event.get("event")
        if kind == "plan":
            self.total = event["bytes_to_transfer"]
            self.files = event["files_to_transfer"]
            self._show(0)
        elif kind == "progress":
            self._show(event["bytes"])
        elif kind == "file_done":
            self.done += 1
        elif kind == "file_failed":
            self._line(f"{event['path']}: failed: {event['reason']}")
        elif kind == "session_not_processed":
            self._line(f"{event['session']}: not processed yet ({event['status']}), skipped")

    def _show(self, received: int) -> None:
        self.stream.write(
            f"\rlabpipe sync: {self.done}/{self.files} files, {self._size(received)} of {self._size(self.total)}"
        )
        self.stream.flush()
        self.shown = True

    def _line(self, text: str) -> None:
        self.stream.write(("\n" if self.shown else "") + text + "\n")
        self.stream.flush()
        self.shown = False

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


def sync(
    filter: str,
    dest: Union[str, os.PathLike],
    *,
    pipeline_version: Optional[int] = None,
    include: Iterable[str] = (),
    limit: Optional[int] = None,
    progress: Union[bool, Callable[[dict], Any]] = True,
    concurrency: int = 16,
    part_size: int = 8 * 1024 * 1024,
    verify: bool = False,
    dry_run: bool = False,
    **settings: Any,
) -> dict:
    """Downloads the selected sessions' preprocessed files into ``dest/<session>/…``.

    The engine of ``labpipe sync --where FILTER --dest DEST``: parallel, large files in ranged
    parts, each file verified against the catalog's SHA-256 before it gets its name; a re-run
    fetches only what is missing or changed, and an interrupted run (Ctrl-C) resumes. One run
    per folder at a time (a second raises SyncError with ``code == "busy"``).

    ``progress``: True draws a line on stderr, False is silent, a callable gets every event as
    a dict (the ``labpipe sync --json`` lines, plus ``{"event": "progress", "bytes": N}``).
    Returns the summary (``sessions``, ``files``, ``files_transferred``, ``files_skipped``,
    ``files_failed``, ``bytes_total``, ``bytes_transferred``, ``bytes_resumed``, ``seconds``,
    ``dry_run``, ``dest``). A failed file raises SyncError (``code == "incomplete"``).
    """
    shown = None
    if progress is True:
        shown = _Progress()
        on_event = shown
    elif callable(progress):
        def on_event(line: str, _cb=progress) -> None:
            _cb(json.loads(line))
    else:
        on_event = None
    if isinstance(include, str):
        include = [include]
    try:
        summary = _labpipe.sync(
            filter,
            os.fspath(dest),
            pipeline_version,
            list(include),
            limit,
            concurrency,
            part_size,
            verify,
            dry_run,
            on_event,
            _config(settings),
        )
    finally:
        if shown is not None:
            shown.close()
    return json.loads(summary)


def read_features(path: Union[str, os.PathLike]) -> pd.DataFrame:
    """A ``features.parquet`` as a DataFrame (read by the extension: no pyarrow needed).

    One row per channel; ``df.attrs`` holds the file's metadata (``labpipe.session``,
    ``labpipe.pipeline_version``).
    """
    table = json.loads(_labpipe.read_features(os.fspath(path)))
    df = pd.DataFrame({name: values for name, values in table["columns"]})
    for name, values in table["columns"]:
        if values and all(isinstance(v, bool) for v in values):
            df[name] = df[name].astype(bool)
    df.attrs.update(table["metadata"])
    return df


def load(
    session: str,
    dest: Union[str, os.PathLike],
    *,
    pipeline_version: Optional[int] = None,
    fetch: bool = True,
    progress: Union[bool, Callable[[dict], Any]] = False,
    **settings: Any,
) -> "tuple[np.ndarray, pd.DataFrame]":
    """One session's preprocessed outputs: ``(signals, features)``.

    ``signals``: the cleaned signal from ``signals.npy``, float32, shape ``(frames, channels)``
    (memory-mapped, so a large session is not read at once); ``features``: ``features.parquet``,
    one row per channel (``channel``, ``samples``, ``mean``, ``std``, ``rms``, ``min``, ``max``,
    ``flat``, band powers, ``total_power``), with ``features.attrs["summary"]`` holding the
    run's ``summary.json`` when present.

    With ``fetch=True`` (default) the session is first synced into ``dest`` (nothing is fetched
    when the files there are already right); ``fetch=False`` reads what ``dest`` holds.
    """
    folder = Path(dest) / session
    if fetch:
        sync(
            f"session = '{session}'",
            dest,
            pipeline_version=pipeline_version,
            progress=progress,
            **settings,
        )
    signals_path = folder / "signals.npy"
    features_path = folder / "features.parquet"
    for p in (signals_path, features_path):
        if not p.is_file():
            raise DataError(
                f"{p} does not exist; sync the session first (labpipe.sync(\"session = '{session}'\", {os.fspath(dest)!r})) or check that its pipeline version writes it"
            )
    signals = np.load(signals_path, mmap_mode="r", allow_pickle=False)
    features = read_features(features_path)
    summary_path = folder / "summary.json"
    if summary_path.is_file():
        features.attrs["summary"] = json.loads(summary_path.read_text())
    return signals, features
