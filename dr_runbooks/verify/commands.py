"""`drctl verify replication`: compare the primary and replica chart archives, list differences, re-drive the missing.
`drctl verify charts`: check both archives against the SHA-256 the records database holds for each chart.

Exit codes: 0 in sync (all charts good); 1 differences found (with `--repair`, also after re-driving them: replication
takes its time, run the check again); 2 refused (bad input, no topology, unreadable inventory, a region or the records
database that does not answer), nothing changed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import boto3
import botocore.session
import click
import pg8000.exceptions
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from dr_runbooks.commands.common import EXIT_DONE, EXIT_FAILED, Options, refusals
from dr_runbooks.drills import running
from dr_runbooks.drills.commands import evidence_dir_option, finish
from dr_runbooks.engine.journal import new_run_id
from dr_runbooks.evidence.record import EvidenceRecord, Identity
from dr_runbooks.orchestration.commands import drill_remotely
from dr_runbooks.runbooks.canary import DatabaseTlsError, connect, db_endpoint
from dr_runbooks.runbooks.estate import Refused, check_region, load_topology, load_topology_anywhere
from dr_runbooks.session import AwsSession
from dr_runbooks.topology import Topology
from dr_runbooks.verify import charts as chart_check
from dr_runbooks.verify import compare
from dr_runbooks.verify.compare import ReplicationComparison, Side
from dr_runbooks.verify.counting import RequestCounter
from dr_runbooks.verify.evidence import charts_evidence
from dr_runbooks.verify.inventory import InventoryError, compare_inventories
from dr_runbooks.verify.model import ReplicationReport
from dr_runbooks.verify.plan import verify_preflight, writer_region
from dr_runbooks.verify.repair import redrive_all

#: Differences listed in text output; `--output json` lists them all.
SHOWN = 50
#: Where the topology is read before it is known: the design's two regions, DR first (it must answer in a disaster).
TOPOLOGY_REGIONS = ("us-west-1", "us-east-1")


class RichProgress(compare.Progress):
    """Partitions done out of all, and objects compared, on stderr; nothing when stderr is not a terminal."""

    def __init__(self, bar: Progress):
        self.bar = bar
        self.task = bar.add_task("listing partitions", total=None, objects=0)
        self.objects = 0

    def partitions(self, total: int) -> None:
        self.bar.update(self.task, total=total, description="comparing")

    def compared(self, objects: int) -> None:
        self.objects += objects
        self.bar.update(self.task, objects=self.objects)

    def partition_done(self) -> None:
        self.bar.advance(self.task)


def _progress_bar() -> Progress:
    return Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("partitions, {task.fields[objects]:,} objects"), TimeElapsedColumn(),
        console=Console(stderr=True), transient=True,
    )


def listing_session(profile: str | None, endpoint_url: str | None) -> AwsSession:
    """An AwsSession whose clients leave timestamps as text.

    A listing page carries 1,000 LastModified values that botocore parses with dateutil: measured, that was about 90%
    of this command's CPU (0.5 ms per key) and nothing here reads them.
    """
    core = botocore.session.get_session()
    core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=str)
    return AwsSession(boto3.session.Session(botocore_session=core, profile_name=profile), endpoint_url=endpoint_url)


def _sides(
    aws: AwsSession, env_name: str | None, from_region: str | None, source_bucket: str | None,
    replica_bucket: str | None, source_region: str | None, replica_region: str | None,
) -> tuple[Side, Side]:
    """The two archives: named ad hoc, or the chart buckets the environment's topology (SSM) names."""
    if source_bucket or replica_bucket:
        if not (source_bucket and replica_bucket and source_region and replica_region):
            raise Refused("ad hoc use needs --source-bucket, --replica-bucket, --source-region and --replica-region")
        return (Side(aws.client("s3", check_region(source_region)), source_bucket),
                Side(aws.client("s3", check_region(replica_region)), replica_bucket))
    if not env_name:
        raise Refused("name the environment (--env or EHR_DR_ENV), or give --source-bucket and --replica-bucket")
    region = check_region(from_region) if from_region else None
    topology = _topology(aws, env_name)
    return compare.chart_archives(aws, topology, region or topology.primary_region)


