"""S3 Object Lock compliance mode, where moto is more lenient than AWS: a retention cannot be shortened.

AWS (S3 User Guide, "Locking objects with Object Lock", Retention modes): "In compliance mode, a protected object
version can't be overwritten or deleted by any user, including the root user in your AWS account. When an object is
locked in compliance mode, its retention mode can't be changed, and its retention period can't be shortened." moto
5.2.5 stores whatever PutObjectRetention sends. This intercept refuses, as AWS does (AccessDenied, 403), a
PutObjectRetention on a version locked in compliance mode whose retain-until is still in the future, when the request
would change the mode or bring the date earlier; extending it is forwarded to moto.

moto 5.2.5 also has no GetObjectRetention: it answers `GET ?retention` with the object itself. AWS (S3 API Reference,
GetObjectRetention) answers `<Retention><Mode/><RetainUntilDate/></Retention>` for the version; a version without
retention is answered with the error NoSuchObjectLockConfiguration (404). This intercept answers so from moto's
state. Authorization is the caller's `s3:GetObjectRetention`, which reads no chart (HeadObject is `s3:GetObject`).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

from ehr_dr_sandbox.context import SandboxContext
from ehr_dr_sandbox.dispatch import Call, Forward, Registry, Reply


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _requested(body: bytes) -> tuple[str | None, datetime | None]:
    fields = {element.tag.rpartition("}")[2]: (element.text or "") for element in ET.fromstring(body).iter()}
    until = fields.get("RetainUntilDate")
    return fields.get("Mode"), _instant(until) if until else None


def install(registry: Registry, context: SandboxContext) -> None:
    def version_of(call: Call) -> Any:
        """The object version the call names (None: no such bucket, key or version; moto answers as AWS does)."""
        version_id = (call.query.get("versionId") or [None])[0]
        try:
            return context.backend("s3", call.region).get_object(
                call.uri_params["Bucket"], call.uri_params["Key"], version_id=version_id)
        except Exception:
            return None

    @registry.intercept("s3", "PutObjectRetention")
    def never_shorten_compliance(call: Call, forward: Forward) -> Reply:
        current = version_of(call)
        if current is None or current.lock_mode != "COMPLIANCE" or not current.lock_until:
            return forward()
        until = _instant(current.lock_until)
        if until <= datetime.now(UTC):
            return forward()
        mode, wanted = _requested(call.body)
        if mode != "COMPLIANCE" or wanted is None or wanted < until:
            return Reply.error(call, "AccessDenied", "Access Denied", status=403)
        return forward()

    @registry.intercept("s3", "GetObjectRetention")
    def retention_of_a_version(call: Call, forward: Forward) -> Reply:
        current = version_of(call)
        if current is None:
            return forward()
        if not current.lock_mode or not current.lock_until:
            return Reply.error(call, "NoSuchObjectLockConfiguration",
                               "The specified object does not have a ObjectLock configuration", status=404)
        body = (f'<?xml version="1.0" encoding="UTF-8"?><Retention xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                f"<Mode>{escape(current.lock_mode)}</Mode><RetainUntilDate>{escape(current.lock_until)}"
                "</RetainUntilDate></Retention>").encode()
        return Reply(200, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))], body)
