"""S3 cross-region replication, which moto stores the configuration of but never performs.

What AWS documents (S3 User Guide, "Replicating objects" and "What does Amazon S3 replicate?"), and this emulation does:
- A new object version written to a bucket with a replication configuration is replicated by every *enabled* rule
  whose filter matches it (prefix, tags, or both under `And`; a legacy rule's `Prefix`), to that rule's destination
  bucket; of several matching rules to one destination, the highest `Priority` wins.
- The replica keeps the source's version id, body, checksum, metadata, tags, last-modified and Object Lock retention;
  it is encrypted with the destination's `ReplicaKmsKeyID` when the rule names one (by id, ARN, alias or alias
  ARN; the replica reports the key's ARN, and a key that does not exist fails the replication), and written in the
  rule's storage class. The source version reports `x-amz-replication-status: PENDING` until done, then
  `COMPLETED` (or `FAILED`, counted in `OperationsFailedReplication`); the replica reports `REPLICA`.
- Objects encrypted with SSE-KMS replicate only when `SourceSelectionCriteria.SseKmsEncryptedObjects` is enabled.
- A delete marker (a DELETE without a version id) replicates only when the rule has `DeleteMarkerReplication` enabled,
  or the rule is a legacy (V1, no `Filter`) rule; never for tag-filtered rules. Deleting a specific version is never
  replicated (a malicious delete cannot propagate).
- Replicas are not replicated again: the replica is written to moto's state directly, not through the endpoint, so no
  observer sees it, and a replica is skipped if one ever comes by. This is what makes the two-way setup safe.

Replication metrics (S3 RTC, namespace `AWS/S3`, dimensions SourceBucket/DestinationBucket/RuleId, in the source
bucket's region): `OperationsPendingReplication`, `ReplicationLatency` (age in seconds of the oldest pending operation)
and `OperationsFailedReplication` are measured and put whenever a client reads metrics that mention replication
(moto publishes none), so a runbook reads the backlog as it would in AWS.

Sandbox controls (actions): `replication-pause` / `replication-resume` (rehearse a replication outage: writes queue up,
source versions stay PENDING), `replication-lag {"seconds": N}` (delay before a write is replicated) and
`replication-drain {"timeout": S}` (wait until nothing is queued, for tests and the seed). Status report: `replication`.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import xmltodict
from moto.s3.models import FakeDeleteMarker, FakeKey

from ehr_dr_sandbox.context import SandboxContext
from ehr_dr_sandbox.dispatch import Call, Forward, Registry, Reply

STATUS_HEADER = "x-amz-replication-status"
S3_XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"


@dataclass(order=True)
class Job:
    """One version (or delete marker) to replicate, due at `due` (monotonic clock)."""

    due: float
    sequence: int
    bucket: str = field(compare=False)
    key: str = field(compare=False)
    version_id: str = field(compare=False)
    delete_marker: bool = field(compare=False, default=False)
    enqueued: float = field(compare=False, default_factory=time.monotonic)
    #: (rule id, destination bucket) of each rule that replicates it: the dimensions of its RTC metrics.
    rules: tuple[tuple[str, str], ...] = field(compare=False, default=())


def _listify(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _destination(rule: dict[str, Any]) -> str:
    return rule["Destination"]["Bucket"].removeprefix("arn:aws:s3:::")


def _tags_match(wanted: list[dict[str, str]], tags: dict[str, str]) -> bool:
    return all(tags.get(tag["Key"]) == tag["Value"] for tag in wanted)


def _filter(rule: dict[str, Any]) -> tuple[str, list[dict[str, str]]]:
    """The rule's prefix and tags, whichever schema (V1 `Prefix`, V2 `Filter` with `Prefix`/`Tag`/`And`)."""
    if "Filter" not in rule:
        return rule.get("Prefix") or "", []
    filter_ = rule["Filter"] or {}
    if "And" in filter_:
        both = filter_["And"] or {}
        return both.get("Prefix") or "", _listify(both.get("Tag"))
    return filter_.get("Prefix") or "", _listify(filter_.get("Tag"))


