"""Run every benchmark in turn (``make bench``); each prints its ratios against a same-run baseline.

    .venv/bin/python bench/run_all.py [--quick]

``--quick`` runs smaller sizes (a smoke run, a few minutes); the default
sizes are the ones whose figures docs/benchmarks.md quotes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

FULL: list[list[str]] = [
    ["bench_core.py"],
    ["bench_patterns.py"],
    ["bench_auth.py"],
    ["bench_mail.py", "--hostile"],
    ["bench_ingest.py"],
    ["bench_delivery.py"],
    ["bench_smpp.py"],
    ["bench_postgres.py"],
    ["bench_metrics.py", "--fresh", "--rounds", "14"],
    ["bench_receipts.py"],
]
QUICK: list[list[str]] = [
    ["bench_core.py", "--repeat", "300"],
    ["bench_patterns.py"],
    ["bench_auth.py", "--accounts", "3"],
    ["bench_mail.py"],
    ["bench_ingest.py", "--mails", "1000"],
    ["bench_delivery.py", "--n", "1000", "--skip-memory"],
    ["bench_smpp.py", "--n", "1000", "--repeat", "1"],
    ["bench_postgres.py", "--n", "300", "--rows", "100000"],
    ["bench_metrics.py", "--fresh", "--rounds", "4", "--mails", "1000"],
    ["bench_receipts.py", "--n", "1000"],
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    args = parser.parse_args()
    failed = 0
    for script, *extra in QUICK if args.quick else FULL:
        print(f"\n=== {script} {' '.join(extra)}", flush=True)
        result = subprocess.run([sys.executable, str(HERE / script), *extra], check=False)
        failed += result.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