def _topology(aws: AwsSession, env_name: str) -> Topology:
    """The topology as published in the first of `TOPOLOGY_REGIONS` that has it (both archives must answer anyway,
    so unlike `drctl status` this needs no racing probe with a short budget)."""
    refusals: list[str] = []
    for region in TOPOLOGY_REGIONS:
        try:
            return load_topology(aws, env_name, region)
        except Refused as refusal:
            refusals.append(str(refusal))
    raise Refused(refusals[0])


def _print_text(report: ReplicationReport) -> None:
    console = Console()
    mode = f"{report.listing} listing" if report.mode == "list" else "inventory reports"
    checks = "size and SHA-256 checksum" if report.deep else "size"
    console.print(
        f"Compared {report.compared:,} keys of {report.source} with {report.replica} ({mode}, {checks}) "
        f"in {report.seconds:.1f} s, {report.requests:,} requests.", highlight=False,
    )
    if report.in_sync:
        console.print("[green]In sync:[/] every current version is on the replica, nothing extra.")
    else:
        table = Table("difference", "keys", title=f"{len(report.differences):,} differences")
        for kind, count in sorted(report.counts().items()):
            table.add_row(kind, f"{count:,}")
        console.print(table)
        for difference in report.differences[:SHOWN]:
            console.print(f"  {difference.kind:32} {difference.key}", highlight=False, soft_wrap=True)
        if len(report.differences) > SHOWN:
            console.print(f"  ... and {len(report.differences) - SHOWN:,} more (--output json lists all)")
    if report.repairs:
        failed = [repair for repair in report.repairs if repair.error]
        console.print(
            f"Re-drove {len(report.repairs) - len(failed):,} versions by copying them in place on the source; "
            "run this check again once replication has caught up (S3 RTC: within 15 minutes)."
        )
        for repair in failed:
            console.print(f"  [red]re-drive failed[/] {repair.key}: {repair.error}", highlight=False)


