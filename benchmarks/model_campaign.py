"""A long model-based campaign: random sequences of on-call life on the sandbox, invariants checked after every step.

    python benchmarks/model_campaign.py [--campaigns 5] [--sequences 10] [--steps 12] [--seed 1] [--json]

Each campaign is one run of `tests/model/test_oncall_model.py` (one sandbox, `--sequences` sequences of `--steps`
steps each, from its own seed: `--seed`, `--seed + 1`, ...), so a finding is reproducible from its seed. It reports
per campaign: the seed, wall time, the drctl commands run and their exit codes, and the first invariant broken with
the sequence that broke it. CI runs the same test with a few short sequences; this is where the long ones run.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TEST = "tests/model/test_oncall_model.py"


def campaign(seed: int, sequences: int, steps: int) -> dict[str, Any]:
    environment = {**os.environ, "EHR_DR_MODEL_EXAMPLES": str(sequences), "EHR_DR_MODEL_STEPS": str(steps),
                   "EHR_DR_MODEL_SEED": str(seed)}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", TEST], cwd=ROOT,
                          env=environment, capture_output=True, text=True, check=False)
    commands = re.findall(r"^drctl (\S+(?: \S+)?) .* -> (\d):", done.stdout, re.MULTILINE)
    finding = re.search(r"^(\w+: .*?)(?=^-{5,}|^=+ short test summary)", done.stdout, re.MULTILINE | re.DOTALL)
    return {
        "seed": seed,
        "seconds": round(time.monotonic() - started, 1),
        "passed": done.returncode == 0,
        "sequences_started": done.stdout.count("--- new sequence ---"),
        "commands": dict(collections.Counter(f"{name.split(' --')[0]} -> {code}" for name, code in commands)),
        "finding": finding.group(1).strip() if finding else (None if done.returncode == 0 else done.stdout[-3000:]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaigns", type=int, default=5)
    parser.add_argument("--sequences", type=int, default=10)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args()
    results = [campaign(arguments.seed + index, arguments.sequences, arguments.steps)
               for index in range(arguments.campaigns)]
    if arguments.json:
        print(json.dumps(results, indent=2))
        return
    for result in results:
        verdict = "kept every invariant" if result["passed"] else "BROKE AN INVARIANT"
        print(f"seed {result['seed']}: {result['sequences_started']} sequences in {result['seconds']} s, {verdict}")
        print(f"  commands: {result['commands']}")
        if result["finding"]:
            print("  " + result["finding"].replace("\n", "\n  "))


if __name__ == "__main__":
    main()