def matching_rules(configuration: dict[str, Any] | None, key: str, tags: dict[str, str], *, kms_encrypted: bool,
                   delete_marker: bool) -> list[dict[str, Any]]:
    """The rules that replicate this version, at most one per destination bucket (the highest priority)."""
    chosen: dict[str, dict[str, Any]] = {}
    for rule in _listify((configuration or {}).get("Rule")):
        if rule.get("Status") != "Enabled":
            continue
        prefix, wanted_tags = _filter(rule)
        if delete_marker:
            legacy = "Filter" not in rule
            enabled = (rule.get("DeleteMarkerReplication") or {}).get("Status") == "Enabled"
            if wanted_tags or not (legacy or enabled) or not key.startswith(prefix):
                continue
        else:
            if not key.startswith(prefix) or not _tags_match(wanted_tags, tags):
                continue
            criteria = ((rule.get("SourceSelectionCriteria") or {}).get("SseKmsEncryptedObjects") or {})
            if kms_encrypted and criteria.get("Status") != "Enabled":
                continue
        destination = _destination(rule)
        current = chosen.get(destination)
        if current is None or int(rule.get("Priority", 0)) > int(current.get("Priority", 0)):
            chosen[destination] = rule
    return list(chosen.values())


class Replicator:
    """The background worker: a due-ordered queue of jobs, pausable, with a settable lag."""

    def __init__(self, context: SandboxContext):
        self.context = context
        self.lag_seconds = 0.0
        self.paused = False
        self.replicated = 0
        self.failed = 0
        self._queue: list[Job] = []
        self._sequence = itertools.count()
        self._in_flight = 0
        self._running_jobs: dict[int, Job] = {}
        self._failed_since_published: Counter[tuple[str, str, str]] = Counter()
        self._wake = threading.Condition()
        self._running = True
        self._thread = threading.Thread(target=self._run, name="sandbox-s3-replication", daemon=True)
        self._thread.start()

    @property
    def s3(self) -> Any:
        return self.context.backend("s3", self.context.config.primary_region)

    # -- enqueue (observers, on the request thread: quick) ---------------------------------------------------------

    def enqueue(self, bucket: str, key: str, version_id: str | None, *, delete_marker: bool = False) -> None:
        if not version_id or version_id == "null":
            return  # an unversioned bucket cannot have replication (S3 requires versioning on both sides)
        backend = self.s3
        configuration = backend.get_bucket_replication(bucket)
        if not configuration:
            return
        source = None if delete_marker else self.version(bucket, key, version_id)
        if source is not None and getattr(source, "replication_status", None) == "REPLICA":
            return
        if source is None and not delete_marker:
            return
        rules = self._rules_for(bucket, source, key=key, delete_marker=delete_marker)
        if not rules:
            return
        if source is not None:
            source.replication_status = "PENDING"
        with self._wake:
            job = Job(time.monotonic() + self.lag_seconds, next(self._sequence), bucket, key, version_id,
                      delete_marker, rules=tuple((rule["ID"], _destination(rule)) for rule in rules))
            heapq.heappush(self._queue, job)
            self._wake.notify()

    def _rules_for(self, bucket: str, source: FakeKey | None, *, key: str, delete_marker: bool) -> list[dict[str, Any]]:
        backend = self.s3
        tags = backend.tagger.get_tag_dict_for_resource(source.arn) if source is not None else {}
        return matching_rules(
            backend.get_bucket_replication(bucket), key, tags,
            kms_encrypted=source is not None and source.encryption == "aws:kms", delete_marker=delete_marker,
        )

    def version(self, bucket: str, key: str, version_id: str) -> FakeKey | None:
        for version in self.s3.get_bucket(bucket).keys.getlist(key, []):
            if isinstance(version, FakeKey) and version.version_id == version_id:
                return version
        return None

    # -- the worker ------------------------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._running and (self.paused or not self._queue or self._queue[0].due > time.monotonic()):
                    timeout = None if self.paused or not self._queue else self._queue[0].due - time.monotonic()
                    self._wake.wait(timeout)
                if not self._running:
                    return
                job = heapq.heappop(self._queue)
                self._in_flight += 1
                self._running_jobs[id(job)] = job
            try:
                self._replicate(job)
                self.replicated += 1
            except Exception:
                self.failed += 1
                source = None if job.delete_marker else self.version(job.bucket, job.key, job.version_id)
                if source is not None:
                    source.replication_status = "FAILED"
                with self._wake:
                    for rule in job.rules:
                        self._failed_since_published[(job.bucket, *rule)] += 1
                self.context.log.exception("sandbox: replicating %s/%s %s failed", job.bucket, job.key,
                                           job.version_id)
            finally:
                with self._wake:
                    self._in_flight -= 1
                    self._running_jobs.pop(id(job), None)
                    self._wake.notify_all()

    def _replicate(self, job: Job) -> None:
        backend = self.s3
        if job.delete_marker:
            for rule in self._rules_for(job.bucket, None, key=job.key, delete_marker=True):
                destination = backend.get_bucket(_destination(rule))
                if job.key in destination.keys:
                    marker = FakeDeleteMarker(key=destination.keys[job.key])
                    marker._version_id = job.version_id
                    destination.keys[job.key] = marker
            return
        source = self.version(job.bucket, job.key, job.version_id)
        if source is None:
            return  # the version was deleted before it was replicated: nothing left to copy
        for rule in self._rules_for(job.bucket, source, key=job.key, delete_marker=False):
            self._copy(source, rule)
        source.replication_status = "COMPLETED"

    def _copy(self, source: FakeKey, rule: dict[str, Any]) -> None:
        backend = self.s3
        target = rule["Destination"]
        bucket = _destination(rule)
        replica_key = (target.get("EncryptionConfiguration") or {}).get("ReplicaKmsKeyID")
        if replica_key:  # a key id, key ARN, alias or alias ARN; S3 reports the key's ARN (an unknown key fails)
            region = replica_key.split(":")[3] if replica_key.startswith("arn:") else backend.get_bucket(
                bucket).region_name
            replica_key = self.context.backend("kms", region).describe_key(replica_key).arn
        replica = backend.put_object(
            bucket_name=bucket, key_name=source.name, value=source.value,
            storage=target.get("StorageClass") or source.storage_class, etag=source._etag,
            encryption="aws:kms" if replica_key else source.encryption,
            kms_key_id=replica_key or source.kms_key_id, bucket_key_enabled=source.bucket_key_enabled,
            lock_mode=source.lock_mode, lock_legal_status=source.lock_legal_status, lock_until=source.lock_until,
            checksum_value=source.checksum_value, disable_notification=True,
        )
        replica._version_id = source.version_id
        replica.last_modified = source.last_modified
        replica.checksum_algorithm = source.checksum_algorithm
        replica.checksum_type = source.checksum_type
        replica.set_metadata(source.metadata)
        backend.tagger.copy_tags(source.arn, replica.arn)
        replica.replication_status = "REPLICA"

    # -- controls --------------------------------------------------------------------------------------------------

    def set_paused(self, paused: bool) -> dict[str, Any]:
        with self._wake:
            self.paused = paused
            self._wake.notify_all()
        return self.report()

    def drain(self, timeout: float) -> dict[str, Any]:
        """Wait until nothing is queued or in flight; refused while paused (it would never end)."""
        deadline = time.monotonic() + timeout
        with self._wake:
            if self.paused and self._queue:
                raise ValueError("replication is paused: resume it before draining")
            while self._queue or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ValueError(f"replication backlog of {len(self._queue)} not drained in {timeout} s")
                self._wake.wait(min(remaining, 0.05))
        return self.report()

    def report(self) -> dict[str, Any]:
        with self._wake:
            oldest = min((job.enqueued for job in self._queue), default=time.monotonic())
            backlog = len(self._queue)
        return {
            "paused": self.paused, "lag_seconds": self.lag_seconds, "backlog": backlog,
            "oldest_pending_seconds": round(time.monotonic() - oldest, 3),
            "replicated": self.replicated, "failed": self.failed,
        }

    def publish_metrics(self) -> None:
        """Put one datapoint of each RTC metric per rule, measured now, in each source bucket's region (as S3 does
        with replication metrics enabled): pending operations, latency (the age of the oldest pending one) and the
        operations that failed since the last publication."""
        backend, now = self.s3, time.monotonic()
        with self._wake:
            pending = [*self._queue, *self._running_jobs.values()]
            failed, self._failed_since_published = self._failed_since_published, Counter()
        stamp = datetime.now(UTC).replace(tzinfo=None)  # moto keeps metric timestamps naive (UTC)
        for name, bucket in list(backend.buckets.items()):
            configuration = getattr(bucket, "replication", None)
            for rule in _listify((configuration or {}).get("Rule")):
                dimension = (name, rule["ID"], _destination(rule))
                waiting = [job.enqueued for job in pending if job.bucket == name and dimension[1:] in job.rules]
                values = {
                    "OperationsPendingReplication": float(len(waiting)),
                    "ReplicationLatency": round(now - min(waiting), 3) if waiting else 0.0,
                    "OperationsFailedReplication": float(failed[dimension]),
                }
                dimensions = [{"Name": "SourceBucket", "Value": name}, {"Name": "DestinationBucket",
                              "Value": dimension[2]}, {"Name": "RuleId", "Value": dimension[1]}]
                self.context.backend("cloudwatch", bucket.region_name).put_metric_data("AWS/S3", [
                    {"MetricName": metric, "Value": value, "Timestamp": stamp, "Dimensions": dimensions,
                     "Unit": "Seconds" if metric == "ReplicationLatency" else "Count"}
                    for metric, value in values.items()])

    def stop(self) -> None:
        with self._wake:
            self._running = False
            self._wake.notify_all()
        self._thread.join(timeout=5)


