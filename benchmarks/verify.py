"""Benchmark of `drctl verify replication` on a local moto server, against `s5cmd ls` and `rclone check`.

    /tmp/venv/bin/python benchmarks/verify.py                      # 100,000 objects per bucket, list mode
    /tmp/venv/bin/python benchmarks/verify.py --objects 10000 --listings current,versions

One moto server process holds both buckets (source and replica, as the sandbox's single endpoint does). It is seeded
before it serves, straight into moto's S3 backend: through HTTP the server takes 400-450 PUT/s on 2 cores (200,000
PUTs would be 8 minutes); in-process it stores about 8,000 objects/s. Then, one after the other, each tool compares or
lists the two buckets through HTTP and is timed from outside (wall time, process start included):

- `s5cmd ls` of both buckets, the two listings run concurrently: the floor any list-based check has to pay;
- `rclone check` of the pair (sizes and MD5s from the listings), with `--fast-list` (recursive listings) and without
  it (its default: one delimited listing per folder, i.e. per patient, which moto answers in O(bucket) each);
- `drctl verify replication` with each `--listing` asked for, and with `--partition-depth 0` (no prefix partitions);
  its JSON output gives the AWS requests it made (counted by botocore's before-send hook).

Numbers go to docs/verify.md and the issue note, never into a timed test.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import logging
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ACCOUNT = "123456789012"
SOURCE, REPLICA = "bench-charts-us-east-1", "bench-charts-us-west-1"
REGIONS = {SOURCE: "us-east-1", REPLICA: "us-west-1"}
BIN = Path(sys.executable).parent
SCANS_PER_PATIENT = 10


def _serve(objects: int, practices: int, port_out: multiprocessing.connection.Connection) -> None:
    """The moto server process: seed both buckets in-process, serve on a free port, report it, serve until killed."""
    os.environ["MOTO_ACCOUNT_ID"] = ACCOUNT
    from moto.s3.models import s3_backends
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one log line per request would cost the server time
    backend = s3_backends[ACCOUNT]["aws"]
    started = time.monotonic()
    for bucket, region in REGIONS.items():
        backend.create_bucket(bucket, region)
        backend.put_bucket_versioning(bucket, "Enabled")
        for number in range(objects):
            body = f"scan {number}".encode()
            patient = number // SCANS_PER_PATIENT
            key = backend.put_object(
                bucket, f"charts/p{patient % practices:03d}/pt{patient:07d}/scan-{number}.pdf", body,
                checksum_value=base64.b64encode(hashlib.sha256(body).digest()).decode(),
            )
            key.checksum_algorithm = "SHA256"
    seeded = time.monotonic() - started
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    port_out.send((server.get_host_and_port()[1], seeded))
    while True:
        time.sleep(3600)


@dataclass
class Measurement:
    tool: str
    seconds: float
    requests: int | None = None
    compared: int | None = None
    note: str = ""
    cpu: float | None = None  # CPU seconds of the tool's own processes (the server's are not counted)


def _measured(run: Callable[[], Measurement]) -> Measurement:
    """`run()` with the CPU its child processes used (tools that did not finish are not waited for, not counted)."""
    before = _children_cpu()
    result = run()
    result.cpu = _children_cpu() - before
    return result


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(command: Sequence[str], env: dict[str, str], timeout: float | None = None
           ) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.monotonic()
    completed = subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=timeout)
    return time.monotonic() - started, completed


def _s5cmd_both(endpoint: str, env: dict[str, str]) -> Measurement:
    s5cmd = shutil.which("s5cmd", path=f"{BIN}:{os.environ.get('PATH', '')}")
    if s5cmd is None:
        return Measurement("s5cmd ls, both buckets concurrently", float("nan"), note="s5cmd not installed")
    started = time.monotonic()
    runs = [subprocess.Popen([s5cmd, "--endpoint-url", endpoint, "ls", f"s3://{bucket}/*"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for bucket in REGIONS]
    lines = sum(len(run.communicate()[0].splitlines()) for run in runs)
    return Measurement("s5cmd ls, both buckets concurrently", time.monotonic() - started, compared=lines // 2,
                       requests=None, note="plain listing, no comparison")


def _rclone_check(endpoint: str, env: dict[str, str], timeout: float, *options: str) -> Measurement:
    label = " ".join(("rclone check", *options))
    rclone = shutil.which("rclone")
    if rclone is None:
        return Measurement(label, float("nan"), note="rclone not installed (apt-get install rclone)")
    rclone_env = {**env, "RCLONE_CONFIG_MOTO_TYPE": "s3", "RCLONE_CONFIG_MOTO_PROVIDER": "Other",
                  "RCLONE_CONFIG_MOTO_ENDPOINT": endpoint, "RCLONE_CONFIG_MOTO_ACCESS_KEY_ID": "testing",
                  "RCLONE_CONFIG_MOTO_SECRET_ACCESS_KEY": "testing", "RCLONE_CONFIG_MOTO_FORCE_PATH_STYLE": "true"}
    rclone_env.pop("AWS_CA_BUNDLE", None)  # rclone fails loading it here (FACTS.md)
    try:
        seconds, completed = _timed([rclone, "check", f"moto:{SOURCE}", f"moto:{REPLICA}", *options], rclone_env,
                                    timeout)
    except subprocess.TimeoutExpired:
        return Measurement(label, timeout, note=f"did not finish in {timeout:.0f} s (stopped)")
    note = "in sync" if completed.returncode == 0 else f"exit {completed.returncode}: {completed.stderr[-200:]}"
    return Measurement(label, seconds, note=note)


def _drctl(endpoint: str, env: dict[str, str], label: str, *options: str) -> Measurement:
    command = [str(BIN / "drctl"), "verify", "replication", "--source-bucket", SOURCE, "--replica-bucket", REPLICA,
               "--source-region", REGIONS[SOURCE], "--replica-region", REGIONS[REPLICA], "--endpoint-url", endpoint,
               "--output", "json", *options]
    seconds, completed = _timed(command, env)
    if completed.returncode not in (0, 1):
        return Measurement(label, seconds, note=f"failed: {completed.stderr.strip()[-300:]}")
    report = json.loads(completed.stdout)
    note = "in sync" if report["differences"] == [] else f"{len(report['differences'])} differences"
    return Measurement(label, seconds, requests=report["requests"], compared=report["compared"],
                       note=f"{note}; {report['seconds']:.2f} s inside")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100_000, help="objects per bucket")
    parser.add_argument("--practices", type=int, default=100, help="charts/<practice>/ prefixes")
    parser.add_argument("--listings", default="current", help="comma-separated: current, versions")
    parser.add_argument("--deep", action="store_true", help="also time --deep (one HEAD per object per side)")
    parser.add_argument("--rclone-timeout", type=float, default=600,
                        help="stop `rclone check` (without --fast-list: one listing per patient folder) after this")
    arguments = parser.parse_args()

    receive, send = multiprocessing.Pipe(duplex=False)
    server = multiprocessing.Process(target=_serve, args=(arguments.objects, arguments.practices, send), daemon=True)
    server.start()
    port, seeded = receive.recv()
    endpoint = f"http://127.0.0.1:{port}"
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1", "HOME": home}
        env.pop("AWS_PROFILE", None)
        runs: list[Callable[[], Measurement]] = [
            lambda: _s5cmd_both(endpoint, env),
            lambda: _rclone_check(endpoint, env, arguments.rclone_timeout, "--fast-list"),
        ]
        for listing in arguments.listings.split(","):
            runs.append(lambda listing=listing: _drctl(
                endpoint, env, f"drctl verify replication --listing {listing}", "--listing", listing))
        runs.append(lambda: _drctl(endpoint, env, "drctl verify replication, unpartitioned", "--partition-depth", "0"))
        runs.append(lambda: _drctl(endpoint, env, "drctl verify replication --concurrency 2", "--concurrency", "2"))
        if arguments.deep:
            runs.append(lambda: _drctl(endpoint, env, "drctl verify replication --deep", "--deep"))
        runs.append(lambda: _rclone_check(endpoint, env, arguments.rclone_timeout))
        results = [_measured(run) for run in runs]
    server.kill()

    print(f"\n{arguments.objects:,} objects per bucket in {arguments.practices} practices; seeded both buckets in "
          f"{seeded:.1f} s; moto server on {endpoint}; {os.cpu_count()} cores; load average before/after "
          f"{load_before[0]:.1f}/{os.getloadavg()[0]:.1f}\n")
    print("| tool | wall time (s) | tool CPU (s) | AWS requests | requests per 1,000 objects | note |")
    print("|---|---:|---:|---:|---:|---|")
    for result in results:
        per_thousand = (f"{1000 * result.requests / result.compared:.2f}"
                        if result.requests is not None and result.compared else "")
        requests = f"{result.requests:,}" if result.requests is not None else ""
        cpu = f"{result.cpu:.1f}" if result.cpu is not None else ""
        print(f"| {result.tool} | {result.seconds:.2f} | {cpu} | {requests} | {per_thousand} | {result.note} |")
    floor = results[0].seconds
    ours = results[2].seconds
    print(f"\ndrctl (--listing {arguments.listings.split(',')[0]}) / two s5cmd listings: {ours / floor:.2f} "
          f"(target <= 1.10); drctl / rclone check --fast-list: {ours / results[1].seconds:.2f}; "
          f"drctl / rclone check: {ours / results[-1].seconds:.2f} (targets < 1)")


if __name__ == "__main__":
    main()