def connection_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--profile, --endpoint-url and --output, as every drctl command takes them (--env is optional here: ad hoc
    buckets need none)."""
    for option in reversed((
        click.option("--profile", envvar="AWS_PROFILE", default=None, help="AWS profile (or AWS_PROFILE)"),
        click.option("--endpoint-url", envvar="AWS_ENDPOINT_URL", default=None,
                     help="one endpoint for every service, e.g. the sandbox's (or AWS_ENDPOINT_URL)"),
        click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True),
    )):
        command = option(command)
    return command


@click.group("verify")
def verify() -> None:
    """Integrity checks of the estate."""


@verify.command("replication")
@click.option("--env", "env_name", envvar="EHR_DR_ENV", help="environment whose topology names the buckets")
@click.option("--from-region", help="the region replicating from (default: the topology's primary region)")
@click.option("--source-bucket", help="ad hoc: the source archive (instead of --env)")
@click.option("--replica-bucket", help="ad hoc: the replica archive")
@click.option("--source-region", help="ad hoc: region of --source-bucket")
@click.option("--replica-region", help="ad hoc: region of --replica-bucket")
@click.option("--prefix", default="", help="compare only keys under this prefix")
@click.option("--deep", is_flag=True, help="also compare SHA-256 checksums (one HEAD per object per side)")
@click.option("--listing", type=click.Choice(["current", "versions"]), default="current", show_default=True,
              help="ListObjectsV2 (current versions) or ListObjectVersions (sees delete markers while listing)")
@click.option("--partition-depth", type=click.IntRange(0, 8), default=compare.DEFAULT_PARTITION_DEPTH,
              show_default=True, help="prefix levels split into concurrently listed partitions")
@click.option("--concurrency", type=click.IntRange(1, 64), default=compare.DEFAULT_CONCURRENCY, show_default=True)
@click.option("--inventory", nargs=2, metavar="SOURCE_MANIFEST REPLICA_MANIFEST",
              help="compare two S3 Inventory reports (s3://bucket/.../manifest.json) instead of listing")
@click.option("--repair", is_flag=True, help="re-drive replication of missing or different versions (copy in place)")
@click.option("--remote", is_flag=True, help="run the scheduled comparison of --env in AWS: start its state machine in "
                                             "the DR region and follow it (writer archive vs replica)")
@connection_options
@refusals
def replication(
    env_name: str | None, from_region: str | None, source_bucket: str | None, replica_bucket: str | None,
    source_region: str | None, replica_region: str | None, prefix: str, deep: bool, listing: str,
    partition_depth: int, concurrency: int, inventory: tuple[str, str] | None, repair: bool,
    profile: str | None, endpoint_url: str | None, output: str, remote: bool,
) -> None:
    """Compare the primary and replica chart archives: every current version on both sides, same size (and with
    --deep, same checksum), nothing extra, delete markers matching."""
    if remote:
        _remotely(env_name, profile, endpoint_url, output, from_region=from_region, source_bucket=source_bucket,
                  replica_bucket=replica_bucket, prefix=prefix, deep=deep, inventory=inventory, repair=repair)
    aws = listing_session(profile, endpoint_url)
    source, replica = _sides(aws, env_name, from_region, source_bucket, replica_bucket, source_region, replica_region)
    _both_answer(aws, source, replica)
    counter = RequestCounter()
    for side in (source, replica):
        counter.attach(side.client)
    try:
        report = _run(source, replica, inventory, prefix, deep, listing, partition_depth, concurrency, counter, output)
        if repair and not report.in_sync:
            repairs = redrive_all(counter.attach(source.client), source.bucket, report.differences, concurrency)
            report = report.model_copy(update={"repairs": repairs, "requests": counter()})
    except (BotoCoreError, ClientError) as error:
        # A region that went dark or denied mid-way: no verdict can be given, and a traceback would read as exit 1.
        raise Refused(f"the comparison could not finish: {str(error).splitlines()[0]}") from None
    if output == "json":
        click.echo(json.dumps(report.model_dump(mode="json"), indent=2))
    else:
        _print_text(report)
    raise SystemExit(EXIT_DONE if report.in_sync else EXIT_FAILED)


def _both_answer(aws: AwsSession, *sides: Side, command: str = "verify replication") -> None:
    """Both archives must answer before a comparison starts: HeadBucket on a probe client (seconds, not the minutes
    of a runbook client's retries), so a dark or black-holed region is one line, exit 2."""
    for side in sides:
        region = side.client.meta.region_name
        try:
            aws.client("s3", region, probe=True).head_bucket(Bucket=side.bucket)
        except BotoCoreError as error:
            raise Refused(f"{region} does not answer ({str(error).splitlines()[0]}): {command} reads both "
                          "archives; run it when both regions answer") from None
        except ClientError as error:
            raise Refused(f"cannot read {side} in {region}: {error.response['Error'].get('Code')}") from None


def _remotely(env_name: str | None, profile: str | None, endpoint_url: str | None, output: str,
              **local_only: Any) -> NoReturn:
    """The verify-replication state machine of `env_name`'s DR region, printed as a drill's evidence."""
    given = sorted(f"--{name.replace('_', '-')}" for name, value in local_only.items() if value)
    if given:
        raise Refused(f"--remote runs the scheduled comparison (the writer's archive against its replica): "
                      f"{', '.join(given)} apply to a local run only")
    if not env_name:
        raise Refused("--remote needs --env (or EHR_DR_ENV): the environment whose state machine runs it")
    options = Options(env_name, profile, endpoint_url, output)
    aws = options.session()
    topology = _topology(aws, env_name)
    params = verify_preflight(aws, topology, topology.dr_region)
    finish(drill_remotely(aws, topology, "verify-replication", params, options), options)


def _run(source: Side, replica: Side, inventory: tuple[str, str] | None, prefix: str, deep: bool, listing: Any,
         partition_depth: int, concurrency: int, counter: RequestCounter, output: str) -> ReplicationReport:
    if inventory:
        if deep:
            raise Refused("--deep reads checksums from the buckets; inventory mode compares the reports only")
        try:
            return compare_inventories(source, replica, inventory[0], inventory[1], prefix, counter)
        except InventoryError as error:
            raise Refused(str(error)) from None
    with _progress_bar() as bar:
        return ReplicationComparison(
            source, replica, listing=listing, deep=deep, prefix=prefix, partition_depth=partition_depth,
            concurrency=concurrency, progress=RichProgress(bar), request_count=counter,
        ).run()


class ChartProgress(chart_check.Progress):
    """Scan rows checked out of all, on stderr; nothing when stderr is not a terminal."""

    def __init__(self, bar: Progress):
        self.bar = bar
        self.task = bar.add_task("checking charts", total=None)

    def total(self, rows: int) -> None:
        self.bar.update(self.task, total=rows)

    def checked(self, rows: int) -> None:
        self.bar.advance(self.task, rows)


@verify.command("charts")
@click.option("--env", "env_name", envvar="EHR_DR_ENV", help="environment (or EHR_DR_ENV)")
@click.option("--sample", type=click.IntRange(min=1), default=None,
              help=f"check this many scan rows, chosen at random  [default: {chart_check.DEFAULT_SAMPLE}]")
@click.option("--sample-seed", help="choose the sample an earlier run chose (the seed its output and evidence name)")
@click.option("--all", "check_all", is_flag=True, help="check every scan row")
@click.option("--read-bytes", is_flag=True,
              help="hash each chart's bytes (GetObject) instead of reading the SHA-256 S3 stored with it (HeadObject)")
@click.option("--db-region", help="read the scan rows from this region's reader (default: the writer's partner)")
@click.option("--concurrency", type=click.IntRange(1, 64), default=chart_check.DEFAULT_CONCURRENCY, show_default=True)
@evidence_dir_option
@connection_options
@refusals
def charts(
    env_name: str | None, sample: int | None, sample_seed: str | None, check_all: bool, read_bytes: bool,
    db_region: str | None, concurrency: int, evidence_dir: Path, profile: str | None, endpoint_url: str | None,
    output: str,
) -> None:
    """Check each chart's current version, in both regions' archives, against the SHA-256 its scan row holds:
    missing, deleted, corrupted. Records the check as evidence (counts and a digest; no object keys)."""
    if check_all and (sample or sample_seed):
        raise Refused("--all checks every scan row; --sample and --sample-seed choose a sample: give one or the other")
    if not env_name:
        raise Refused("name the environment (--env or EHR_DR_ENV)")
    aws = AwsSession.from_options(profile, endpoint_url)
    # Raced with a short budget, as `drctl status` does: a black-holed region must not cost a client's timeouts.
    topology = load_topology_anywhere(aws, env_name, TOPOLOGY_REGIONS)
    if db_region and db_region not in (topology.primary_region, topology.dr_region):
        raise Refused(f"--db-region {db_region}: the records database of {env_name} is in "
                      f"{topology.primary_region} and {topology.dr_region}")
    sides = [Side(aws.client("s3", region), topology.in_region(region).chart_bucket)
             for region in (topology.primary_region, topology.dr_region)]
    _both_answer(aws, *sides, command="verify charts")
    writer = writer_region(aws, topology, topology.dr_region) or topology.primary_region
    database_region = db_region or topology.partner(writer)
    run_id = new_run_id("charts", database_region)
    started_at = datetime.now(UTC)
    report = _check_charts(aws, topology, sides, database_region, run_id, None if check_all else sample or
                           chart_check.DEFAULT_SAMPLE, None if check_all else sample_seed or run_id, read_bytes,
                           concurrency)
    identity = aws.identity(database_region)
    record = charts_evidence(report, environment=topology.env_name, from_region=writer,
                             to_region=topology.partner(writer), started_at=started_at, sandbox=bool(endpoint_url),
                             identity=Identity(caller_arn=identity.arn, account=topology.account,
                                               mfa_used=identity.mfa))
    sealed = running.append_evidence(aws, topology, record, evidence_dir)
    if output == "json":
        click.echo(json.dumps({**report.model_dump(mode="json"), "passed": report.passed,
                               "evidence": {"sequence": sealed.sequence, "record_hash": sealed.record_hash}},
                              indent=2))
    else:
        _print_charts(report, sealed)
    raise SystemExit(EXIT_DONE if report.passed else EXIT_FAILED)


def _check_charts(aws: AwsSession, topology: Topology, sides: list[Side], database_region: str, run_id: str,
                  sample: int | None, seed: str | None, read_bytes: bool, concurrency: int,
                  ) -> chart_check.ChartsReport:
    """The scan rows (all, or a sample of `sample` chosen by `seed`) from `database_region`'s reader, checked."""
    counter = RequestCounter()
    for side in sides:
        counter.attach(side.client)
    here = topology.in_region(database_region)
    try:
        endpoint = db_endpoint(aws.client("rds", database_region), aws.client("secretsmanager", database_region),
                               here.db_cluster_id, topology.db_secret_name, topology.database_name, reader=True)
        with connect(endpoint) as database:
            rows = chart_check.count_rows(database)
            if not rows:
                raise Refused(f"the records database in {database_region} names no chart files: nothing to check")
            checking = rows if sample is None else min(sample, rows)
            batches = (chart_check.all_rows(database) if seed is None
                       else chart_check.sampled_rows(database, seed, checking))
            with _charts_bar() as bar:
                progress = ChartProgress(bar)
                progress.total(checking)
                checked, regions, findings, seconds = chart_check.ChartCheck(
                    sides, read_bytes, concurrency, progress).run(batches)
    except (OSError, pg8000.exceptions.Error, DatabaseTlsError) as error:
        raise Refused(f"the records database in {database_region} does not answer ({str(error).splitlines()[0]}): "
                      "give --db-region to read the scan rows from the other region") from None
    except (BotoCoreError, ClientError) as error:
        raise Refused(f"the check could not finish: {str(error).splitlines()[0]}") from None
    return chart_check.ChartsReport(
        run_id=run_id, database_region=database_region, method="bytes" if read_bytes else "stored-checksum",
        sampled=seed is not None, sample_seed=seed, scan_rows=rows, checked=checked, regions=regions,
        findings=findings, requests=counter(), seconds=seconds)


def _charts_bar() -> Progress:
    return Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("scan rows"), TimeElapsedColumn(), console=Console(stderr=True), transient=True,
    )


