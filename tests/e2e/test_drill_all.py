"""`drctl drill all --sandbox` as a user runs it: a subprocess in a fresh directory, the report files at the end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DRCTL = Path(sys.executable).with_name("drctl")


def test_drill_all_on_the_sandbox_writes_the_report_and_exits_0(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "EHR_DR_"))}
    result = subprocess.run(
        [str(DRCTL), "drill", "all", "--sandbox", "--cdk-json", str(REPO / "cdk.json"), "--out", "reports",
         "--patients", "20", "--files-per-patient", "2"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    paths = [line.split()[-1] for line in result.stdout.splitlines() if line.strip()]
    assert [Path(path).suffix for path in paths] == [".html", ".md", ".json"]
    assert all((tmp_path / path).is_file() for path in paths)
    for phase in ("sandbox up", "seed", "restore drill", "failover game day", "verify replication", "sandbox down"):
        assert f"▶ {phase}" in result.stderr
    document = json.loads((tmp_path / paths[2]).read_text())
    assert document["chain"]["intact"] is True
    kinds = [record["kind"] for record in document["records"]]
    assert kinds == ["restore-drill", "switchover", "switchover", "failover-drill", "verify-replication"]
    assert "<svg" in (tmp_path / paths[0]).read_text() or "timeline" in (tmp_path / paths[0]).read_text()
