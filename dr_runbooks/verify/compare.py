"""Comparing the primary and replica archives by listing: every current version on both sides, nothing extra.

The cost model is the point: a listing page carries 1,000 keys, so comparing N objects costs about 2N/1000 list calls
(one per side), plus a few calls to find the prefix partitions, plus — only for keys that differ — one
ListObjectVersions to tell a missing object from a delete marker, plus — only with `deep` — one HEAD per object per
side for the SHA-256 checksum. Sizes are compared from the listings; ETags are not (under SSE-KMS an ETag is not a
content digest and may differ between the copies), checksums are what `deep` is for.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from dr_runbooks.session import AwsSession
from dr_runbooks.topology import Topology
from dr_runbooks.verify.listing import LISTERS, Listing, prefetched
from dr_runbooks.verify.model import Difference, ObjectState, ReplicationReport

#: `charts/<practice>/`: the root, then `charts/`, then one partition per practice.
DEFAULT_PARTITION_DEPTH = 2
DEFAULT_CONCURRENCY = 8
#: Deep checks are submitted in batches so that memory stays bounded however large a partition is.
DEEP_BATCH = 500


@dataclass(frozen=True)
class Side:
    """One archive: a bucket and an S3 client of its region."""

    client: Any
    bucket: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}"


def chart_archives(aws: AwsSession, topology: Topology, source_region: str) -> tuple[Side, Side]:
    """The chart archive of `source_region` and its replica in the partner region, as the topology names them."""
    replica_region = topology.partner(source_region)
    return (Side(aws.client("s3", source_region), topology.in_region(source_region).chart_bucket),
            Side(aws.client("s3", replica_region), topology.in_region(replica_region).chart_bucket))


class Progress:
    """What the comparison reports as it goes; the CLI draws it with rich, tests ignore it."""

    def partitions(self, total: int) -> None:
        """The number of partitions is known (the bar's total)."""

    def compared(self, objects: int) -> None:
        """`objects` more keys were compared."""

    def partition_done(self) -> None:
        """One partition finished."""


def merge_join(
    source: Iterable[ObjectState], replica: Iterable[ObjectState]
) -> Iterator[tuple[ObjectState | None, ObjectState | None]]:
    """Pairs of the same key from two key-ordered streams; None where one side lacks the key."""
    sentinel = ObjectState(key="")
    left, right = iter(source), iter(replica)
    a, b = next(left, sentinel), next(right, sentinel)
    while a is not sentinel or b is not sentinel:
        if b is sentinel or (a is not sentinel and a.key < b.key):
            yield a, None
            a = next(left, sentinel)
        elif a is sentinel or b.key < a.key:
            yield None, b
            b = next(right, sentinel)
        else:
            yield a, b
            a, b = next(left, sentinel), next(right, sentinel)


def judge(source: ObjectState | None, replica: ObjectState | None) -> Difference | None:
    """The difference between the two current states of a key, from listing data alone (None: they agree)."""
    key = (source or replica).key  # type: ignore[union-attr]
    present = {side: state is not None and not state.delete_marker for side, state in (("s", source), ("r", replica))}
    kind = None
    if present["s"] and not present["r"]:
        kind = "delete-marker-on-replica-only" if replica is not None else "missing-on-replica"
    elif present["r"] and not present["s"]:
        kind = "delete-marker-not-replicated" if source is not None else "extra-on-replica"
    elif not present["s"] and not present["r"]:
        kind = "delete-marker-not-replicated" if replica is None else None
    elif source is not None and replica is not None and source.size != replica.size:
        kind = "size-mismatch"
    return None if kind is None else Difference(key=key, kind=kind, source=source, replica=replica)


def latest_state(client: Any, bucket: str, key: str) -> ObjectState | None:
    """The current version or delete marker of exactly `key`, or None when the key has no version at all."""
    page = client.list_object_versions(Bucket=bucket, Prefix=key, MaxKeys=10)
    for item in page.get("DeleteMarkers", ()):
        if item["Key"] == key and item.get("IsLatest"):
            return ObjectState(key=key, delete_marker=True, version_id=item.get("VersionId"))
    for item in page.get("Versions", ()):
        if item["Key"] == key and item.get("IsLatest"):
            return ObjectState(key=key, size=item["Size"], version_id=item.get("VersionId"),
                               etag=item.get("ETag", "").strip('"'))
    return None


def classify(difference: Difference, source: Side, replica: Side) -> Difference:
    """A missing or extra key seen by a current-only listing, re-judged with the versions of the side that lacks it
    (a delete marker is invisible to ListObjectsV2)."""
    if difference.kind == "missing-on-replica" and difference.replica is None:
        return judge(difference.source, latest_state(replica.client, replica.bucket, difference.key)) or difference
    if difference.kind == "extra-on-replica" and difference.source is None:
        return judge(latest_state(source.client, source.bucket, difference.key), difference.replica) or difference
    return difference


def checksum(side: Side, key: str) -> str | None:
    head = side.client.head_object(Bucket=side.bucket, Key=key, ChecksumMode="ENABLED")
    return head.get("ChecksumSHA256")


def deep_check(pool: ThreadPoolExecutor, source: Side, replica: Side,
               pairs: list[tuple[ObjectState, ObjectState]]) -> list[Difference]:
    """Checksum differences among `pairs` (same key, same size): one HEAD per object per side, concurrently."""
    sums = list(zip(
        pool.map(lambda pair: checksum(source, pair[0].key), pairs),
        pool.map(lambda pair: checksum(replica, pair[1].key), pairs),
        strict=True,
    ))
    differences = []
    for (a, b), (sum_a, sum_b) in zip(pairs, sums, strict=True):
        if sum_a is None or sum_b is None:
            kind = "checksum-missing"
        elif sum_a != sum_b:
            kind = "checksum-mismatch"
        else:
            continue
        differences.append(Difference(
            key=a.key, kind=kind,
            source=a.model_copy(update={"checksum_sha256": sum_a}),
            replica=b.model_copy(update={"checksum_sha256": sum_b}),
        ))
    return differences


@dataclass
class _Partitions:
    """Result of walking the prefix levels: the leaves to list in full, and what the levels themselves held."""

    leaves: list[str]
    level_pairs: list[tuple[ObjectState | None, ObjectState | None]]


class ReplicationComparison:
    """One comparison of `source` against `replica`; `run()` returns the report."""

    def __init__(
        self,
        source: Side,
        replica: Side,
        listing: Listing = "current",
        deep: bool = False,
        prefix: str = "",
        partition_depth: int = DEFAULT_PARTITION_DEPTH,
        concurrency: int = DEFAULT_CONCURRENCY,
        progress: Progress | None = None,
        request_count: Callable[[], int] = lambda: 0,
    ):
        self.source, self.replica = source, replica
        self.listing, self.deep, self.prefix = listing, deep, prefix
        self.partition_depth, self.concurrency = partition_depth, concurrency
        self.progress = progress or Progress()
        self.request_count = request_count
        self.lister = LISTERS[listing]

    def run(self) -> ReplicationReport:
        started = time.monotonic()
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="verify") as pool, \
                ThreadPoolExecutor(self.concurrency, thread_name_prefix="verify-head") as heads:
            partitions = self._partitions(pool)
            self.progress.partitions(len(partitions.leaves) + 1)
            compared, differences = self._compare(heads, partitions.level_pairs)
            self.progress.partition_done()
            for count, found in pool.map(lambda leaf: self._compare_leaf(heads, leaf), partitions.leaves):
                compared += count
                differences.extend(found)
            if self.listing == "current":
                differences = list(pool.map(lambda d: classify(d, self.source, self.replica), differences))
        return ReplicationReport(
            source=str(self.source), replica=str(self.replica), mode="list", listing=self.listing, deep=self.deep,
            compared=compared, differences=sorted(differences, key=lambda d: d.key),
            requests=self.request_count(), seconds=time.monotonic() - started,
        )

    def _level(self, side: Side, prefix: str) -> tuple[list[ObjectState], list[str]]:
        states: list[ObjectState] = []
        prefixes: list[str] = []
        for page in self.lister(side.client, side.bucket, prefix, delimiter="/"):
            states.extend(page.states)
            prefixes.extend(page.prefixes)
        return states, prefixes

    def _partitions(self, pool: ThreadPoolExecutor) -> _Partitions:
        """Walk `partition_depth` delimited levels on both sides: the union of their prefixes are the leaves."""
        found = _Partitions(leaves=[self.prefix], level_pairs=[])
        for _ in range(self.partition_depth):
            leaves = []
            for prefix in found.leaves:
                (states_a, prefixes_a), (states_b, prefixes_b) = pool.map(
                    lambda side, p=prefix: self._level(side, p), (self.source, self.replica)
                )
                found.level_pairs.extend(merge_join(states_a, states_b))
                leaves.extend(sorted(set(prefixes_a) | set(prefixes_b)))
            found.leaves = leaves
        return found

    def _compare_leaf(self, heads: ThreadPoolExecutor, prefix: str) -> tuple[int, list[Difference]]:
        source = prefetched(self.lister(self.source.client, self.source.bucket, prefix))
        replica = prefetched(self.lister(self.replica.client, self.replica.bucket, prefix))
        result = self._compare(heads, merge_join(source, replica))
        self.progress.partition_done()
        return result

    def _compare(
        self, heads: ThreadPoolExecutor, pairs: Iterable[tuple[ObjectState | None, ObjectState | None]]
    ) -> tuple[int, list[Difference]]:
        compared, differences, same_size = 0, [], []
        for source, replica in pairs:
            compared += 1
            difference = judge(source, replica)
            if difference is not None:
                differences.append(difference)
            elif self.deep and source is not None and replica is not None and not source.delete_marker:
                same_size.append((source, replica))
            if len(same_size) >= DEEP_BATCH:
                differences.extend(deep_check(heads, self.source, self.replica, same_size))
                same_size = []
            if compared % 1000 == 0:
                self.progress.compared(1000)
        if same_size:
            differences.extend(deep_check(heads, self.source, self.replica, same_size))
        self.progress.compared(compared % 1000)
        return compared, differences
