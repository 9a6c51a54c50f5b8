"""Time full synths of both regions with the compliance packs, each in a fresh subprocess, as a user runs them.

    python benchmarks/synth.py            # 5 runs of `cdk synth` through the pinned CLI (node_modules/.bin/cdk)
    python benchmarks/synth.py --app      # 5 runs of `python -m stacks.app` alone (what the CLI spawns)
    python benchmarks/synth.py -n 10 --traffic

Prints each run and the median, min and max wall time. Offline and without credentials; each run writes to its own
temporary directory. Numbers go to docs and issue notes, never into a timed test.
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


def one_synth(*, through_cli: bool, traffic: bool) -> float:
    """Seconds for one synth; raises if it fails (a failing synth is not a measurement)."""
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
        start = time.perf_counter()
        result = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        if result.returncode != 0 or not list(outdir.glob("*.template.json")):
            raise SystemExit(f"synth failed ({result.returncode}):\n{result.stderr[-3000:]}")
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--runs", type=int, default=5)
    parser.add_argument("--app", action="store_true", help="time `python -m stacks.app` instead of `cdk synth`")
    parser.add_argument("--traffic", action="store_true", help="include the traffic stacks (hosted zone configured)")
    options = parser.parse_args()
    what = "python -m stacks.app" if options.app else "cdk synth (pinned CLI)"
    print(f"{what}, both regions, AwsSolutions + HIPAA.Security packs, {os.cpu_count()} CPUs")
    times = []
    for run in range(1, options.runs + 1):
        times.append(one_synth(through_cli=not options.app, traffic=options.traffic))
        print(f"  run {run}: {times[-1]:.2f} s")
    print(f"median {statistics.median(times):.2f} s, min {min(times):.2f} s, max {max(times):.2f} s")


if __name__ == "__main__":
    main()
