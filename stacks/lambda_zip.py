"""The runbook function's asset as one zip file, so that `cdk synth` copies one file instead of a 20 MB tree.

CDK stages a directory asset by copying every file into the cloud assembly on every synth (about 0.5-0.9 s of the
synth's CPU for this asset); a `.zip` file asset is staged by copying that one file, and deploy uploads it as it is
(Lambda takes the zip). The zip is made once per asset directory (`stacks.lambda_asset.asset_dir()`, whose name is the
hash of its content) and kept next to it in `build/lambda/`, so a changed `dr_runbooks` makes a new one on its first
synth (about 1 s).
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

from stacks.lambda_asset import asset_dir

#: Every entry's timestamp: the zip's bytes depend on the content only (zip cannot store dates before 1980).
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def asset_zip() -> Path:
    """`build/lambda/asset-<hash>.zip`: the function's asset directory zipped, made on first use, then reused."""
    return zip_of(asset_dir())


def asset_hash(zip_path: Path) -> str:
    """The content hash the zip's name carries, for `Code.from_asset(..., asset_hash_type=AssetHashType.CUSTOM)`."""
    return zip_path.stem.removeprefix("asset-")


def zip_of(directory: Path) -> Path:
    """`<directory>.zip` next to it, holding every file below it; an existing one is trusted (the directory's name
    is its content hash, so its zip never changes)."""
    target = directory.with_name(f"{directory.name}.zip")
    if target.is_file():
        return target
    handle, staging = tempfile.mkstemp(dir=directory.parent, prefix=".zip-", suffix=".tmp")
    os.close(handle)
    try:
        with zipfile.ZipFile(staging, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(path for path in directory.rglob("*") if path.is_file()):
                entry = zipfile.ZipInfo(path.relative_to(directory).as_posix(), date_time=ZIP_EPOCH)
                entry.compress_type = zipfile.ZIP_DEFLATED
                # The file's own mode, readable by all: the Lambda runtime's user owns nothing in the package.
                entry.external_attr = ((path.stat().st_mode & 0o777) | 0o444) << 16
                archive.writestr(entry, path.read_bytes())
        os.chmod(staging, 0o644)  # mkstemp makes it private; the directory beside it is readable by all
        os.replace(staging, target)  # atomic: a concurrent synth sees no zip or the whole zip
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    return target
