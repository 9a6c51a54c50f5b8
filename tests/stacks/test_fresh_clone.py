"""A fresh clone: the CDK CLI runs the Lambda asset step itself (cdk.json's `build`), and when that step cannot fetch
the dependencies (offline, nothing built yet) the user reads one line saying so, not a Python traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from test_cdk_cli import cdk_synth

REPO = Path(__file__).resolve().parents[2]


def _offline_empty_build(build_dir: Path) -> dict[str, str]:
    """No package index reachable (pip's own config ignored) and an empty build directory."""
    return {"EHR_DR_BUILD_DIR": str(build_dir), "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1"}


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


def test_cdk_json_makes_the_cli_run_the_asset_step_before_synth() -> None:
    assert json.loads((REPO / "cdk.json").read_text())["build"] == "python3 -m stacks.lambda_asset"


def test_asset_step_offline_with_nothing_built_fails_with_one_line(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "stacks.lambda_asset"], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, **_offline_empty_build(tmp_path)}, timeout=300)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: pip could not fetch the runbook function's dependencies from the package index")
    assert "): ERROR: No matching distribution found for " in line  # pip's own reason, on the same line
    assert not list((tmp_path / "lambda").glob("deps-*"))  # nothing half-built left behind


def test_app_run_without_the_build_step_says_what_to_run_in_one_line(tmp_path: Path) -> None:
    context = json.loads((REPO / "cdk.json").read_text())["context"]
    env = {**os.environ, "EHR_DR_BUILD_DIR": str(tmp_path), "CDK_OUTDIR": str(tmp_path / "out"),
           "CDK_CONTEXT_JSON": json.dumps(context), "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    done = subprocess.run([sys.executable, "-m", "stacks.app"], cwd=REPO, capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert _error_lines(done.stderr) == ["error: the runbook function's dependencies are not built: "
                                         "run `python -m stacks.lambda_asset` first"]


def test_cli_synth_offline_with_nothing_built_fails_with_one_line_and_no_traceback(
    tmp_path: Path, monkeypatch
) -> None:
    for name, value in _offline_empty_build(tmp_path / "build").items():
        monkeypatch.setenv(name, value)
    result = cdk_synth(tmp_path / "out")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    (line,) = _error_lines(result.stderr)
    assert line.startswith("error: pip could not fetch the runbook function's dependencies")
    assert not list((tmp_path / "out").glob("*.template.json"))
