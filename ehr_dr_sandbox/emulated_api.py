"""What the emulations of missing AWS APIs share: errors in AWS's shape, answers in AWS's shape.

An emulation raises `ApiError(code, message, status)` for bad input; `answer` turns a handler's result (or that error)
into the `Reply` botocore expects for the call's protocol. Results are serialized with moto's own serializer against
botocore's model of the operation, so field names, nesting and timestamp formats are AWS's, not hand-written XML/JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from moto.core.model import OperationModel
from moto.core.serialize import QuerySerializer, RestJSONSerializer, XFormedAttributePicker
from moto.core.utils import get_service_model

from ehr_dr_sandbox.dispatch import Call, Reply

_SERIALIZERS = {"query": QuerySerializer, "rest-json": RestJSONSerializer}


class ApiError(Exception):
    """A refusal in AWS's terms: the error code botocore raises as `ClientError`, its message and HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@cache
def operation_model(service: str, operation: str) -> OperationModel:
    """botocore's model of the operation, in moto's wrapper classes (what moto's serializer expects)."""
    return get_service_model(service).operation_model(operation)


def serialize(call: Call, result: Any) -> Reply:
    """`result` (a dict of the operation's output members, values may be moto model objects) as AWS would send it."""
    model = operation_model(call.service, call.operation or "")
    serializer = _SERIALIZERS[model.service_model.protocol](operation_model=model,
                                                             value_picker=XFormedAttributePicker())
    out = serializer.serialize(result)
    body = out["body"].encode() if isinstance(out["body"], str) else out["body"]
    headers = [(key, str(value)) for key, value in out["headers"].items()]
    if not any(key.lower() == "content-type" for key, _ in headers):
        headers.append(("Content-Type", "application/json" if model.service_model.protocol == "rest-json"
                        else "text/xml"))
    return Reply(int(out["status_code"]), [*headers, ("Content-Length", str(len(body)))], body)


def answer(call: Call, handler: Callable[[], Any]) -> Reply:
    """Run `handler`; its result serialized, or its `ApiError` as AWS's error reply."""
    try:
        return serialize(call, handler())
    except ApiError as error:
        return Reply.error(call, error.code, error.message, error.status)