def _deleted_markers(body: bytes) -> list[tuple[str, str]]:
    """(key, delete marker version id) of each delete marker a DeleteObjects result reports."""
    markers = []
    for deleted in ET.fromstring(body).iter():
        if not deleted.tag.endswith("Deleted"):
            continue
        fields = {child.tag.rpartition("}")[2]: child.text for child in deleted}
        if fields.get("DeleteMarker") == "true" and fields.get("DeleteMarkerVersionId") and not fields.get(
                "VersionId"):
            markers.append((fields["Key"], fields["DeleteMarkerVersionId"]))
    return markers


def install(registry: Registry, context: SandboxContext) -> None:
    replicator = Replicator(context)
    context.on_stop(replicator.stop)
    context.on_new_version(replicator.enqueue)

    def new_version(call: Call, reply: Reply) -> None:
        replicator.enqueue(call.uri_params["Bucket"], call.uri_params["Key"], reply.header("x-amz-version-id"))

    for operation in ("PutObject", "CopyObject", "CompleteMultipartUpload"):
        registry.observe("s3", operation)(new_version)

    @registry.observe("s3", "DeleteObject")
    def delete_marker(call: Call, reply: Reply) -> None:
        if "versionId" not in call.query and reply.header("x-amz-delete-marker") == "true":
            replicator.enqueue(call.uri_params["Bucket"], call.uri_params["Key"], reply.header("x-amz-version-id"),
                               delete_marker=True)

    @registry.observe("s3", "DeleteObjects")
    def delete_markers(call: Call, reply: Reply) -> None:
        for key, version_id in _deleted_markers(reply.body):
            replicator.enqueue(call.uri_params["Bucket"], key, version_id, delete_marker=True)

    def with_status(call: Call, forward: Forward) -> Reply:
        """AWS reports each version's replication status on GET and HEAD; moto has no such field."""
        reply = forward()
        version_id = reply.header("x-amz-version-id")
        if not reply.ok or not version_id:
            return reply
        version = replicator.version(call.uri_params["Bucket"], call.uri_params["Key"], version_id)
        status = getattr(version, "replication_status", None)
        if status is None:
            return reply
        return Reply(reply.status, [*reply.headers, (STATUS_HEADER, status)], reply.body)

    registry.intercept("s3", "GetObject")(with_status)
    registry.intercept("s3", "HeadObject")(with_status)

    def fresh_metrics_first(call: Call, forward: Forward) -> Reply:
        """moto never publishes S3's replication metrics: measure them when someone reads them."""
        if b"Replication" in call.body or "Replication" in str(call.query):
            replicator.publish_metrics()
        return forward()

    for operation in ("GetMetricStatistics", "GetMetricData"):
        registry.intercept("monitoring", operation)(fresh_metrics_first)

    @registry.intercept("s3", "GetBucketReplication")
    def stored_configuration(call: Call, forward: Forward) -> Reply:
        """moto answers every rule with delete-marker replication Disabled and drops the selection criteria:
        answer the configuration as it was put, as S3 does."""
        reply = forward()
        configuration = replicator.s3.get_bucket_replication(call.uri_params["Bucket"]) if reply.ok else None
        if not configuration:
            return reply
        document = {key: value for key, value in configuration.items() if not key.startswith("@")}
        document["@xmlns"] = S3_XMLNS
        return reply.with_body(xmltodict.unparse({"ReplicationConfiguration": document}).encode())

    @registry.action("replication-pause")
    def pause(arguments: dict[str, Any]) -> dict[str, Any]:
        return replicator.set_paused(True)

    @registry.action("replication-resume")
    def resume(arguments: dict[str, Any]) -> dict[str, Any]:
        return replicator.set_paused(False)

    @registry.action("replication-lag")
    def lag(arguments: dict[str, Any]) -> dict[str, Any]:
        seconds = float(arguments.get("seconds", -1))
        if seconds < 0:
            raise ValueError("replication-lag needs seconds >= 0")
        replicator.lag_seconds = seconds
        return replicator.report()

    @registry.action("replication-drain")
    def drain(arguments: dict[str, Any]) -> dict[str, Any]:
        return replicator.drain(float(arguments.get("timeout", 60)))

    registry.report("replication")(replicator.report)
