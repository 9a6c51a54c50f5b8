"""Fault injection: rehearse an outage against the sandbox (a dark region, throttled APIs).

Server side, `install` registers a guard that runs before anything else on every request and the actions that set the
faults; client side, `FaultsClient` sets them through the control API, from a test or from `drctl sandbox fault`:

- **region down**: every request signed for that region is dropped without an answer (the connection closes), which
  is what a client sees when a regional endpoint is dark: botocore raises a connection error after its retries, at
  once, with no timeout to wait for. Global data planes the runbooks may use (Route 53 signs for us-east-1) go dark
  with us-east-1, as they would for a client whose only path is through that region's endpoint.
- **throttle**: the next `calls` calls of a service, or `percent` % of them, get AWS's throttling error in the shape of
  the service's protocol (`Throttling`, S3 `SlowDown` 503, EC2 `RequestLimitExceeded`), which botocore's retry modes
  recognise and retry.

Other emulations register their own faults as actions (`replication-pause`, sandbox-db's `kill-primary-db`);
`FaultsClient.action(name, **arguments)` runs any of them.
"""

from __future__ import annotations

import json
import random
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from ehr_dr_sandbox.context import SandboxContext
from ehr_dr_sandbox.dispatch import DROP, Call, Registry, Reply

CONTROL_PREFIX = "/_sandbox"

#: The throttling error of each protocol, as AWS sends it and botocore's retry handler recognises it.
_THROTTLE_ERRORS = {
    "s3": ("SlowDown", 503),
    "ec2": ("RequestLimitExceeded", 503),
    "json": ("ThrottlingException", 400),
    "rest-json": ("ThrottlingException", 429),
}


@dataclass
class Throttle:
    calls: int | None = None
    percent: float = 0.0

    def hit(self) -> bool:
        if self.calls is not None:
            if self.calls <= 0:
                return False
            self.calls -= 1
            return True
        return random.random() * 100 < self.percent


@dataclass
class FaultState:
    down_regions: set[str] = field(default_factory=set)
    throttles: dict[str, Throttle] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def verdict(self, call: Call) -> Reply | object | None:
        with self.lock:
            if call.region in self.down_regions:
                return DROP
            throttle = self.throttles.get(call.service)
            throttled = throttle is not None and throttle.hit()
        if not throttled:
            return None
        code, status = _THROTTLE_ERRORS.get(call.service, _THROTTLE_ERRORS.get(call.protocol, ("Throttling", 400)))
        return Reply.error(call, code, "Rate exceeded (sandbox fault)", status)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "down_regions": sorted(self.down_regions),
                "throttles": {name: vars(t) for name, t in self.throttles.items() if t.calls != 0},
            }


def install(registry: Registry, context: SandboxContext) -> None:
    state = FaultState(down_regions=context.down_regions)
    regions = set(context.config.regions)

    def region_of(arguments: dict[str, Any]) -> str:
        region = arguments.get("region")
        if region not in regions:
            raise ValueError(f"region {region!r} is not one of this sandbox's regions ({', '.join(sorted(regions))})")
        return region

    registry.guard(state.verdict)

    @registry.action("region-down")
    def region_down(arguments: dict[str, Any]) -> dict[str, Any]:
        with state.lock:
            state.down_regions.add(region_of(arguments))
        return state.snapshot()

    @registry.action("region-up")
    def region_up(arguments: dict[str, Any]) -> dict[str, Any]:
        with state.lock:
            state.down_regions.discard(region_of(arguments))
        return state.snapshot()

    @registry.action("throttle")
    def throttle(arguments: dict[str, Any]) -> dict[str, Any]:
        service, calls, percent = arguments.get("service"), arguments.get("calls"), arguments.get("percent")
        if not service or (calls is None) == (percent is None):
            raise ValueError("throttle needs a service and exactly one of calls (the next N) or percent (0-100)")
        if percent is not None and not 0 <= float(percent) <= 100:
            raise ValueError(f"throttle percent must be 0-100 (got {percent})")
        with state.lock:
            state.throttles[service] = Throttle(int(calls) if calls is not None else None, float(percent or 0))
        return state.snapshot()

    @registry.action("clear")
    def clear(arguments: dict[str, Any]) -> dict[str, Any]:
        with state.lock:
            state.down_regions.clear()
            state.throttles.clear()
        return state.snapshot()

    registry.report("faults")(state.snapshot)


class SandboxControlError(RuntimeError):
    """The sandbox refused a control request (an unknown action, a bad argument): the message says why."""


class FaultsClient:
    """Set the sandbox's faults from a test, a drill or the CLI, through the control API of its endpoint."""

    def __init__(self, endpoint_url: str):
        self.endpoint_url = endpoint_url.rstrip("/")

    def action(self, name: str, **arguments: Any) -> Any:
        return control_request(self.endpoint_url, f"actions/{name}", arguments)

    def region_down(self, region: str) -> Any:
        return self.action("region-down", region=region)

    def region_up(self, region: str) -> Any:
        return self.action("region-up", region=region)

    def throttle(self, service: str, *, calls: int | None = None, percent: float | None = None) -> Any:
        return self.action("throttle", service=service, calls=calls, percent=percent)

    def pause_replication(self) -> Any:
        return self.action("replication-pause")

    def resume_replication(self) -> Any:
        return self.action("replication-resume")

    def clear(self) -> Any:
        return self.action("clear")


def control_request(endpoint_url: str, path: str, body: dict[str, Any] | None = None, timeout: float = 300) -> Any:
    """GET (no body) or POST a JSON document to the control API; its error message becomes the exception's."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{endpoint_url.rstrip('/')}{CONTROL_PREFIX}/{path}", data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        detail = json.loads(error.read() or b"{}").get("error", error.reason)
        raise SandboxControlError(detail) from None
