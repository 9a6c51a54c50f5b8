"""List-based comparison of two archives: what it finds, and what it costs in requests."""

from __future__ import annotations

import pytest

from dr_runbooks.verify.compare import ReplicationComparison, merge_join
from dr_runbooks.verify.counting import RequestCounter
from dr_runbooks.verify.model import ObjectState


def _states(*keys: str) -> list[ObjectState]:
    return [ObjectState(key=key, size=1) for key in keys]


def _compare(archives, **options):
    return ReplicationComparison(archives.source, archives.replica, **options).run()


def test_merge_join_pairs_equal_keys_and_leaves_gaps():
    pairs = [(a and a.key, b and b.key) for a, b in merge_join(_states("a", "b", "d"), _states("b", "c", "d", "e"))]
    assert pairs == [("a", None), ("b", "b"), (None, "c"), ("d", "d"), (None, "e")]


@pytest.mark.parametrize("listing", ["current", "versions"])
def test_archives_in_sync_have_no_differences(archives, listing):
    archives.put_many(30)
    report = _compare(archives, listing=listing)
    assert report.in_sync and report.compared == 30


def test_keys_outside_the_partitions_are_compared_too(archives):
    archives.put_many(6)
    archives.put("README", replicate=False)
    archives.put("charts/loose.pdf", replicate=False)
    report = _compare(archives)
    assert report.compared == 8
    assert {d.key for d in report.differences} == {"README", "charts/loose.pdf"}


def test_versions_written_while_replication_was_paused_are_missing_on_the_replica(archives, kinds):
    archives.put_many(10)
    archives.put("charts/p001/pt99999/late-1.pdf", replicate=False)
    archives.put("charts/p002/pt99999/late-2.pdf", replicate=False)
    assert kinds(_compare(archives)) == {
        "charts/p001/pt99999/late-1.pdf": "missing-on-replica",
        "charts/p002/pt99999/late-2.pdf": "missing-on-replica",
    }


def test_an_object_only_on_the_replica_is_extra(archives, kinds):
    archives.replica.client.put_object(Bucket=archives.replica.bucket, Key="charts/p000/x.pdf", Body=b"x")
    assert kinds(_compare(archives)) == {"charts/p000/x.pdf": "extra-on-replica"}


def test_a_size_difference_is_found_without_deep(archives, kinds):
    archives.put("charts/p000/a.pdf", b"abc")
    archives.replica.client.put_object(Bucket=archives.replica.bucket, Key="charts/p000/a.pdf", Body=b"abcd")
    assert kinds(_compare(archives)) == {"charts/p000/a.pdf": "size-mismatch"}


def test_a_changed_checksum_of_the_same_size_is_found_only_with_deep(archives, kinds):
    archives.put_many(5)
    archives.put("charts/p000/a.pdf", b"abc")
    archives.replica.client.put_object(Bucket=archives.replica.bucket, Key="charts/p000/a.pdf", Body=b"abd",
                                       ChecksumAlgorithm="SHA256")
    assert _compare(archives).in_sync
    report = _compare(archives, deep=True)
    assert kinds(report) == {"charts/p000/a.pdf": "checksum-mismatch"}
    assert report.differences[0].source.checksum_sha256 != report.differences[0].replica.checksum_sha256


def test_a_copy_without_a_checksum_is_found_with_deep(archives, kinds):
    archives.put("charts/p000/a.pdf", b"abc", replicate=False)
    archives.replica.client.put_object(Bucket=archives.replica.bucket, Key="charts/p000/a.pdf", Body=b"abc")
    assert kinds(_compare(archives, deep=True)) == {"charts/p000/a.pdf": "checksum-missing"}


@pytest.mark.parametrize("listing", ["current", "versions"])
def test_a_delete_marker_not_replicated_is_found(archives, kinds, listing):
    archives.put("charts/p000/a.pdf")
    archives.source.client.delete_object(Bucket=archives.source.bucket, Key="charts/p000/a.pdf")
    assert kinds(_compare(archives, listing=listing)) == {"charts/p000/a.pdf": "delete-marker-not-replicated"}


@pytest.mark.parametrize("listing", ["current", "versions"])
def test_a_delete_marker_only_on_the_replica_is_found(archives, kinds, listing):
    archives.put("charts/p000/a.pdf")
    archives.replica.client.delete_object(Bucket=archives.replica.bucket, Key="charts/p000/a.pdf")
    assert kinds(_compare(archives, listing=listing)) == {"charts/p000/a.pdf": "delete-marker-on-replica-only"}


@pytest.mark.parametrize("listing", ["current", "versions"])
def test_delete_markers_on_both_sides_agree(archives, listing):
    archives.put("charts/p000/a.pdf")
    for side in (archives.source, archives.replica):
        side.client.delete_object(Bucket=side.bucket, Key="charts/p000/a.pdf")
    assert _compare(archives, listing=listing).in_sync


def test_list_mode_costs_one_list_call_per_page_per_side(archives, monkeypatch):
    monkeypatch.setenv("MOTO_S3_DEFAULT_MAX_KEYS", "10")  # pages of 10 keys stand for S3's pages of 1,000
    archives.put_many(30, practices=1)
    counter = RequestCounter()
    for side in (archives.source, archives.replica):
        counter.attach(side.client)
    report = _compare(archives, request_count=counter)
    # 3 pages per side, plus the delimited walk of two levels (root, charts/) on both sides.
    assert report.requests == 2 * 3 + 2 * 2


def test_deep_mode_costs_one_head_per_object_per_side(archives):
    archives.put_many(20)
    counter = RequestCounter()
    for side in (archives.source, archives.replica):
        counter.attach(side.client)
    shallow = _compare(archives, request_count=counter).requests
    assert _compare(archives, deep=True, request_count=counter).requests - 2 * shallow == 2 * 20


def test_an_unpartitioned_comparison_finds_the_same(archives, kinds):
    archives.put_many(12)
    archives.put("charts/p001/late.pdf", replicate=False)
    assert kinds(_compare(archives, partition_depth=0)) == {"charts/p001/late.pdf": "missing-on-replica"}
