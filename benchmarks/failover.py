"""Benchmark the on-call runbooks on the sandbox: wall time, the runbook's own overhead, AWS calls, overlap.

    python benchmarks/failover.py [--rounds 3] [--json]

Runs, on a fresh in-process sandbox: switchover to DR, switchover back, failover to DR with the primary dark, then
failback. For each run it reports:
- wall: from preflight to the run's end (what the operator waits for);
- busy: the time at least one AWS call or status poll was in flight (union of intervals, concurrency counted once);
- overhead = wall - busy: the engine itself (planning, journaling logic, threads, rendering); target < 1 s;
- AWS calls: every call, the journal's and lock's included;
- overlap: pairs of steps with no dependency path between them whose run times overlapped (proof of concurrency),
  and sum-of-steps / wall (> 1 means steps ran side by side).

Sandbox timings say nothing about AWS timings (see docs/runbooks.md for the AWS budget): there Aurora's global
switchover/failover is the sandbox's emulation over a real PostgreSQL primary/standby pair. By default the sandbox
runs in this process; `--attach STATE_DIR` uses one `drctl sandbox up` started in its own process, so the sandbox's
Python work does not compete with the runbook's for the GIL and inflate the measured overhead.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dr_runbooks.engine import calls
from dr_runbooks.engine.plan import Plan
from dr_runbooks.runbooks import driver, preflight
from dr_runbooks.runbooks.estate import load_topology
from dr_runbooks.runbooks.plans import PLANS
from dr_runbooks.session import AwsSession
from ehr_dr_sandbox.api import Sandbox

REPO = Path(__file__).resolve().parent.parent


def report_lag(sandbox: Sandbox, seconds: float) -> None:
    for region, resources in sandbox.topology.regions.items():
        sandbox.client("cloudwatch", region).put_metric_data(Namespace="AWS/RDS", MetricData=[{
            "MetricName": "AuroraGlobalDBReplicationLag", "Timestamp": datetime.now(UTC), "Value": seconds * 1000,
            "Dimensions": [{"Name": "DBClusterIdentifier", "Value": resources.db_cluster_id}]}])


def depends(plan: Plan, later: str, earlier: str) -> bool:
    step = plan.step(later)
    return earlier in step.depends_on or any(depends(plan, parent, earlier) for parent in step.depends_on)


def one_run(sandbox: Sandbox, runbook: str, target: str, workdir: Path) -> dict[str, Any]:
    total = calls.Recorder()
    started = time.time()
    with calls.recording(total):
        aws = AwsSession(endpoint_url=sandbox.endpoint_url).with_mfa("arn:aws:iam::123456789012:mfa/bench", "123456",
                                                                     target)
        topology = load_topology(aws, sandbox.config.env_name, target)
        seen = preflight.PREFLIGHTS[runbook](aws, topology, target)
        ctx = driver.new_context(aws, topology, runbook, target, seen, aws.identity(target).arn, workdir / "runs")
        run = driver.run(ctx)
        driver.write_evidence(ctx, sandbox=True)
    wall = time.time() - started
    if run.status != "succeeded":
        raise SystemExit(f"{runbook} to {target} failed: {run.error}")
    plan = PLANS[runbook]()
    records = run.steps
    overlaps = [
        (a, b) for a in records for b in records
        if a < b and not depends(plan, a, b) and not depends(plan, b, a)
        and records[a].started_at < (records[b].ended_at or 0) and records[b].started_at < (records[a].ended_at or 0)
    ]
    busy = calls.busy_seconds(total.intervals)
    step_sum = sum((record.ended_at or record.started_at) - record.started_at for record in records.values())
    run_wall = (run.ended_at or run.started_at) - run.started_at
    return {
        "runbook": runbook, "target": target, "wall_seconds": wall, "busy_seconds": busy,
        "overhead_seconds": wall - busy, "aws_calls": total.call_count,
        "overlapping_steps": [f"{a} | {b}" for a, b in overlaps],
        "concurrency": step_sum / run_wall if run_wall else 0.0,
        "rto_seconds": records["record-objectives"].outputs["rto_seconds"] if "record-objectives" in records else None,
    }


def round_of_runs(sandbox: Sandbox, workdir: Path) -> list[dict[str, Any]]:
    primary, dr = sandbox.config.primary_region, sandbox.config.dr_region
    results = []
    report_lag(sandbox, 1.0)
    results.append(one_run(sandbox, "switchover", dr, workdir))
    report_lag(sandbox, 1.0)
    results.append(one_run(sandbox, "switchover", primary, workdir))
    report_lag(sandbox, 1.0)
    sandbox.faults.region_down(primary)
    try:
        results.append(one_run(sandbox, "failover", dr, workdir))
    finally:
        sandbox.faults.region_up(primary)
    results.append(one_run(sandbox, "failback", primary, workdir))
    report_lag(sandbox, 1.0)
    results.append(one_run(sandbox, "switchover", primary, workdir))  # back to the start for the next round
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="every run as JSON instead of the summary")
    parser.add_argument("--attach", type=Path, metavar="STATE_DIR",
                        help="use the sandbox `drctl sandbox up` runs in another process (no GIL shared with it)")
    options = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="ehr-dr-bench-"))
    started = time.time()
    if options.attach:
        sandbox = Sandbox.attach(options.attach)
    else:
        sandbox = Sandbox.start(workdir / "sandbox", cdk_json=REPO / "cdk.json")
    with sandbox:
        print(f"sandbox up in {time.time() - started:.1f} s", file=sys.stderr)
        os.environ.update(sandbox.env)
        runs = [run for _ in range(options.rounds) for run in round_of_runs(sandbox, workdir)]
    if options.json:
        print(json.dumps(runs, indent=2))
        return
    print(f"{'runbook':<22}{'n':>3}{'wall s':>9}{'busy s':>9}{'overhead s':>12}{'AWS calls':>11}{'concurrency':>13}")
    for key in sorted({(run["runbook"], run["target"]) for run in runs}):
        group = [run for run in runs if (run["runbook"], run["target"]) == key]

        def median(field: str, rows: list[dict[str, Any]] = group) -> float:
            return statistics.median(row[field] for row in rows)

        print(f"{key[0] + ' ' + key[1]:<22}{len(group):>3}{median('wall_seconds'):>9.2f}{median('busy_seconds'):>9.2f}"
              f"{median('overhead_seconds'):>12.2f}{median('aws_calls'):>11.0f}{median('concurrency'):>13.2f}")
        print(f"    overlapping: {'; '.join(group[0]['overlapping_steps']) or 'none'}")


if __name__ == "__main__":
    main()
