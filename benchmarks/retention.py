"""Benchmark of the records lifecycle on the sandbox: `drctl retention sync` and `drctl dispose --dry-run`.

    .venv/bin/python benchmarks/retention.py                         # 20,000 patients, 5 chart files each
    .venv/bin/python benchmarks/retention.py --patients 2000 --moved 20

It starts a sandbox in this process (heartbeat off), seeds `--patients` patients with `--files` charts each (written
straight into moto's S3, replicated to the DR region by the emulation, rows COPYed into PostgreSQL), marks `--moved`
of them as seen today (what a day of visits does), then times, through drctl in-process:

- `drctl retention sync`: the moved patients' versions extended in both regions; its AWS requests are the journal's
  call count (the engine records every botocore call of a step);
- `drctl dispose --dry-run`: the patients past retention and under no hold (one query of the records);

and prints the requests the S3 Batch Operations path would make for the same sync instead (one manifest and one
CreateJob per region and retention date, plus DescribeJob polls), against the per-version calls measured.

Sandbox timings say nothing about AWS timings: moto answers ListObjectVersions by scanning the whole bucket for each
page, whatever the prefix (FACTS.md), so a patient's listing costs O(archive) here and milliseconds on AWS.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: DescribeJob polls per job assumed for the Batch Operations estimate (a job of a few thousand tasks: minutes).
POLLS_PER_JOB = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=20_000)
    parser.add_argument("--files", type=int, default=5)
    parser.add_argument("--moved", type=int, default=None, help="patients seen today (default: 1%% of patients)")
    args = parser.parse_args()
    moved = args.moved if args.moved is not None else max(1, args.patients // 100)

    import os

    from click.testing import CliRunner

    from dr_runbooks.cli import cli
    from dr_runbooks.runbooks.canary import connect, db_endpoint
    from ehr_dr_sandbox.api import Sandbox

    state = Path(tempfile.mkdtemp(prefix="ehr-dr-retention-bench-"))
    work = Path(tempfile.mkdtemp(prefix="ehr-dr-retention-work-"))
    with Sandbox.start(state, cdk_json=REPO / "cdk.json", heartbeat_seconds=None) as sandbox:
        started = time.monotonic()
        seeded = sandbox.seed(patients=args.patients, files_per_patient=args.files)
        sandbox.action("replication-drain", timeout=3600)
        seed_seconds = time.monotonic() - started
        topology, region = sandbox.topology, sandbox.topology.primary_region
        endpoint = db_endpoint(sandbox.client("rds", region), sandbox.client("secretsmanager", region),
                               topology.in_region(region).db_cluster_id, topology.db_secret_name,
                               topology.database_name)
        today = datetime.now(UTC).date()
        with connect(endpoint) as db:
            db.execute("UPDATE patients SET last_visit = %s WHERE patient_id IN (SELECT patient_id FROM patients "
                       "ORDER BY patient_id LIMIT %s)", (today, moved))
        os.chdir(work)
        env = {**sandbox.env}
        mfa = ["--mfa-serial", "arn:aws:iam::123456789012:mfa/bench", "--mfa-code", "123456"]

        def drctl(*arguments: str) -> tuple[float, str]:
            begun = time.monotonic()
            result = CliRunner().invoke(cli, list(arguments), env=env, catch_exceptions=False)
            if result.exit_code != 0:
                raise SystemExit(f"drctl {' '.join(arguments)} exited {result.exit_code}: {result.output}")
            return time.monotonic() - begun, result.stdout

        sync_seconds, sync_out = drctl("retention", "sync", "--yes", "--output", "json", *mfa)
        run_id = json.loads(sync_out)["run_id"]
        run = json.loads((work / ".ehr-dr" / "runs" / f"{run_id}.json").read_text())
        steps = [run["steps"][name] for name in ("find-moved", "extend-retention", "mark-synced")]
        facts = {key: value for step in steps for key, value in step["outputs"].items()}
        dry_seconds, dry_out = drctl("dispose", "--dry-run", "--output", "json")
        disposable = len(json.loads(dry_out)["patients"])

    versions = facts["versions_checked"]
    per_version_requests = sum(step["call_count"] for step in steps)
    # Batch Operations: one job per region per distinct retention date (patients seen the same day share one;
    # a minor's is their own majority date): a manifest PutObject, CreateJob, DescribeJob polls.
    dates = facts["retention_dates"]
    batch_requests = 2 * dates * (1 + 1 + POLLS_PER_JOB)
    print(json.dumps({
        "patients": args.patients, "chart_versions": seeded.files, "seed_seconds": round(seed_seconds, 1),
        "sync": {"patients_moved": facts["patients_moved"], "versions_checked": versions,
                 "versions_extended": facts["versions_extended"], "seconds": round(sync_seconds, 1),
                 "requests": per_version_requests,
                 "requests_per_patient": round(per_version_requests / max(facts["patients_moved"], 1), 1),
                 "seconds_per_patient": round(sync_seconds / max(facts["patients_moved"], 1), 3)},
        "dry_run": {"seconds": round(dry_seconds, 2), "disposable_patients": disposable},
        "batch_operations_estimate": {
            "requests_per_region_and_date": 2 + POLLS_PER_JOB,
            "retention_dates": dates,
            "requests_for_this_sync": batch_requests,
        },
    }, indent=2))


if __name__ == "__main__":
    main()
