"""The model registry: immutable, versioned training runs and their artifacts.

A training run writes every plugin's state, the vocabularies, the configuration hash
and a fingerprint of the data it read, then becomes ``ready``; nothing of it changes
after that. Serving processes load one whole run at a time and swap to a newer one
atomically, so a request never sees two runs' plugins or vocabularies mixed.

Small arrays are stored as ``.npz`` bytes in the database (so a fleet sharing the
database shares them). Large ones (embedding tables, ANN indexes, torch state dicts)
are files under the configured artifact directory, loaded memory-mapped where the
format allows, and their sha256 is checked before anything is loaded. Nothing is ever
unpickled: arrays load with ``allow_pickle=False`` and torch with ``weights_only=True``.
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.engine import make_url

from recsdk.errors import RecSDKError
from recsdk.storage import models

#: Run ids are 32 hexadecimal digits (``uuid4().hex``); what is asked for is one or a prefix.
_RUN_ID_TEXT = re.compile(r"[0-9a-f]{1,32}")
#: Artifact holding the run's user and item vocabularies.
VOCABULARY = "vocabulary"
#: Artifact name of what a plugin's ``recsdk_save_state`` returned.
STATE = "state"


class ArtifactError(RecSDKError):
    """An artifact is missing, corrupt (sha256 mismatch) or of an unknown format."""


class UnknownRun(RecSDKError):
    """A run id that the registry does not hold (or that is not ready)."""


@dataclass(frozen=True)
class RunInfo:
    """One row of ``recsdk models list``."""

    id: str
    status: str
    config_hash: str
    data_fingerprint: str | None
    events_through: int | None
    plugins: list[str]
    stats: dict[str, Any]
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    activated_at: datetime | None
    active: bool = False

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for key in ("created_at", "finished_at", "activated_at"):
            out[key] = out[key].isoformat() if out[key] is not None else None
        return out


def default_artifact_dir(database_url: str) -> Path:
    """Beside a SQLite file (``shop.db`` → ``shop-artifacts/``); else ``./recsdk-artifacts``.

    An in-memory SQLite database gets a temporary directory that lives as long as it.
    """
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            return Path(tempfile.mkdtemp(prefix="recsdk-artifacts-"))
        db = Path(url.database)
        return db.with_name(f"{db.stem}-artifacts")
    return Path("recsdk-artifacts")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _arrays_nbytes(arrays: Mapping[str, np.ndarray]) -> int:
    return int(sum(np.asarray(v).nbytes for v in arrays.values()))


class ModelRegistry:
    """Runs and artifacts in the database, large files under ``artifact_dir``."""

    def __init__(self, engine: Engine, artifact_dir: Path, inline_max_bytes: int) -> None:
        self.engine = engine
        self.artifact_dir = Path(artifact_dir)
        self.inline_max_bytes = inline_max_bytes

    # ---- runs --------------------------------------------------------------------------

    def begin_run(self, config_hash: str, plugins: list[str]) -> str:
        run_id = uuid.uuid4().hex
        with self.engine.begin() as conn:
            conn.execute(models.ModelRun.__table__.insert(), [{
                "id": run_id, "status": "training", "config_hash": config_hash,
                "plugins": plugins, "stats": {}, "created_at": datetime.now(UTC),
            }])
        return run_id

    def finish_run(self, run_id: str, *, fingerprint: str, events_through: int | None,
                   stats: Mapping[str, Any], activate: bool = True) -> None:
        """Mark the run ready (immutable from now on) and, by default, activate it.

        Raises :class:`UnknownRun` when the run is no longer training (it was ended
        as timed out meanwhile), so a late finish can never activate it.
        """
        now = datetime.now(UTC)
        values: dict[str, Any] = {"status": "ready", "data_fingerprint": fingerprint,
                                  "events_through": events_through, "stats": dict(stats),
                                  "finished_at": now}
        if activate:
            values["activated_at"] = now
        if not self._update(run_id, values, only_if="training"):
            raise UnknownRun(f"run {run_id} was ended before it finished (timed out?); "
                             "it is not activated")

    def fail_run(self, run_id: str, error: str) -> None:
        """Record a run as failed (if it was still training) and delete its files."""
        self._update(run_id, {"status": "failed", "error": error[:4000],
                              "finished_at": datetime.now(UTC)}, only_if="training")
        shutil.rmtree(self.artifact_dir / run_id, ignore_errors=True)

    def _update(self, run_id: str, values: Mapping[str, Any],
                only_if: str | None = None) -> bool:
        table = models.ModelRun.__table__
        stmt = update(table).where(table.c.id == run_id)
        if only_if is not None:
            stmt = stmt.where(table.c.status == only_if)
        with self.engine.begin() as conn:
            return conn.execute(stmt.values(**values)).rowcount > 0

    def activate(self, run_id: str) -> RunInfo:
        """Make a ready run the one every serving process loads (a rollback, say)."""
        run = self.get(run_id)
        if run.status != "ready":
            raise UnknownRun(f"run {run_id} is {run.status}, only a ready run can be "
                             "activated; `recsdk models list` shows the ready ones")
        self._update(run.id, {"activated_at": datetime.now(UTC)})
        return self.get(run.id)

    def active_run_id(self) -> str | None:
        """The ready run activated last: what serving processes should serve."""
        table = models.ModelRun.__table__
        stmt = (select(table.c.id).where(table.c.status == "ready",
                                         table.c.activated_at.is_not(None))
                .order_by(table.c.activated_at.desc(), table.c.finished_at.desc()).limit(1))
        with self.engine.connect() as conn:
            return conn.execute(stmt).scalar()

    def get(self, run_id: str) -> RunInfo:
        """A run by id or by a unique prefix of at least 6 characters."""
        if not _RUN_ID_TEXT.fullmatch(run_id):  # not one (NUL breaks PostgreSQL's query)
            raise UnknownRun(f"no model run {run_id!r}; `recsdk models list` shows them")
        table = models.ModelRun.__table__
        stmt = select(table)
        stmt = (stmt.where(table.c.id == run_id) if len(run_id) == 32
                else stmt.where(table.c.id.startswith(run_id, autoescape=True)))
        with self.engine.connect() as conn:
            rows = conn.execute(stmt.limit(2)).mappings().all()
        if not rows or (len(run_id) < 6 and rows[0]["id"] != run_id):
            raise UnknownRun(f"no model run {run_id!r}; `recsdk models list` shows them")
        if len(rows) > 1:
            raise UnknownRun(f"run prefix {run_id!r} is ambiguous; give more characters")
        return self._info(rows[0], self.active_run_id())

    def list_runs(self, limit: int = 50) -> list[RunInfo]:
        table = models.ModelRun.__table__
        stmt = select(table).order_by(table.c.created_at.desc()).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        active = self.active_run_id()
        return [self._info(r, active) for r in rows]

    @staticmethod
    def _info(row: Mapping[str, Any], active: str | None) -> RunInfo:
        return RunInfo(
            id=row["id"], status=row["status"], config_hash=row["config_hash"],
            data_fingerprint=row["data_fingerprint"], events_through=row["events_through"],
            plugins=list(row["plugins"] or []), stats=dict(row["stats"] or {}),
            error=row["error"], created_at=row["created_at"],
            finished_at=row["finished_at"], activated_at=row["activated_at"],
            active=row["id"] == active,
        )

    def prune(self, keep: int) -> list[str]:
        """Keep the ``keep`` newest ready runs, the active one and failures among the
        ``keep`` newest runs; delete the rest with their files; return deleted ids."""
        runs = self.list_runs(limit=1_000_000)  # newest first
        ready = [r for r in runs if r.status == "ready"]
        keep_ids = {r.id for r in ready[:keep]} | {r.id for r in runs if r.active}
        # failures among the newest ``keep`` runs stay for diagnosis; a run still
        # training is someone's work in progress
        keep_ids |= {r.id for r in runs[:keep] if r.status == "failed"}
        doomed = [r.id for r in runs if r.id not in keep_ids and r.status != "training"]
        if doomed:
            runs_t, arts = models.ModelRun.__table__, models.ModelArtifact.__table__
            with self.engine.begin() as conn:
                conn.execute(delete(arts).where(arts.c.run_id.in_(doomed)))
                conn.execute(delete(runs_t).where(runs_t.c.id.in_(doomed)))
            for run_id in doomed:
                shutil.rmtree(self.artifact_dir / run_id, ignore_errors=True)
        return doomed

    # ---- artifacts ---------------------------------------------------------------------

    def writer(self, run_id: str, owner: str) -> ArtifactWriter:
        return ArtifactWriter(self, run_id, owner)

    def reader(self, run_id: str, owner: str) -> ArtifactReader:
        table = models.ModelArtifact.__table__
        prefix = f"{owner}:"
        stmt = select(table.c.name, table.c.format, table.c.data, table.c.path,
                      table.c.sha256, table.c.meta).where(
            table.c.run_id == run_id, table.c.name.startswith(prefix, autoescape=True))
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        entries = {r[0][len(prefix):]: _Entry(r[1], r[2], r[3], r[4], dict(r[5] or {}))
                   for r in rows}
        return ArtifactReader(self.artifact_dir, owner, entries)

    def _record(self, run_id: str, name: str, fmt: str, config_hash: str = "", *,
                data: bytes | None = None, path: str | None = None,
                sha256: str | None = None, size: int | None = None,
                meta: Mapping[str, Any] | None = None) -> None:
        table = models.ModelArtifact.__table__
        with self.engine.begin() as conn:
            latest = conn.execute(select(func.max(table.c.version))
                                  .where(table.c.name == name)).scalar()
            conn.execute(table.insert(), [{
                "name": name, "version": (latest or 0) + 1, "config_hash": config_hash,
                "format": fmt, "data": data, "meta": dict(meta or {}),
                "created_at": datetime.now(UTC), "run_id": run_id, "path": path,
                "sha256": sha256, "size": size,
            }])


@dataclass(frozen=True)
class _Entry:
    format: str
    data: bytes | None
    path: str | None
    sha256: str | None
    meta: dict[str, Any]


class ArtifactWriter:
    """What a plugin's ``recsdk_save_state(artifacts=...)`` writes its state with."""

    def __init__(self, registry: ModelRegistry, run_id: str, owner: str) -> None:
        self._registry = registry
        self.run_id = run_id
        self.owner = owner
        self.bytes_written = 0

    def _dir(self) -> Path:
        path = self._registry.artifact_dir / self.run_id / _safe(self.owner)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def save_arrays(self, name: str, arrays: Mapping[str, np.ndarray]) -> None:
        """Named numpy arrays: in the database when small, else ``.npy`` files that
        load memory-mapped. Object arrays must be strings (they are stored as unicode)."""
        clean = {k: _plain(k, v) for k, v in arrays.items()}
        size = _arrays_nbytes(clean)
        self.bytes_written += size
        full = f"{self.owner}:{name}"
        if size <= self._registry.inline_max_bytes:
            buf = io.BytesIO()
            np.savez(buf, **clean)
            data = buf.getvalue()
            self._registry._record(self.run_id, full, "npz", data=data,
                                   sha256=hashlib.sha256(data).hexdigest(), size=len(data))
            return
        folder = self._dir() / _safe(name)
        folder.mkdir(exist_ok=True)
        files = {}
        for key, value in clean.items():
            target = folder / f"{_safe(key)}.npy"
            np.save(target, value, allow_pickle=False)
            files[key] = {"file": target.name, "sha256": sha256_file(target)}
        rel = str(folder.relative_to(self._registry.artifact_dir))
        self._registry._record(self.run_id, full, "npy-dir", path=rel, size=size,
                               meta={"files": files})

    @contextmanager
    def file(self, name: str) -> Iterator[Path]:
        """A path to write one file to (an ANN index, say); recorded with its sha256
        once the block ends without an exception."""
        target = self._dir() / _safe(name)
        yield target
        if not target.is_file():
            raise ArtifactError(f"artifact {self.owner}:{name}: nothing was written to "
                                f"{target}")
        size = target.stat().st_size
        self.bytes_written += size
        self._registry._record(self.run_id, f"{self.owner}:{name}", "file",
                               path=str(target.relative_to(self._registry.artifact_dir)),
                               sha256=sha256_file(target), size=size)

    def save_torch(self, name: str, state_dict: Mapping[str, Any]) -> None:
        """A torch ``state_dict``; read back with ``weights_only=True``."""
        import torch

        with self.file(name) as path:
            torch.save(dict(state_dict), path)


