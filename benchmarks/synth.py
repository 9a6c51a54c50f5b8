"""Time full synths of both regions with the compliance packs, each in a fresh subprocess, as a user runs them.

    python benchmarks/synth.py            # 5 runs of `cdk synth` through the pinned CLI (node_modules/.bin/cdk)
    python benchmarks/synth.py --app      # 5 runs of `python -m stacks.app` alone (what the CLI spawns)
    python benchmarks/synth.py -n 10 --traffic

Prints each run's wall time and CPU time (user + system of the synth's processes: node and python), then the median,
min and max of both, and the load average: on a shared machine the wall time says more about the neighbours than about
the synth, the CPU time does not. Offline and without credentials; each run writes to its own temporary directory.
Numbers go to docs and issue notes, never into a timed test.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TRAFFIC = ("hosted_zone_name=example.org", "primary_endpoint=east.example.org", "dr_endpoint=west.example.org")


def _environment(outdir: Path, context: dict[str, str] | None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_") or key == "AWS_CA_BUNDLE"}
    env |= {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "AWS_EC2_METADATA_DISABLED": "true",
        "CDK_DISABLE_VERSION_CHECK": "1",
    }
    if context is not None:  # what the CDK CLI hands the app
        env |= {"CDK_OUTDIR": str(outdir), "CDK_CONTEXT_JSON": json.dumps(context)}
    return env


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_synth(*, through_cli: bool, traffic: bool) -> tuple[float, float]:
    """(wall, CPU) seconds of one synth; exits if it fails (a failing synth is not a measurement)."""
    with tempfile.TemporaryDirectory(prefix="synth-bench-") as tmp:
        outdir = Path(tmp)
        if through_cli:
            args = [str(REPO / "node_modules" / ".bin" / "cdk"), "synth", "--quiet", "--no-notices", "-o", tmp]
            for pair in TRAFFIC if traffic else ():
                args += ["-c", pair]
            env = _environment(outdir, None)
        else:
            context = json.loads((REPO / "cdk.json").read_text())["context"]
            context |= dict(pair.split("=", 1) for pair in TRAFFIC) if traffic else {}
            args, env = [sys.executable, "-m", "stacks.app"], _environment(outdir, context)
        start, cpu = time.perf_counter(), _children_cpu()
        result = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True)
        elapsed, cpu = time.perf_counter() - start, _children_cpu() - cpu
        if result.returncode != 0 or not list(outdir.glob("*.template.json")):
            raise SystemExit(f"synth failed ({result.returncode}):\n{result.stderr[-3000:]}")
        return elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--runs", type=int, default=5)
    parser.add_argument("--app", action="store_true", help="time `python -m stacks.app` instead of `cdk synth`")
    parser.add_argument("--traffic", action="store_true", help="include the traffic stacks (hosted zone configured)")
    options = parser.parse_args()
    what = "python -m stacks.app" if options.app else "cdk synth (pinned CLI)"
    print(f"{what}, both regions, AwsSolutions + HIPAA.Security packs, {os.cpu_count()} CPUs")
    print(f"load average before: {' '.join(f'{load:.1f}' for load in os.getloadavg())}")
    walls, cpus = [], []
    for run in range(1, options.runs + 1):
        wall, cpu = one_synth(through_cli=not options.app, traffic=options.traffic)
        walls.append(wall)
        cpus.append(cpu)
        print(f"  run {run}: {wall:.2f} s wall, {cpu:.2f} s CPU")
    for label, values in (("wall", walls), ("CPU", cpus)):
        print(f"{label}: median {statistics.median(values):.2f} s, min {min(values):.2f} s, max {max(values):.2f} s")
    print(f"load average after: {' '.join(f'{load:.1f}' for load in os.getloadavg())}")


if __name__ == "__main__":
    main()
