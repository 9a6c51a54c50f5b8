"""Measure the sandbox as a newcomer meets it: `drctl sandbox up`, `seed`, replication catching up, memory, `down`.

    python benchmarks/sandbox.py [--patients 1000] [--files-per-patient 5] [--json]

Targets (issue 3): up + seed of the default size under 30 s on 2 cores, the seed itself under 20 s. Each step runs
`drctl` as a subprocess in a fresh working directory, as a user would; memory is the resident set of the sandbox's
server process and every process it started (the PostgreSQL pair), read after the seed. Also measured: the in-process
start the pytest fixture pays once per test module (`Sandbox.start`). Sandbox numbers say nothing about AWS.
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

import psutil

REPO = Path(__file__).resolve().parent.parent
DRCTL = str(Path(sys.executable).parent / "drctl")


def drctl(cwd: Path, *args: str) -> tuple[float, str]:
    started = time.monotonic()
    done = subprocess.run([DRCTL, "sandbox", *args], cwd=cwd, capture_output=True, text=True, check=False,
                          env={k: v for k, v in os.environ.items() if not k.startswith("AWS_")})
    if done.returncode != 0:
        raise SystemExit(f"drctl sandbox {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return time.monotonic() - started, done.stdout


def rss_mb(pid: int) -> float:
    root = psutil.Process(pid)
    return sum(p.memory_info().rss for p in (root, *root.children(recursive=True))) / 1e6


def in_process_start(cwd: Path) -> float:
    from ehr_dr_sandbox.api import Sandbox

    started = time.monotonic()
    with Sandbox.start(cwd / "fixture-state", cdk_json=REPO / "cdk.json"):
        return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--files-per-patient", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sandbox-bench-") as work:
        cwd = Path(work)
        up, _ = drctl(cwd, "up", "--cdk-json", str(REPO / "cdk.json"))
        seed, _ = drctl(cwd, "seed", "--patients", str(args.patients), "--files-per-patient",
                        str(args.files_per_patient))
        from ehr_dr_sandbox.api import Sandbox

        sandbox = Sandbox.attach(cwd / ".ehr-dr/sandbox")
        started = time.monotonic()
        sandbox.action("replication-drain", timeout=600)
        drain = time.monotonic() - started
        pid = sandbox.status()["pid"]
        memory = rss_mb(pid)
        down, _ = drctl(cwd, "down")
        fixture = in_process_start(cwd)
    numbers = {
        "patients": args.patients, "files": args.patients * args.files_per_patient, "cpus": os.cpu_count(),
        "up_s": round(up, 2), "seed_s": round(seed, 2), "replication_drain_after_seed_s": round(drain, 2),
        "up_plus_seed_s": round(up + seed, 2), "rss_mb_after_seed": round(memory, 1), "down_s": round(down, 2),
        "fixture_start_in_process_s": round(fixture, 2),
    }
    if args.json:
        print(json.dumps(numbers, indent=2))
        return
    width = max(map(len, numbers))
    for name, value in numbers.items():
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