class ArtifactReader:
    """What a plugin's ``recsdk_load_state(artifacts=...)`` reads its state with."""

    def __init__(self, root: Path, owner: str, entries: Mapping[str, _Entry]) -> None:
        self._root = root
        self.owner = owner
        self._entries = dict(entries)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def _entry(self, name: str) -> _Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise ArtifactError(f"run has no artifact {self.owner}:{name}; it has "
                                f"{self.names() or 'none'}") from None

    def _verified(self, rel: str, expected: str | None, label: str) -> Path:
        path = (self._root / rel).resolve()
        if not path.is_relative_to(self._root.resolve()):
            raise ArtifactError(f"artifact {label} points outside the artifact directory")
        if not path.is_file():
            raise ArtifactError(f"artifact {label}: file {path} is missing (is "
                                "models.artifact_dir shared by every process?)")
        if expected is None or sha256_file(path) != expected:
            raise ArtifactError(f"artifact {label}: sha256 of {path} does not match the "
                                "registry; the file was changed or corrupted")
        return path

    def load_arrays(self, name: str, mmap: bool = True) -> dict[str, np.ndarray]:
        entry = self._entry(name)
        label = f"{self.owner}:{name}"
        if entry.format == "npz":
            assert entry.data is not None
            if entry.sha256 and hashlib.sha256(entry.data).hexdigest() != entry.sha256:
                raise ArtifactError(f"artifact {label}: sha256 mismatch in the database")
            with np.load(io.BytesIO(entry.data), allow_pickle=False) as npz:
                return {k: npz[k] for k in npz.files}
        if entry.format == "npy-dir":
            out = {}
            for key, info in entry.meta["files"].items():
                path = self._verified(f"{entry.path}/{info['file']}", info["sha256"], label)
                out[key] = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
            return out
        raise ArtifactError(f"artifact {label} is a {entry.format}, not arrays")

    def path(self, name: str) -> Path:
        """The verified path of a file artifact."""
        entry = self._entry(name)
        if entry.format != "file" or entry.path is None:
            raise ArtifactError(f"artifact {self.owner}:{name} is {entry.format}, not a file")
        return self._verified(entry.path, entry.sha256, f"{self.owner}:{name}")

    def load_torch(self, name: str, map_location: str = "cpu") -> dict[str, Any]:
        """A torch ``state_dict`` loaded with ``weights_only=True`` (no pickle code)."""
        import torch

        return torch.load(self.path(name), map_location=map_location, weights_only=True)


def _safe(name: str) -> str:
    """A file-name-safe rendering of a plugin or artifact name."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip(".")
    return cleaned or "_"


def _plain(key: str, value: Any) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == object:
        try:
            return arr.astype(str)
        except (TypeError, ValueError) as exc:
            raise ArtifactError(f"array {key!r} holds Python objects; only numbers and "
                                "strings can be saved (no pickle)") from exc
    return arr
