"""The SHA-256 of a stored chart file as a reader gets it: GetObject, streamed through the digest a megabyte at a time.

One helper for every check of chart files against their scan rows (the restore drill's restored archive, `drctl
verify charts` on the live archives), so that "matches its scan row" means the same thing everywhere.
"""

from __future__ import annotations

import hashlib
from typing import Any

from botocore.exceptions import ClientError

#: Bytes read per chunk: memory stays bounded whatever the size of a scan.
CHUNK = 1 << 20


def object_sha256(s3: Any, bucket: str, key: str, version_id: str | None = None) -> str | None:
    """Hex SHA-256 of the bytes of `key`'s current version (or of `version_id`); None when there is no such object
    (no version, or a delete marker is current)."""
    request = {"Bucket": bucket, "Key": key, **({"VersionId": version_id} if version_id else {})}
    try:
        body = s3.get_object(**request)["Body"]
    except ClientError as error:
        if error.response["Error"]["Code"] in ("NoSuchKey", "NoSuchVersion", "404"):
            return None
        raise
    digest = hashlib.sha256()
    for chunk in iter(lambda: body.read(CHUNK), b""):
        digest.update(chunk)
    return digest.hexdigest()
