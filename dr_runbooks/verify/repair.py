"""Re-driving replication of versions the replica lacks: copy the source's current version in place.

S3 replicates new versions only; an object that failed to replicate (or was written while replication was paused
or misconfigured) stays unreplicated forever. Copying the current version onto its own key makes a new version with
the same bytes, metadata, storage class and checksum, which the replication rule picks up like any new write. The
old version stays (Object Lock keeps it anyway). For very large sets, S3 Batch Replication does the same job as a
managed batch job (see docs/verify.md); this re-drive is for the tens to thousands of versions a check finds.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import ClientError

from dr_runbooks.verify.model import Difference, Repair

#: HeadObject fields that CopyObject must be given again when it replaces the metadata.
_KEPT_HEADERS = ("ContentType", "CacheControl", "ContentDisposition", "ContentEncoding", "ContentLanguage",
                 "StorageClass", "ServerSideEncryption", "SSEKMSKeyId")


#: Content-MD5 of an empty request body (a CopyObject request has none).
EMPTY_BODY_MD5 = base64.b64encode(hashlib.md5(b"").digest()).decode()


def _content_md5(params: dict[str, Any], **_: Any) -> None:
    params["headers"].setdefault("Content-MD5", EMPTY_BODY_MD5)


def redrive(client: Any, bucket: str, key: str) -> Repair:
    """Copy the current version of `key` onto itself so that replication sees a new version.

    Writes into an Object Lock bucket must carry Content-MD5 or an SDK checksum header (moto enforces it for copies
    too); the copy's request body is empty, so the empty body's MD5 is correct anywhere and satisfies both.
    """
    client.meta.events.register("before-call.s3.CopyObject", _content_md5, unique_id="ehr-dr-copy-content-md5")
    try:
        head = client.head_object(Bucket=bucket, Key=key)
        # Copying an object onto itself is refused unless something changes: REPLACE with the same metadata is the
        # documented way to rewrite it unchanged.
        kept = {name: head[name] for name in _KEPT_HEADERS if head.get(name)}
        copied = client.copy_object(
            Bucket=bucket,
            Key=key,
            CopySource={"Bucket": bucket, "Key": key, "VersionId": head["VersionId"]},
            MetadataDirective="REPLACE",
            Metadata=head.get("Metadata", {}),
            ChecksumAlgorithm="SHA256",
            **kept,
        )
    except ClientError as error:
        return Repair(key=key, source_version_id=None, new_version_id=None, error=str(error))
    return Repair(key=key, source_version_id=head["VersionId"], new_version_id=copied.get("VersionId"))


def redrive_all(client: Any, bucket: str, differences: Iterable[Difference], concurrency: int = 8) -> list[Repair]:
    """Re-drive every repairable difference (missing, or different on the replica), concurrently."""
    keys = sorted({difference.key for difference in differences if difference.repairable})
    with ThreadPoolExecutor(concurrency, thread_name_prefix="redrive") as pool:
        return list(pool.map(lambda key: redrive(client, bucket, key), keys))
