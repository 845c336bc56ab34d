"""Benchmark 3 (incremental sync vs full re-read) for two source trees, interleaved.

``python bench/sync_ab.py [--baseline REV] [--only sqlite|postgres] [--rounds N]``

Each round runs ``syncbench.incremental`` once for the baseline revision's ``src`` (``git
archive``, default ``HEAD``) and once for the working tree, each in a fresh subprocess with a
fresh Radicale and database, alternating, so a change in machine load hits both alike. Besides
the medians that ``syncbench`` reports (wall, and CPU of calsync + Radicale), it splits the
incremental and full CPU into calsync's own thread and the Radicale server. Prints one JSON
line per run and a summary; ``--out`` writes them all.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent

_CHILD = """
import json, sys
sys.path[:0] = [{src!r}, {bench!r}, {repo!r}]
sys.path.append({tree!r})  # present, so syncbench does not put the working tree first
import backends, syncbench
b = backends.sqlite_backend() if {db!r} == "sqlite" else backends.postgres_backend()
try:
    print("RESULT " + json.dumps(syncbench.incremental(b)))
finally:
    b.close()
"""


def run_one(src: Path, db: str) -> dict[str, Any]:
    code = _CHILD.format(
        src=str(src), bench=str(BENCH), repo=str(REPO), tree=str(REPO / "src"), db=db
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=REPO
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    result: dict[str, Any] = json.loads(line[len("RESULT ") :])
    return result


def main() -> int:
    sys.path[:0] = [str(BENCH)]
    from run import baseline_src

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="HEAD")
    parser.add_argument("--only", choices=("sqlite", "postgres"))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    trees = {"baseline": baseline_src(args.baseline), "shipped": REPO / "src"}
    dbs = [args.only] if args.only else ["postgres", "sqlite"]
    runs: list[dict[str, Any]] = []
    for db in dbs:
        for round_ in range(args.rounds):
            for name, src in trees.items():
                result = {"db": db, "code": name, "round": round_, **run_one(src, db)}
                print(json.dumps(result), flush=True)
                runs.append(result)
    keys = ("incremental_ms", "incremental_cpu_ms", "full_ms", "full_cpu_ms")
    keys += ("inc_calsync_cpu_ms", "inc_server_cpu_ms", "full_calsync_cpu_ms")
    summary = {}
    for db in dbs:
        for name in trees:
            mine = [r for r in runs if r["db"] == db and r["code"] == name]
            row = {k: round(statistics.median(r[k] for r in mine), 1) for k in keys}
            row["ratio_wall"] = round(row["full_ms"] / row["incremental_ms"], 1)
            row["ratio_cpu"] = round(row["full_cpu_ms"] / row["incremental_cpu_ms"], 1)
            row["ratio_calsync_cpu"] = round(
                row["full_calsync_cpu_ms"] / row["inc_calsync_cpu_ms"], 1
            )
            summary[f"{db}/{name}"] = row
            print(f"{db:8s} {name:8s} {json.dumps(row)}", flush=True)
    if args.out:
        args.out.write_text(json.dumps({"runs": runs, "summary": summary}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
