"""Benchmark `drctl evaluate` on the sandbox: wall time (target under 10 s) and the AWS calls of each check.

    python benchmarks/evaluate.py [--rounds 3] [--json] [--dark us-east-1]

On a fresh in-process sandbox whose backup plan ran an hour (copies in the DR vault), runs the command's work
(topology read, then `readiness.evaluate`) `--rounds` times and reports the wall time of each round (the topology
read included) and, per check, its seconds and AWS calls by operation in the last round. `--dark REGION` measures
the same with that region down (its checks unknown at once, the estate checks bounded by the probe clients).

Sandbox timings say nothing about AWS timings: the calls go to one local endpoint. The call counts are what AWS
would see, except the permissions check, which moto answers only with the sandbox's emulation of
iam:SimulatePrincipalPolicy (without it, that check stops at its first call).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from dr_runbooks.commands.oncall import DEFAULT_REGIONS
from dr_runbooks.readiness.evaluate import evaluate
from dr_runbooks.runbooks.estate import load_topology_anywhere
from dr_runbooks.session import AwsSession
from ehr_dr_sandbox.api import Sandbox

REPO = Path(__file__).resolve().parent.parent


def one_round(sandbox: Sandbox) -> tuple[float, Any]:
    started = time.monotonic()
    aws = AwsSession.from_options(endpoint_url=sandbox.endpoint_url)
    topology = load_topology_anywhere(aws, sandbox.config.env_name, DEFAULT_REGIONS)
    evaluation = evaluate(aws, topology)
    return time.monotonic() - started, evaluation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--dark", help="a region to take down before measuring")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as state, Sandbox.start(Path(state), cdk_json=REPO / "cdk.json") as sandbox:
        os.environ.update(sandbox.env)
        sandbox.action("backup-plan-now")
        if arguments.dark:
            sandbox.faults.region_down(arguments.dark)
        rounds = [one_round(sandbox) for _ in range(arguments.rounds)]
    walls = [wall for wall, _ in rounds]
    last = rounds[-1][1]
    result = {
        "rounds": arguments.rounds, "dark": arguments.dark,
        "wall_seconds": {"median": round(statistics.median(walls), 2), "max": round(max(walls), 2)},
        "evaluate_seconds": last.seconds, "ready": last.ready,
        "aws_calls": sum(check.aws_calls for check in last.checks),
        "checks": [{"check": check.name, "verdict": check.verdict, "seconds": check.seconds,
                    "aws_calls": check.aws_calls, "calls": check.calls} for check in last.checks],
    }
    if arguments.json:
        print(json.dumps(result, indent=2))
        return
    print(f"wall (topology read + evaluate): median {result['wall_seconds']['median']} s, "
          f"max {result['wall_seconds']['max']} s over {arguments.rounds} rounds; {result['aws_calls']} AWS calls")
    for check in result["checks"]:
        calls = ", ".join(f"{name} x{count}" for name, count in sorted(check["calls"].items()))
        print(f"  {check['check']:<28} {check['verdict']:<8} {check['seconds']:6.2f} s {check['aws_calls']:4d} calls"
              f"  {calls}")


if __name__ == "__main__":
    main()
