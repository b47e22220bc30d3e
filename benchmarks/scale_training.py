"""Training at scale: reading events and fitting plugins, old path against new.

Generates ``--events`` synthetic events (``recsdk.data.synthetic.generate_shop``,
streamed, never all in memory), imports them into a fresh PostgreSQL database of its
own (``--database``, created here and dropped at the end unless ``--keep``; reused
as it is when it already holds that many events) and, with ``--sqlite FILE``, into a
SQLite file too, by ``Store.copy_events`` without the generated event ids. Then,
for each case and path, a fresh child interpreter reads the events and trains, and
reports:

* read (s): catalogue, events and the :class:`~recsdk.dataset.InteractionDataset`;
* train (s): ``RecSDK.fit_dataset`` (plugins' fit, artifacts saved to the registry,
  fingerprint, activation), as ``RecSDK.fit`` runs it;
* peak RSS: the child's ``VmHWM`` (whole process, read and fit together).

Paths: ``old`` is ``Store.events_frame`` + ``InteractionDataset.from_frame`` (one
frame of Python strings); ``new`` is ``RecSDK.read_training_data``
(``Store.iter_event_columns`` + ``InteractionDataset.from_event_chunks``, what
``RecSDK.fit`` reads). With ``--old-tree DIR`` (a checkout of the code before the
change, e.g. ``git worktree add --detach ../before main``) the old path runs that
checkout's code, its dataset dtypes and fingerprint included; without it, this
checkout's ``from_frame``.

Cases: ``popularity``; ``als``; ``item_knn``; ``defaults``: the quick start's
plugins (``config/demo.toml``: als, category_popularity, trending, popularity,
cooccurrence, rating_mf), offline evaluation off; and each of those plugins alone
(``category_popularity``, ``trending``, ``cooccurrence``, ``rating_mf``), to see
where the defaults' memory goes.

Run (from the repository root; .shim holds ``recsdk_plugins -> ../plugins``):
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 PYTHONPATH=.shim:. \\
        python benchmarks/scale_training.py --events 1000000 [--cases popularity,als]
        [--paths old,new] [--old-tree ../before] [--old-max-events 5000000]
        [--sqlite /tmp/scale.db] [--database scale_bench] [--keep] [--shared-read]

``--shared-read`` (new path only; how 100M was run): one child reads the events once,
then trains each case in a process forked from it, so the events are read once, not
once per case. A fork starts with the reader's pages, so a case's peak is what a
process that had just read would reach; the read's own transient peak is the "read
peak" column. ``--parallel N`` trains N cases at once. ``--cases ""`` only imports
(per-chunk write times, importer's peak RSS).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

POSTGRES_SERVER = os.environ.get("RECSDK_BENCH_POSTGRES_URL",
                                 "postgresql://postgres@127.0.0.1:5432/test")
#: the quick start's plugins (config/demo.toml), offline evaluation off
DEFAULTS: dict[str, dict[str, Any]] = {
    "als": {"weight": 1.0}, "category_popularity": {"weight": 0.3},
    "trending": {"weight": 0.1, "half_life_hours": 72}, "popularity": {"weight": 0.1},
    "cooccurrence": {"weight": 0.1}, "rating_mf": {"weight": 0.0}}
#: a case per plugin of the defaults (where one's memory goes), then the named ones
CASES: dict[str, dict[str, dict[str, Any]]] = {
    **{name: {name: params} for name, params in DEFAULTS.items()},
    "popularity": {"popularity": {}},
    "als": {"als": {}},
    "item_knn": {"item_knn": {}},
    "defaults": DEFAULTS,
}
ROOT = Path(__file__).resolve().parents[1]
#: generated events per COPY
CHUNK = 200_000


# ---- child: one case, one path, in a fresh interpreter --------------------------------

def vm_hwm_mib() -> float:
    """Peak resident memory of this process so far (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def vm_rss_mib() -> float:
    """Resident memory of this process now (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def sdk_for(url: str, case: str, artifacts: str) -> Any:
    from recsdk import RecSDK

    plugins = CASES[case]
    fallback = "popularity" if "popularity" in plugins else next(iter(plugins))
    return RecSDK({"database_url": url, "seed": 42, "plugins": plugins,
                   "pipeline": {"fallback": fallback},
                   "models": {"artifact_dir": artifacts}}, environ={},
                  serve_models=False)  # as `recsdk train`: no earlier run loaded


def shared_read_child(spec: dict[str, Any]) -> dict[str, Any]:
    """Read the events once (new path), then train each case in a forked process.

    A forked process starts with the reader's resident pages (its ``VmHWM`` starts at
    the reader's RSS at the fork, as a process that had just read would stand), so each
    case's peak is the dataset plus what its fit adds; the read's own transient peak is
    reported once, as ``read_peak_mib``. Saves re-reading events per case at 100M.
    """
    import ctypes
    import gc

    with tempfile.TemporaryDirectory(prefix="scale_training_") as artifacts:
        reader = sdk_for(spec["url"], "popularity", artifacts)
        try:
            started = time.perf_counter()
            dataset, through = reader.read_training_data()
            read_s = time.perf_counter() - started
        finally:
            reader.close()
        read_peak = vm_hwm_mib()
        gc.collect()
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # what a fresh reader would hold
        results: dict[str, Any] = {"events": len(dataset.interactions),
                                   "users": dataset.n_users, "items": dataset.n_items,
                                   "read_s": read_s, "read_peak_mib": read_peak,
                                   "rss_after_read_mib": vm_rss_mib(), "cases": {}}
        print(json.dumps(results), file=sys.stderr, flush=True)
        pending, running = list(spec["cases"]), {}
        while pending or running:
            while pending and len(running) < spec.get("parallel", 1):
                case = pending.pop(0)
                pid, pipe = _start_fork(spec["url"], case, dataset, through, artifacts)
                running[pid] = (case, pipe)
            pid, status = os.wait()
            case, pipe = running.pop(pid)
            with os.fdopen(pipe) as reader_end:
                text = reader_end.read()
            results["cases"][case] = (json.loads(text) if text else
                                      {"error": f"killed (wait status {status})"})
            print(case, json.dumps(results["cases"][case]), file=sys.stderr, flush=True)
    return results


def _start_fork(url: str, case: str, dataset: Any, through: int,
                artifacts: str) -> tuple[int, int]:
    """Fork a process that trains ``case`` and writes its figures (JSON) to a pipe;
    the pid and the pipe's reading end."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the case's own process
        os.close(read_fd)
        # out of memory, the kernel kills this fork, not the reader or the database
        Path("/proc/self/oom_score_adj").write_text("1000")
        try:
            sdk = sdk_for(url, case, artifacts)
            started = time.perf_counter()
            sdk.fit_dataset(dataset, save=True, started=started, events_through=through)
            out = {"train_s": time.perf_counter() - started, "peak_mib": vm_hwm_mib()}
            sdk.close()
        except BaseException as exc:  # reported to the parent, which carries on
            out = {"error": f"{type(exc).__name__}: {exc}", "peak_mib": vm_hwm_mib()}
        os.write(write_fd, json.dumps(out).encode())
        os._exit(0)
    os.close(write_fd)
    return pid, read_fd


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Read and train as ``RecSDK.fit`` does, timing the two phases."""
    if "cases" in spec:
        return shared_read_child(spec)
    from recsdk.dataset import InteractionDataset

    with tempfile.TemporaryDirectory(prefix="scale_training_") as artifacts:
        sdk = sdk_for(spec["url"], spec["case"], artifacts)
        try:
            started = time.perf_counter()
            if spec["path"] == "old":  # the frame stays referenced during fit, as it did
                # (an --old-tree checkout predates read_training_data: spelled out)
                catalog = sdk._read_catalog()
                through = sdk.store.max_event_id()
                events = sdk.store.events_frame(through_id=through)
                dataset = InteractionDataset.from_frame(events, catalog,
                                                        sdk.settings.event_weights)
            else:
                dataset, through = sdk.read_training_data()
            read_s = time.perf_counter() - started
            read_peak = vm_hwm_mib()
            report = sdk.fit_dataset(dataset, save=True, started=time.perf_counter(),
                                     events_through=through)
            train_s = time.perf_counter() - started - read_s
        finally:
            sdk.close()
    return {"events": report.interactions, "users": report.users, "items": report.items,
            "read_s": read_s, "train_s": train_s, "read_peak_mib": read_peak,
            "peak_mib": vm_hwm_mib()}


# ---- parent ---------------------------------------------------------------------------

def shared_rows(kind: str, shared: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """A ``--shared-read`` result as the table's rows: every case shows the one read."""
    if "error" in shared:
        return [(kind, "all", {"new": shared})]
    read = {k: shared[k] for k in ("read_s", "read_peak_mib")}
    return [(kind, case, {"new (shared read)": {**read, **r}})
            for case, r in shared["cases"].items()]


def database_url(name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(POSTGRES_SERVER).set(database=name).render_as_string(hide_password=False)


def connect(url: str, autocommit: bool = False) -> Any:
    """A psycopg connection to a database given by its SQLAlchemy URL."""
    import psycopg
    from sqlalchemy.engine import make_url

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    return psycopg.connect(dsn, autocommit=autocommit)


def admin(statement: str, database: str | None = None) -> None:
    """Run ``statement`` on the server (in ``database``, else the server URL's own)."""
    url = POSTGRES_SERVER if database is None else database_url(database)
    with connect(url, autocommit=True) as conn:
        conn.execute(statement)


def stored_events(url: str) -> int | None:
    """Events in the database, None when it does not exist or has no schema."""
    from sqlalchemy.exc import SQLAlchemyError

    from recsdk.storage.store import Store

    store = Store(url)
    try:
        return store.count_events()
    except SQLAlchemyError:
        return None
    finally:
        store.close()


def fill(url: str, n_events: int, postgres: bool, name: str) -> dict[str, float] | None:
    """Import the synthetic shop unless the database already holds it; import figures.

    A database an interrupted run left with the whole catalogue and every user but not
    all events (PostgreSQL) keeps them: its events are emptied and streamed again, so a
    100M run does not rewrite 2.5 million users. The events' rate is timed from the
    generator's first chunk; the catalogue and users are timed apart.
    """
    from recsdk.data.frames import ShopData
    from recsdk.data.synthetic import generate_shop
    from recsdk.storage.store import Store

    have = stored_events(url)
    if have == n_events:
        print(f"{url}: reusing {have:,} stored events", flush=True)
        return None
    shop = generate_shop(n_events, seed=42, materialize=False)
    resume = postgres and have is not None and _has_people(url, shop)
    if resume:
        admin("TRUNCATE events, event_keys RESTART IDENTITY", database=name)
    elif postgres:
        if have is not None or _exists(name):
            admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin(f'CREATE DATABASE "{name}"')
    else:
        Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
    store = Store(url)
    try:
        store.upgrade()
        began = time.perf_counter()
        if not resume:
            # catalogue and users as the CLI writes them; events by bulk COPY without
            # their event ids (idempotency keys would route them through add_events)
            ShopData(shop.categories, shop.items, shop.users).write_to(store, validate=False)
        people_s = time.perf_counter() - began
        before = server_state(url) if postgres else {}
        started = time.perf_counter()
        stored, writes = 0, []
        for chunk in shop.iter_events(CHUNK):
            began = time.perf_counter()
            stored += store.copy_events(chunk.drop(columns=["event_id"], errors="ignore"))
            writes.append(time.perf_counter() - began)
            if len(writes) % 50 == 0:
                print(f"  {stored:,} events, chunk {writes[-1]:.2f} s, "
                      f"{stored / (time.perf_counter() - started):,.0f} events/s so far, "
                      f"peak RSS {vm_hwm_mib():,.0f} MiB", flush=True)
        seconds = time.perf_counter() - started
        after = server_state(url) if postgres else {}
    finally:
        store.close()
    figures = {"seconds": seconds, "events": stored, "write_s": sum(writes),
               "catalogue_users_s": people_s, "chunk_first_s": writes[0],
               "chunk_median_s": statistics.median(writes), "chunk_last_s": writes[-1],
               "peak_rss_mib": vm_hwm_mib()}
    print(f"{url}: {len(shop.items):,} items and {len(shop.users):,} users "
          + ("kept" if resume else f"written in {people_s:.1f} s") + "; "
          f"{stored:,} events in {seconds:.1f} s ({stored / seconds:,.0f} events/s with "
          f"the generation; {stored / figures['write_s']:,.0f} events/s written); chunks of "
          f"{CHUNK:,}: first {writes[0]:.2f} s, median {figures['chunk_median_s']:.2f} s, "
          f"last {writes[-1]:.2f} s (last/first {writes[-1] / writes[0]:.2f}); "
          f"importer's peak RSS {figures['peak_rss_mib']:,.0f} MiB", flush=True)
    if postgres:
        figures["server"] = {name: after[name] for name in SERVER_SETTINGS}
        for counter in ("wal_bytes", "wal_fpi", "checkpoints", "buffers_backend"):
            figures[counter] = float(after[counter]) - float(before[counter])
        print(f"server {figures['server']}: WAL {figures['wal_bytes'] / 2**30:,.1f} GiB, "
              f"{figures['wal_fpi']:,.0f} full-page images, {figures['checkpoints']:,.0f} "
              f"checkpoints, {figures['buffers_backend']:,.0f} buffers written by backends",
              flush=True)
    return figures


#: the PostgreSQL settings an import's speed depends on, reported with its figures
SERVER_SETTINGS = ("shared_buffers", "max_wal_size", "checkpoint_timeout", "wal_compression")


def server_state(url: str) -> dict[str, Any]:
    """The server's write settings and its WAL and checkpoint counters (cumulative)."""
    with connect(url) as conn:
        state: dict[str, Any] = {name: conn.execute(f"SHOW {name}").fetchone()[0]
                                 for name in SERVER_SETTINGS}
        state["wal_bytes"], state["wal_fpi"] = conn.execute(
            "SELECT wal_bytes, wal_fpi FROM pg_stat_wal").fetchone()
        state["checkpoints"], state["buffers_backend"] = conn.execute(
            "SELECT checkpoints_timed + checkpoints_req, buffers_backend "
            "FROM pg_stat_bgwriter").fetchone()
    return state


def _has_people(url: str, shop: Any) -> bool:
    """Does the database hold this shop's whole catalogue and all its users?"""
    with connect(url) as conn:
        items, users = conn.execute(
            "SELECT (SELECT count(*) FROM items), (SELECT count(*) FROM users)").fetchone()
    return (items, users) == (len(shop.items), len(shop.users))


def _exists(name: str) -> bool:
    with connect(POSTGRES_SERVER) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                            (name,)).fetchone() is not None


def run_child(spec: dict[str, Any], tree: Path) -> dict[str, Any]:
    """Run one child; its figures are its last stdout line. A ``--shared-read`` child's
    stderr passes through, so each case's figures show as it ends (a 100M run is long)."""
    env = {**os.environ, "PYTHONPATH": f"{tree / '.shim'}:{tree}"}
    shared = "cases" in spec
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child",
                           json.dumps(spec)], env=env, cwd=tree, stdout=subprocess.PIPE,
                          stderr=None if shared else subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr or "see the output above").strip().splitlines() or ["?"]
        return {"error": last[-1], "returncode": done.returncode}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--cases", default="popularity,als,item_knn,defaults")
    parser.add_argument("--paths", default="old,new")
    parser.add_argument("--old-tree", type=Path, default=None,
                        help="checkout whose code runs the old path (default: this one)")
    parser.add_argument("--old-max-events", type=int, default=5_000_000,
                        help="skip the old path above this many events (its memory)")
    parser.add_argument("--database", default=None,
                        help="PostgreSQL database to create (default scale_bench_<events>)")
    parser.add_argument("--sqlite", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    parser.add_argument("--shared-read", action="store_true",
                        help="new path only: read once, train each case in a fork")
    parser.add_argument("--parallel", type=int, default=1,
                        help="with --shared-read: cases trained at once (each its own "
                             "process; wall times then share the cores)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(json.loads(args.child))))
        return
    cases = [c for c in args.cases.split(",") if c]  # --cases "": import only
    paths = args.paths.split(",")
    unknown = sorted(set(cases) - set(CASES)) + sorted(set(paths) - {"old", "new"})
    if unknown:
        parser.error(f"unknown case or path {unknown}; cases: {sorted(CASES)}")
    name = args.database or f"scale_bench_{args.events}"
    targets = [("postgresql", database_url(name))]
    if args.sqlite is not None:
        targets.append(("sqlite", f"sqlite:///{args.sqlite.resolve()}"))
    rows = []
    try:
        for kind, url in targets:
            fill(url, args.events, kind == "postgresql", name)
            if args.shared_read and cases:
                shared = run_child({"url": url, "cases": cases,
                                    "parallel": args.parallel}, ROOT)
                print(kind, "shared read", json.dumps(shared), flush=True)
                rows += shared_rows(kind, shared)
                continue
            for case in cases:
                result: dict[str, dict[str, Any]] = {}
                for path in paths:
                    if path == "old" and args.events > args.old_max_events:
                        result[path] = {"error": f"skipped above {args.old_max_events:,} "
                                                 "events (--old-max-events)"}
                        continue
                    tree = (args.old_tree or ROOT) if path == "old" else ROOT
                    result[path] = run_child({"url": url, "case": case, "path": path},
                                             tree.resolve())
                    print(kind, case, path, json.dumps(result[path]), flush=True)
                rows.append((kind, case, result))
    finally:
        if not args.keep:
            admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            if args.sqlite is not None:
                args.sqlite.unlink(missing_ok=True)
    print(f"\n{args.events:,} events; old tree: {args.old_tree or 'this checkout'}\n")
    print("| db | case | path | read (s) | train (s) | peak RSS (MiB) | read peak (MiB) |")
    print("|---|---|---|---|---|---|---|")
    for kind, case, result in rows:
        for path, r in result.items():
            if "error" in r:
                print(f"| {kind} | {case} | {path} | {r['error']} | | | |")
            else:
                print(f"| {kind} | {case} | {path} | {r['read_s']:.1f} | {r['train_s']:.1f} "
                      f"| {r['peak_mib']:,.0f} | {r['read_peak_mib']:,.0f} |")
        old, new = result.get("old", {}), result.get("new", {})
        if "peak_mib" in old and "peak_mib" in new:
            print(f"| {kind} | {case} | new/old | {new['read_s'] / old['read_s']:.2f} "
                  f"| {new['train_s'] / old['train_s']:.2f} "
                  f"| {new['peak_mib'] / old['peak_mib']:.2f} "
                  f"| {new['read_peak_mib'] / old['read_peak_mib']:.2f} |")


if __name__ == "__main__":
    main()
