"""Measure the sandbox's database: the PostgreSQL pair's operations that drills wait for, and the records seed.

    python benchmarks/sandbox_db.py [--rounds 3] [--patients 1000] [--files-per-patient 5] [--json]

Each round, on a fresh pair in a temp dir: create (initdb + start + pg_basebackup + standby open), apply the schema
and seed the records of `--patients` patients (COPY), wait for the standby to replay them, a planned switchover, a
failover after SIGKILL of the writer (promotion only), the re-attach of the killed node (pg_rewind), a pg_dump of the
records database (an AWS Backup recovery point here) and its pg_restore into a new database (a restore job), one lag
measurement, and the pair's removal. Reports the median and max of each over the rounds.
Sandbox timings say nothing about AWS timings (Aurora switchover and failover take minutes there).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

from ehr_dr_sandbox.postgres_pair import PostgresPair, pair_state_dir
from ehr_dr_sandbox.records_schema import apply_schema, ensure_database, seed_records

PRIMARY, DR = "us-east-1", "us-west-1"


def records(patients: int, files_per_patient: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    people = [{"patient_id": f"pt-{n:06d}", "practice": f"practice-{n % 10:02d}", "given_name": "Alex",
               "family_name": "Synthetic", "birth_date": "1970-01-02", "last_visit": "2025-06-30"}
              for n in range(1, patients + 1)]
    scans = [{"scan_id": f"scan-{n:06d}-{i:02d}", "patient_id": f"pt-{n:06d}",
              "object_key": f"charts/practice-{n % 10:02d}/pt-{n:06d}/scan-{n:06d}-{i:02d}.pdf",
              "sha256": hashlib.sha256(f"{n}-{i}".encode()).hexdigest(), "content_type": "application/pdf",
              "size_bytes": 2048} for n in range(1, patients + 1) for i in range(files_per_patient)]
    return people, scans


def one_round(patients: int, files_per_patient: int) -> dict[str, float]:
    timings: dict[str, float] = {}

    def timed(name: str, step: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        result = step()
        timings[name] = time.perf_counter() - started
        return result

    people, scans = records(patients, files_per_patient)
    with pair_state_dir() as state_dir:
        pair = timed("create pair", lambda: PostgresPair.create(state_dir / "pair", PRIMARY, DR))
        try:
            with pair.writer().connect() as admin:
                ensure_database(admin, "records", "ehr_admin")

            def seed() -> None:
                with pair.writer().connect("records", autocommit=False) as conn:
                    apply_schema(conn)
                    seed_records(conn, people, scans)

            timed(f"schema + seed {patients} patients / {len(scans)} scans", seed)
            timed("standby replays the seed", pair.wait_caught_up)
            timed("lag measurement", pair.lag)
            timed("switchover to DR (stop, catch up, promote, rewind)", lambda: pair.switchover(DR))
            timed("switchover back", lambda: pair.switchover(PRIMARY))
            pair.node(PRIMARY).kill()
            timed("failover: promote after SIGKILL", lambda: pair.promote(DR))
            timed("re-attach the killed node (pg_rewind)", lambda: pair.reattach(PRIMARY))
            dump = state_dir / "backups" / "records.dump"
            timed("pg_dump records (backup job)", lambda: pair.writer().dump("records", dump))
            timed("pg_restore into a new database (restore job)",
                  lambda: pair.writer().restore_dump(dump, "restored", "ehr_admin"))
        finally:
            timed("destroy pair", pair.destroy)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--files-per-patient", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args()
    samples: dict[str, list[float]] = defaultdict(list)
    for _ in range(args.rounds):
        for name, seconds in one_round(args.patients, args.files_per_patient).items():
            samples[name].append(seconds)
    summary = {name: {"median_s": round(statistics.median(values), 3), "max_s": round(max(values), 3)}
               for name, values in samples.items()}
    if args.json:
        print(json.dumps({"rounds": args.rounds, "steps": summary}, indent=2))
        return
    table = Table(title=f"sandbox database, {args.rounds} rounds (sandbox timings say nothing about AWS)")
    table.add_column("step")
    table.add_column("median s", justify="right")
    table.add_column("max s", justify="right")
    for name, values in summary.items():
        table.add_row(name, f"{values['median_s']:.3f}", f"{values['max_s']:.3f}")
    Console().print(table)


if __name__ == "__main__":
    main()