def _print_charts(report: chart_check.ChartsReport, sealed: EvidenceRecord) -> None:
    console = Console()
    chosen = (f"a sample of {report.checked:,} of {report.scan_rows:,} scan rows (seed {report.sample_seed})"
              if report.sampled else f"all {report.checked:,} scan rows")
    how = "bytes hashed" if report.method == "bytes" else "stored SHA-256 checksums"
    console.print(f"Checked {chosen} from the records database in {report.database_region} against both archives "
                  f"({how}) in {report.seconds:.1f} s, {report.requests:,} requests.", highlight=False)
    table = Table("region", "bucket", "checked", "read in full", "missing", "deleted", "corrupted", "pending")
    for region in report.regions:
        table.add_row(region.region, region.bucket, f"{region.checked:,}", f"{region.read:,}",
                      *(f"{region.counts.get(kind, 0):,}" for kind in ("missing", "deleted", "corrupted", "pending")))
    console.print(table)
    for finding in report.findings[:SHOWN]:
        console.print(f"  {finding.kind:10} {finding.region:10} {finding.key}", highlight=False, soft_wrap=True)
    if len(report.findings) > SHOWN:
        console.print(f"  ... and {len(report.findings) - SHOWN:,} more (--output json lists all)")
    verdict = ("[green]All charts match their scan rows.[/]" if report.passed
               else "[red]Charts differ from their scan rows.[/]")
    console.print(f"{verdict} Evidence #{sealed.sequence} of run {report.run_id}.", highlight=False)
