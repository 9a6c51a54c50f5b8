"""`cdk synth` through the pinned CLI, as a user runs it: offline, no credentials, into a private output dir."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CDK = REPO / "node_modules" / ".bin" / "cdk"


def cdk_synth(outdir: Path, *context: str) -> subprocess.CompletedProcess[str]:
    """Credentials and profiles removed; the venv's python first on PATH, as `cdk.json`'s app expects."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_") or key == "AWS_CA_BUNDLE"}
    env |= {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "AWS_EC2_METADATA_DISABLED": "true",
        "CDK_DISABLE_VERSION_CHECK": "1",
    }
    args = [str(CDK), "synth", "--quiet", "--no-notices", "-o", str(outdir)]
    for pair in context:
        args += ["-c", pair]
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def cli_synth(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    outdir = tmp_path_factory.mktemp("cli.out")
    return outdir, cdk_synth(outdir)


def test_pinned_cli_synthesizes_both_regions_offline(cli_synth: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    outdir, result = cli_synth
    assert result.returncode == 0, result.stderr[-2000:]
    for region in ("us-east-1", "us-west-1"):
        assert (outdir / f"ehr-dr-demo-archive-{region}.template.json").exists()


def test_cli_synth_of_the_default_config_has_no_traffic_stack(
    cli_synth: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    outdir, _ = cli_synth
    assert list(outdir.glob("*.template.json"))
    assert not list(outdir.glob("*traffic*.template.json"))


def test_cli_refuses_a_dr_region_equal_to_the_primary(tmp_path: Path) -> None:
    result = cdk_synth(tmp_path, "dr_region=us-east-1")
    assert result.returncode != 0
    assert "dr_region: must differ from primary_region (us-east-1)" in result.stderr
    assert not list(tmp_path.glob("*.template.json"))
