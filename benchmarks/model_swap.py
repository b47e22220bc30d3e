"""Model hot swap: time from ``recsdk train`` finishing to the first answer that
carries the new ``model_run``, from a ``recsdk serve`` that was never restarted.

A server runs on a SQLite demo shop; ``recsdk train`` runs in another process; a
client polls ``GET /api/v1/recommendations`` every 10 ms (distinct users, so no
cached list hides the swap). Measured for several ``[models] model_refresh_s``:
the expected delay is about half the refresh period plus the load time.

Run:  python benchmarks/model_swap.py [--events 50000] [--trials 3] [--refresh 1,5,30]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import urllib.request
from pathlib import Path

from server_process import ServerProcess, clean_environment, run_recsdk


def get(port: int, user: int) -> dict:
    url = f"http://127.0.0.1:{port}/api/v1/recommendations?user_id=bench{user}&k=10"
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.load(answer)


def trial(env: dict[str, str], port: int, counter: list[int]) -> tuple[float, float]:
    """Train once; seconds of training and from its end to the first new answer."""
    before = get(port, counter[0])["model_run"]
    started = time.perf_counter()
    run_id = json.loads(run_recsdk("train", "--json", env=env).stdout)["run_id"]
    trained = time.perf_counter()
    assert run_id != before
    while True:
        counter[0] += 1
        if get(port, counter[0])["model_run"] == run_id:
            return trained - started, time.perf_counter() - trained
        time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--refresh", default="1,5,30",
                        help="model_refresh_s values to measure, comma-separated")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = clean_environment(RECSDK_DATABASE_URL=f"sqlite:///{Path(tmp) / 'shop.db'}")
        run_recsdk("db", "upgrade", env=base)
        run_recsdk("demo-data", "--events", str(args.events), env=base)
        run_recsdk("train", env=base)
        print(f"demo shop: {args.events:,} events; {args.trials} trainings per setting\n")
        print(f"{'model_refresh_s':>15}  {'train s':>8}  {'train end -> new run answer (s)':>34}")
        for refresh in (float(r) for r in args.refresh.split(",")):
            config = Path(tmp) / f"refresh{refresh:g}.toml"
            config.write_text(f"[models]\nmodel_refresh_s = {refresh}\n")
            env = {**base, "RECSDK_CONFIG": str(config)}
            with ServerProcess(env) as server:
                counter = [0]
                delays, trains = [], []
                for _ in range(args.trials):
                    seconds, delay = trial(env, server.port, counter)
                    trains.append(seconds)
                    delays.append(delay)
                shown = ", ".join(f"{d:.2f}" for d in delays)
                print(f"{refresh:>15g}  {sum(trains) / len(trains):>8.2f}  "
                      f"{'mean ' + format(sum(delays) / len(delays), '.2f'):>12} ({shown})")


if __name__ == "__main__":
    main()
