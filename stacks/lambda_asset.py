"""The runbook function's code: `dr_runbooks` and its runtime dependencies for the Lambda platform, without Docker.

Two parts, so that `cdk synth` stays offline and fast:
- the build step (`python -m stacks.lambda_asset`; no aws_cdk import; run once per dependency change, and by CI
  before the tests) installs the runtime dependencies from PyPI as manylinux wheels for the Lambda runtime
  (`pip install --platform --target`) into `build/lambda/deps-<key>/`, the key hashing the requirements and the
  platform: a changed requirement is a new key;
- synth (`asset_dir()`) adds a copy of `dr_runbooks` next to hard links of those files, in a directory named after the
  hash of both; it refuses with one line naming the build step when the dependencies were never built.

boto3 and botocore are left out: the Lambda runtime provides them (and the package would be 25 MB bigger). Nothing from
`stacks/` or aws_cdk goes in: dr_runbooks never imports them, and the test suite checks the asset.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "lambda"
PACKAGE = ROOT / "dr_runbooks"
#: The Lambda platform (stacks/orchestration.py deploys python3.11 on x86_64): the Python and the machine the project
#: is developed and tested on, so the test suite imports the built asset, compiled wheels (pydantic-core,
#: psycopg-binary) included, exactly as Lambda will. A few drill runs a week make arm64's lower price moot.
PIP_PLATFORM, PYTHON_VERSION = "manylinux2014_x86_64", "3.11"
#: Provided by the Lambda runtime: bundling them would only add size.
PROVIDED = ("boto3", "botocore")
#: What only a terminal uses (rendering, the command line, HTML reports): the function never imports them, which the
#: asset test proves by importing every step action with nothing but the asset and the runtime's boto3.
TERMINAL_ONLY = ("click", "jinja2", "rich")
BUILD_COMMAND = "python -m stacks.lambda_asset"


class AssetNotBuilt(RuntimeError):
    """The dependencies of the function were never built on this machine (one line: what to run)."""


def requirements() -> list[str]:
    """The runtime dependencies of `dr_runbooks` and its `lambda` extra as pyproject declares them, minus what the
    Lambda runtime provides and what only a terminal uses."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["lambda"]
    left_out = (*PROVIDED, *TERMINAL_ONLY)
    return sorted(spec for spec in declared if re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0] not in left_out)


def deps_dir() -> Path:
    key = hashlib.sha256("\n".join([PIP_PLATFORM, PYTHON_VERSION, *requirements()]).encode()).hexdigest()[:16]
    return BUILD / f"deps-{key}"


def build_deps() -> Path:
    """Install the dependencies for the Lambda platform (network: PyPI, once per key); atomic, so a rerun is safe."""
    target = deps_dir()
    if target.is_dir():
        return target
    BUILD.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=BUILD, prefix=".deps-"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
         "--target", str(staging), "--platform", PIP_PLATFORM, "--python-version", PYTHON_VERSION,
         "--implementation", "cp", "--only-binary=:all:", *requirements()],
        check=True,
    )
    for leftover in staging.glob("bin"):
        shutil.rmtree(leftover)
    try:
        staging.rename(target)
    except OSError:  # another build finished first: theirs is the same content
        shutil.rmtree(staging)
    return target


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
    print(build_deps())


if __name__ == "__main__":
    main()
