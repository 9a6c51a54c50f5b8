"""Time the main job, `drctl drill all --sandbox`, end to end and per phase, as a user runs it.

    python benchmarks/drill.py [--runs 3] [--patients 200] [--files-per-patient 5] [--json]

Target (issue 5): under 60 s on a 2-core machine. Each run is a subprocess in a fresh working directory; the per-phase
times are the ones the command prints as it goes. Wall time, the CPU time of the command and everything it started,
and the load average before and after are reported together: on a shared machine the load decides much of the wall
time. Sandbox numbers say nothing about AWS timings.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DRCTL = str(Path(sys.executable).parent / "drctl")
PHASE_LINE = re.compile(r"^  (?P<phase>[a-z ]+): (?P<seconds>\d+\.\d) s$", re.MULTILINE)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_run(patients: int, files_per_patient: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="ehr-dr-bench-") as cwd:
        load_before = os.getloadavg()[0]
        cpu_before, started = children_cpu(), time.monotonic()
        done = subprocess.run(
            [DRCTL, "drill", "all", "--sandbox", "--cdk-json", str(REPO / "cdk.json"), "--patients", str(patients),
             "--files-per-patient", str(files_per_patient)],
            cwd=cwd, capture_output=True, text=True, check=False,
            env={key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "EHR_DR_"))})
        wall = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"drctl drill all failed ({done.returncode}): {done.stderr[-2000:]}")
    phases = {match["phase"]: float(match["seconds"]) for match in PHASE_LINE.finditer(done.stderr)}
    return {"wall_seconds": round(wall, 2), "cpu_seconds": round(children_cpu() - cpu_before, 2),
            "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2), "phases": phases}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--files-per-patient", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args()
    runs = [one_run(arguments.patients, arguments.files_per_patient) for _ in range(arguments.runs)]
    summary = {"cores": os.cpu_count(), "runs": runs,
               "median_wall_seconds": statistics.median(run["wall_seconds"] for run in runs)}  # type: ignore[misc]
    if arguments.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"drctl drill all --sandbox, {arguments.patients} patients x {arguments.files_per_patient} files, "
          f"{os.cpu_count()} cores")
    for number, run in enumerate(runs, start=1):
        phases = ", ".join(f"{name} {seconds:.1f}" for name, seconds in run["phases"].items())  # type: ignore[union-attr]
        print(f"run {number}: wall {run['wall_seconds']:.1f} s, CPU {run['cpu_seconds']:.1f} s, load "
              f"{run['load_before']:.1f} -> {run['load_after']:.1f}; phases (s): {phases}")
    print(f"median wall: {summary['median_wall_seconds']:.1f} s (target < 60 s)")


if __name__ == "__main__":
    main()
