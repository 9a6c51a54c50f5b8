"""Listing one side of the archive: the current state of every key, in key order, page by page.

Two listings give the same stream of `ObjectState`s:

- `current` (ListObjectsV2): one request per 1,000 current objects whatever the history; delete markers are invisible
  (a key whose current version is a delete marker is simply absent), so the comparison classifies the few keys that
  differ with a targeted ListObjectVersions (see `compare.classify`).
- `versions` (ListObjectVersions): sees delete markers directly, but pages through every noncurrent version too, and on
  moto each page copies the whole bucket (its cost grows with the square of the bucket; measured in docs/verify.md).

The key space is split into prefix partitions (`charts/<practice>/`) that are listed concurrently; within a
partition the pages of a side are fetched one ahead by a background thread, so the two sides and the comparison
overlap while memory stays bounded by a few pages per partition in flight.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from dr_runbooks.verify.model import ObjectState

Listing = Literal["current", "versions"]

#: How many pages a side's background fetcher may hold ahead of the comparison.
PAGES_AHEAD = 2


def _strip(etag: str | None) -> str | None:
    return etag.strip('"') if etag else etag


@dataclass(frozen=True)
class Page:
    """One listing page: the current states in key order, and (delimited listings only) the next-level prefixes."""

    states: list[ObjectState]
    prefixes: list[str] = field(default_factory=list)


def _arguments(bucket: str, prefix: str, delimiter: str | None) -> dict[str, str]:
    return {"Bucket": bucket, "Prefix": prefix, **({"Delimiter": delimiter} if delimiter else {})}


def list_current(client: Any, bucket: str, prefix: str, delimiter: str | None = None) -> Iterator[Page]:
    """Pages of current objects under `prefix` (ListObjectsV2); with `delimiter`, only the keys of that level."""
    for page in client.get_paginator("list_objects_v2").paginate(**_arguments(bucket, prefix, delimiter)):
        yield Page(
            states=[
                ObjectState(key=item["Key"], size=item["Size"], etag=_strip(item.get("ETag")))
                for item in page.get("Contents", ())
            ],
            prefixes=[entry["Prefix"] for entry in page.get("CommonPrefixes", ())],
        )


def list_versions(client: Any, bucket: str, prefix: str, delimiter: str | None = None) -> Iterator[Page]:
    """Pages of the latest version or delete marker of each key under `prefix` (ListObjectVersions)."""
    for page in client.get_paginator("list_object_versions").paginate(**_arguments(bucket, prefix, delimiter)):
        latest = [
            ObjectState(key=item["Key"], size=item["Size"], version_id=item.get("VersionId"),
                        etag=_strip(item.get("ETag")))
            for item in page.get("Versions", ())
            if item.get("IsLatest")
        ] + [
            ObjectState(key=item["Key"], delete_marker=True, version_id=item.get("VersionId"))
            for item in page.get("DeleteMarkers", ())
            if item.get("IsLatest")
        ]
        yield Page(
            states=sorted(latest, key=lambda state: state.key),
            prefixes=[entry["Prefix"] for entry in page.get("CommonPrefixes", ())],
        )


LISTERS: dict[Listing, Callable[..., Iterator[Page]]] = {
    "current": list_current,
    "versions": list_versions,
}


def prefetched(pages: Iterator[Page], ahead: int = PAGES_AHEAD) -> Iterator[ObjectState]:
    """The states of `pages`, fetched by a background thread up to `ahead` pages in advance.

    An error in the fetcher is raised here, in the consumer; a consumer that stops early lets the fetcher finish
    its current page and end (it is a daemon, and the bounded queue never blocks it for longer than one put).
    """
    buffer: queue.Queue[Page | BaseException | None] = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def fetch() -> None:
        try:
            for page in pages:
                while not stop.is_set():
                    try:
                        buffer.put(page, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put(None)
        except BaseException as error:  # handed to the consumer, which re-raises it
            buffer.put(error)

    threading.Thread(target=fetch, daemon=True, name="list-prefetch").start()
    try:
        while (item := buffer.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield from item.states
    finally:
        stop.set()
