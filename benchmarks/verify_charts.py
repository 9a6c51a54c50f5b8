"""Time `drctl verify charts` on a seeded sandbox, as a user runs it: stored checksums (--all), bytes (--all
--read-bytes) and the default sample.

    python benchmarks/verify_charts.py [--patients 1000] [--files-per-patient 5] [--json]

Each check is a subprocess (process start included) against one sandbox seeded once and drained; wall time, the
command's requests (from its JSON) and the load average before and after are reported together: on a shared machine
the load decides much of the wall time. Sandbox numbers say nothing about AWS timings.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ehr_dr_sandbox.api import Sandbox

REPO = Path(__file__).resolve().parent.parent
DRCTL = str(Path(sys.executable).parent / "drctl")
MODES = {"stored checksum, --all": ["--all"], "bytes, --all --read-bytes": ["--all", "--read-bytes"],
         "default sample (1,000)": []}


def check(env: dict[str, str], args: list[str]) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="ehr-dr-bench-") as evidence:
        load_before, started = os.getloadavg()[0], time.monotonic()
        done = subprocess.run([DRCTL, "verify", "charts", "--output", "json", "--evidence-dir", evidence, *args],
                              env=env, capture_output=True, text=True, check=False)
        seconds = time.monotonic() - started
    document = json.loads(done.stdout) if done.stdout.startswith("{") else {}
    return {"exit": done.returncode, "seconds": round(seconds, 1), "checked": document.get("checked"),
            "requests": document.get("requests"), "load": [round(load_before, 1), round(os.getloadavg()[0], 1)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--files-per-patient", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ehr-dr-bench-") as state, \
            Sandbox.start(Path(state), cdk_json=REPO / "cdk.json") as sandbox:
        sandbox.seed(patients=options.patients, files_per_patient=options.files_per_patient)
        sandbox.action("replication-drain", timeout=300)
        env = {**os.environ, **sandbox.env}
        results = {mode: check(env, args) for mode, args in MODES.items()}
    if options.json:
        print(json.dumps(results, indent=2))
        return
    print("| mode | exit | wall (s) | scan rows | requests | load before/after |\n|---|---:|---:|---:|---:|---|")
    for mode, result in results.items():
        print(f"| {mode} | {result['exit']} | {result['seconds']} | {result['checked']} | {result['requests']} | "
              f"{result['load'][0]} / {result['load'][1]} |")


if __name__ == "__main__":
    main()
