"""`drctl evaluate`'s engine: every readiness check at once, within a time budget, each with its verdict and reason.

Read-only. Who writes is observed first (each region's own view of the global cluster); the target of a failover is
the other region. Then every check starts in its own daemon thread (`observe.race`) on probe clients (2 s connect,
3 s read, 2 attempts), so a dark region costs seconds: its region checks are reported `unknown` at once, and a check
still waiting when the budget is spent is `unknown` too. The estate is ready only when every check passes. Each check
counts its AWS calls (`engine.calls.Recorder`), which the benchmark reports.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import wait
from datetime import UTC, datetime
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel

from dr_runbooks.engine.calls import Recorder, recording
from dr_runbooks.observe import probes, race
from dr_runbooks.orchestration.catalog import RUNBOOKS
from dr_runbooks.readiness import checks
from dr_runbooks.readiness.checks import REGION_CHECKS, NotReady, Scope
from dr_runbooks.readiness.simulation import permissions
from dr_runbooks.session import AwsSession
from dr_runbooks.topology import Topology

#: Seconds the checks may take together; with the topology read first (at most 2.5 s) evaluate stays under 10 s.
EVALUATE_BUDGET_SECONDS = 6.5
#: Seconds to find the writer (the first call into each region: a dark one answers with an error at once, or not).
WRITER_BUDGET_SECONDS = 3.0

ESTATE_CHECKS: dict[str, Callable[[Scope], str]] = {
    "topology": checks.topology,
    "traffic": checks.traffic_gates,
    "aurora": checks.aurora,
    "recovery-points": checks.recovery_points,
    "lock": checks.lock,
    "drills": checks.drills_passed,
    "permissions": permissions,
}
CHECK_NAMES = (*ESTATE_CHECKS, *REGION_CHECKS)

Verdict = Literal["pass", "fail", "unknown"]


class CheckResult(BaseModel):
    check: str
    #: The region whose clients ran it; None: an estate check (it reads each region through its own clients).
    region: str | None
    verdict: Verdict
    reason: str
    seconds: float
    aws_calls: int
    #: The AWS calls it made, by `service.Operation`.
    calls: dict[str, int]

    @property
    def name(self) -> str:
        return self.check if self.region is None else f"{self.check} ({self.region})"


class Evaluation(BaseModel):
    env_name: str
    evaluated_at: datetime
    seconds: float
    writer_region: str | None
    target_region: str
    dark_regions: list[str]
    runbooks: list[str]
    checks: list[CheckResult]

    @property
    def ready(self) -> bool:
        return all(check.verdict == "pass" for check in self.checks)

    @property
    def verdict(self) -> str:
        if self.ready:
            return f"READY to fail over to {self.target_region}"
        failed = [check.name for check in self.checks if check.verdict != "pass"]
        return f"NOT READY to fail over to {self.target_region}: {', '.join(failed)}"

    def summary(self) -> dict[str, Any]:
        return {**self.model_dump(mode="json"), "ready": self.ready, "verdict": self.verdict}


class _Probing(AwsSession):
    """The same credentials and endpoints, every client a probe client: the preflight reads evaluate reuses ask for
    runbook clients (ten attempts, 60 s reads), which would hold a check on a dark region for minutes."""

    def __init__(self, aws: AwsSession) -> None:
        super().__init__(aws.boto, aws.endpoint_url, aws.endpoint_urls, aws.mfa)

    def client(self, service: str, region: str, probe: bool = False) -> Any:
        return super().client(service, region, probe=True)


def _one_line(error: BaseException) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0]


def _writer(aws: AwsSession, topology: Topology) -> tuple[str | None, list[str]]:
    """The writer as the regions see it, and the regions that did not answer (dark)."""
    futures = race.start({region: lambda region=region: probes.global_cluster(
        aws.client("rds", region, probe=True), topology.global_cluster_id) for region in topology.regions})
    wait(futures.values(), timeout=WRITER_BUDGET_SECONDS)
    writer, dark = None, []
    for region, future in futures.items():
        if not future.done() or isinstance(future.exception(), BotoCoreError):
            dark.append(region)
        elif future.exception() is None:
            seen = future.result().writer()
            writer = seen.region if seen and (writer is None or seen.region == region) else writer
    return writer, dark


def _run(check: Callable[[], str]) -> tuple[Verdict, str, float, Recorder]:
    recorder = Recorder()
    started = time.monotonic()
    with recording(recorder):
        try:
            verdict: Verdict
            verdict, reason = "pass", check()
        except NotReady as failed:
            verdict, reason = "fail", str(failed)
        except BotoCoreError as error:
            verdict, reason = "unknown", f"no answer: {_one_line(error)}"
        except ClientError as error:
            verdict, reason = "unknown", f"AWS refused a read: {_one_line(error)}"
    return verdict, reason, time.monotonic() - started, recorder


def evaluate(aws: AwsSession, topology: Topology, runbooks: tuple[str, ...] = tuple(RUNBOOKS),
             budget_seconds: float = EVALUATE_BUDGET_SECONDS, now: datetime | None = None,
             newest_row: Callable[[str], datetime | None] | None = None) -> Evaluation:
    """Every check, `runbooks` being the plans whose permissions and state machines are evaluated; `newest_row`
    reads a region's newest heartbeat row another way than connecting from here (`Scope.newest_row`)."""
    started = time.monotonic()
    aws = _Probing(aws)
    writer, dark = _writer(aws, topology)
    target = topology.partner(writer) if writer else topology.dr_region
    scope = Scope(aws=aws, topology=topology, writer=writer, target=target, runbooks=runbooks,
                  now=now or datetime.now(UTC), newest_row=newest_row)
    work: dict[tuple[str, str | None], Callable[[], str]] = {
        (name, None): (lambda check=check: check(scope)) for name, check in ESTATE_CHECKS.items()}
    work |= {(name, region): (lambda check=check, region=region: check(scope, region))
             for name, check in REGION_CHECKS.items() for region in topology.regions if region not in dark}
    futures = race.start({key: lambda job=job: _run(job) for key, job in work.items()})
    wait(futures.values(), timeout=max(budget_seconds - (time.monotonic() - started), 0.5))
    results = []
    for name in CHECK_NAMES:
        for region in ([None] if name in ESTATE_CHECKS else list(topology.regions)):
            future = futures.get((name, region))
            if future is None:
                results.append(CheckResult(check=name, region=region, verdict="unknown", seconds=0, aws_calls=0,
                                           calls={}, reason=f"{region} does not answer"))
            elif not future.done():
                results.append(CheckResult(check=name, region=region, verdict="unknown", seconds=budget_seconds,
                                           aws_calls=0, calls={}, reason=f"no answer within {budget_seconds:.1f} s"))
            else:
                verdict, reason, seconds, recorder = future.result()
                results.append(CheckResult(
                    check=name, region=region, verdict=verdict, reason=reason, seconds=round(seconds, 3),
                    aws_calls=recorder.call_count,
                    calls=dict(Counter(f"{call.service}.{call.operation}" for call in recorder.calls))))
    return Evaluation(env_name=topology.env_name, evaluated_at=scope.now, seconds=round(time.monotonic() - started, 3),
                      writer_region=writer, target_region=target, dark_regions=dark, runbooks=list(runbooks),
                      checks=results)
