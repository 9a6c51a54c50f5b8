"""Measure the runbook Lambda package: unzipped size (the 250 MB Lambda limit; our target 20 MB) and zipped size, by
top-level package, as synth would upload it (boto3/botocore and their own dependencies excluded: the runtime provides
them).

    python benchmarks/lambda_package.py        # builds the dependencies first if they are not cached (needs PyPI)

Also times the two halves: the build step (once per dependency change, network) and the asset assembly synth does
(offline). Prints the load average: on a shared machine timings say as much about the neighbours.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stacks import lambda_asset


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def main() -> None:
    started = time.perf_counter()
    lambda_asset.build_deps()
    built = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as scratch:
        # A fresh assembly (not the cached one), so its time is what a synth after a code change pays.
        original = lambda_asset.BUILD
        lambda_asset.BUILD = Path(scratch)
        shutil.copytree(original / lambda_asset.deps_dir().name, Path(scratch) / lambda_asset.deps_dir().name)
        started = time.perf_counter()
        asset = lambda_asset.asset_dir()
        assembled = time.perf_counter() - started
        parts = sorted(((_size(item), item.name) for item in asset.iterdir()), reverse=True)
        total = sum(size for size, _ in parts)
        archive = Path(scratch) / "asset.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
            for item in sorted(asset.rglob("*")):
                if item.is_file():
                    zipped.write(item, item.relative_to(asset))
        zipped_size = archive.stat().st_size
        lambda_asset.BUILD = original
    print(f"requirements: {', '.join(lambda_asset.requirements())} ({lambda_asset.PIP_PLATFORM}, "
          f"python {lambda_asset.PYTHON_VERSION})")
    print(f"left to the Lambda runtime: {', '.join((*lambda_asset.PROVIDED, *lambda_asset.RUNTIME_DEPENDENCIES))}")
    print(f"unzipped: {total / 1e6:.1f} MB   zipped: {zipped_size / 1e6:.1f} MB   (target: < 20 MB unzipped)")
    for size, name in parts:
        if size > 100_000 and not name.endswith(".dist-info"):
            print(f"  {size / 1e6:6.2f} MB  {name}")
    print(f"build step: {built:.1f} s (0 when cached)   asset assembly at synth: {assembled:.2f} s")
    print("load average: " + " ".join(f"{load:.2f}" for load in os.getloadavg()))


if __name__ == "__main__":
    main()
