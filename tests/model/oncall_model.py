"""A model of on-call life on the sandbox, for hypothesis' stateful testing: random sequences of what on-call and
outages do (switchover, failover, failback, game day, a region dark or black-holed and back, S3 and database
replication paused and resumed, a run killed mid-way and resumed, records written all along), with the invariants
every sequence must keep checked after every step:

- exactly one writer;
- DNS answers the writer's region whenever that region is up;
- every write acknowledged before the point a run's evidence says was safe survives (after a switchover: every
  write; after a failover: every write older than the run's start less its measured RPO);
- the runbook lock is free at rest (no run in flight);
- every run that changed something left its evidence.

Everything is driven as on-call drives it, `drctl` in its own process against the sandbox's endpoint; the model only
decides what to try next and what must hold. `tests/model/test_oncall_model.py` runs a few sequences in CI;
`benchmarks/model_campaign.py` runs long campaigns and reports what they found.
"""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from dr_runbooks.observe import probes
from ehr_dr_sandbox.api import Sandbox

#: Every changing command runs as the on-call engineer does: the dr-operator role, assumed with MFA.
MFA = ["--mfa-serial", "arn:aws:iam::123456789012:mfa/oncall", "--mfa-code", "123456", "--assume-operator"]
DRCTL = [sys.executable, "-c", "from dr_runbooks.cli import main; main()"]
#: Acknowledgments a failover or its resume asks for (a loss beyond the RPO is possible after a pause).
ACKNOWLEDGE = ["--yes", "--accept-data-loss", "--accept-loss-beyond-rpo"]
#: The runbook lease, short so that a killed run is seen dead (and resumable) within seconds, as the e2e tests do.
LEASE_SECONDS = 2
#: How long the model waits for one drctl command before killing it as an impatient operator would.
PATIENCE_SECONDS = 90
#: The steps after which a kill leaves a run half-done in an interesting place.
KILL_AFTER = {"switchover": ("canary-row", "aurora-switchover"), "failover": ("find-last-canaries", "aurora-failover")}


@dataclass
class Write:
    key: str
    written_at: datetime


@dataclass
class World:
    """What the model believes, and the sandbox it drives (one per test module, shared by the sequences)."""

    sandbox: Sandbox
    workdir: Path
    dark: set[str] = field(default_factory=set)
    writes: list[Write] = field(default_factory=list)
    #: Every write at or before this moment must survive (what runs' evidence promised).
    durable_before: datetime | None = None
    #: Run ids whose process ended (0 or 1): each must have evidence.
    finished_runs: set[str] = field(default_factory=set)
    log: list[str] = field(default_factory=list)
    #: The invariants broken, in order, each with the sequence that broke it (hypothesis' replay of a sandbox that
    #: moved on is not the same experiment, so the first violation is the finding).
    violations: list[str] = field(default_factory=list)

    # --- driving ---------------------------------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        variables = {**os.environ, **self.sandbox.env, "EHR_DR_LEASE_SECONDS": str(LEASE_SECONDS)}
        variables.pop("AWS_PROFILE", None)
        return variables

    def drctl(self, *args: str, patience: float = PATIENCE_SECONDS) -> subprocess.CompletedProcess[str]:
        """Run drctl; one still waiting after `patience` (a switchover waiting for a canary while replication is
        paused waits up to its step's 15 minutes, saying so) is killed, as an operator would, and abandoned the way
        its refusal says: the printed `drctl unlock` must work."""
        try:
            done = subprocess.run([*DRCTL, *args], env=self.env(), cwd=self.workdir, capture_output=True, text=True,
                                  timeout=patience, stdin=subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired:
            self.log.append(f"drctl {' '.join(args)} still waiting after {patience:.0f} s: killed")
            self.abandon_dead_run()
            return subprocess.CompletedProcess(args, -9, "", "")
        self.log.append(f"drctl {' '.join(args)} -> {done.returncode}: {_last_line(done.stderr)}")
        assert "Traceback" not in done.stderr, done.stderr
        return done

    def abandon_dead_run(self) -> None:
        """Once the killed run's lease ran out, abandon it with `drctl unlock` (which must work), the run named by the
        lock item a refusal would name."""
        time.sleep(LEASE_SECONDS + 0.5)
        region = self.live_region()
        item = self.sandbox.client("dynamodb", region).get_item(
            TableName=self.sandbox.topology.in_region(region).runbook_table,
            Key={"pk": {"S": f"lock#{self.sandbox.topology.env_name}"}, "sk": {"S": "lock"}}).get("Item")
        if item is None:
            return
        done = self.drctl("unlock", "--run-id", item["run_id"]["S"], *MFA)
        assert done.returncode == 0, f"unlocking the dead run {item['run_id']['S']} failed: {done.stderr}"

    def live_region(self) -> str:
        return next(region for region in self.sandbox.topology.regions if region not in self.dark)

    def writer(self) -> str:
        rds = self.sandbox.client("rds", self.live_region())
        found = probes.global_cluster(rds, self.sandbox.topology.global_cluster_id)
        writers = [member.region for member in found.members if member.is_writer]
        assert len(writers) == 1, f"writers: {writers}"
        return writers[0]

    def runs_dir(self) -> Path:
        return self.workdir / ".ehr-dr" / "runs"

    def run_ids(self) -> set[str]:
        return {path.stem for path in self.runs_dir().glob("*.json")}

    # --- the records ------------------------------------------------------------------------------------------------

    def _connect(self, region: str) -> psycopg.Connection[Any]:
        topology = self.sandbox.topology
        port = self.sandbox.status()["database"]["ports"][region]
        secret = json.loads(self.sandbox.client("secretsmanager", self.live_region())
                            .get_secret_value(SecretId=topology.db_secret_name)["SecretString"])
        return psycopg.connect(host="127.0.0.1", port=port, dbname=topology.database_name, user=secret["username"],
                               password=secret["password"], autocommit=True, connect_timeout=5)

    def write(self) -> None:
        key = uuid.uuid4().hex
        with self._connect(self.writer()) as connection:
            connection.execute("CREATE TABLE IF NOT EXISTS model_writes (key text PRIMARY KEY, written_at timestamptz)")
            row = connection.execute("INSERT INTO model_writes VALUES (%s, now()) RETURNING written_at",
                                     (key,)).fetchone()
        assert row is not None
        self.writes.append(Write(key, row[0]))

    def surviving(self) -> set[str]:
        with self._connect(self.writer()) as connection:
            connection.execute("CREATE TABLE IF NOT EXISTS model_writes (key text PRIMARY KEY, written_at timestamptz)")
            return {row[0] for row in connection.execute("SELECT key FROM model_writes").fetchall()}

    # --- what runs promised -----------------------------------------------------------------------------------------

    def evidence(self, run_id: str) -> dict[str, Any] | None:
        for path in (self.workdir / ".ehr-dr" / "evidence").rglob("*.json"):
            if run_id in path.name:
                return json.loads(path.read_text())
        return None

    def settle(self, run_id: str) -> None:
        """After a run ended: what its evidence promises about the data becomes what the model demands."""
        self.finished_runs.add(run_id)
        record = self.evidence(run_id)
        if record is None or record.get("outcome") != "succeeded" or not record.get("rpo"):
            return
        started = datetime.fromisoformat(record["started_at"])
        rpo = record["rpo"].get("measured_seconds")
        if rpo is None:
            return
        safe = datetime.fromtimestamp(started.timestamp() - float(rpo), UTC)
        # Writes after the safe point may be gone, legitimately: the model forgets the ones that are.
        present = self.surviving()
        self.writes = [w for w in self.writes if w.written_at <= safe or w.key in present]
        self.durable_before = max(filter(None, (self.durable_before, safe)))


def recorded(check: Callable[[OnCallModel], None]) -> Callable[[OnCallModel], None]:
    """An invariant whose violation is also kept in the world, with the steps that led to it."""

    @functools.wraps(check)
    def checked(self: OnCallModel) -> None:
        try:
            check(self)
        except AssertionError as error:
            sequence = self.world.log[len(self.world.log) - self.world.log[::-1].index("--- new sequence ---"):]
            self.world.violations.append(f"{check.__name__}: {error}\n  after: " + "\n  then: ".join(sequence))
            raise

    return checked


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def run_id_in(text: str) -> str | None:
    found = re.search(r"\d{8}T\d{6}Z-[a-z-]+-[a-z]{2}(?:-[a-z]+)+-\d-[0-9a-f]{6}", text)
    return found.group(0) if found else None


class OnCallModel(RuleBasedStateMachine):
    """The rules and invariants; `WORLD` is bound by the test module before the machine runs.

    Preconditions read only the model's own state (which region it made dark), never the sandbox's: hypothesis
    requires the same choices to draw the same way, and what the estate does in answer is what is under test. A
    rule whose command does not apply now (a failover to the region that writes) runs anyway and must be refused."""

    WORLD: World | None = None

    def __init__(self) -> None:
        super().__init__()
        assert self.WORLD is not None, "bind OnCallModel.WORLD to a World first"
        self.world = self.WORLD

    @initialize()
    def a_healthy_estate(self) -> None:
        """Each sequence starts from a healthy estate (the sandbox is shared): faults lifted, replication flowing,
        the old writer rebuilt, the lock of an abandoned run broken."""
        world = self.world
        world.sandbox.faults.clear()
        world.sandbox.faults.resume_replication()
        world.sandbox.action("db-replication-resume")
        world.dark.clear()
        world.sandbox.action("db-rejoin")
        world.log.append("--- new sequence ---")

    # --- rules: runbooks ----------------------------------------------------------------------------------------------

    def _other(self) -> str:
        return self.world.sandbox.topology.partner(self.world.writer())

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        before = self.world.run_ids()
        done = self.world.drctl(*args)
        for run_id in self.world.run_ids() - before:
            if done.returncode in (0, 1):
                self.world.settle(run_id)
        return done

    @precondition(lambda self: not self.world.dark)
    @rule()
    def switchover(self) -> None:
        self._run("switchover", "--to", self._other(), "--yes", *MFA)

    @rule()
    def failover(self) -> None:
        """To the surviving region when one is dark (even if it writes already: then it must be refused), else to
        the other region."""
        target = self.world.live_region() if self.world.dark else self._other()
        self._run("failover", "--to", target, *ACKNOWLEDGE, *MFA)

    @precondition(lambda self: not self.world.dark)
    @rule()
    def failback(self) -> None:
        self._run("failback", "--to", self._other(), "--yes", *MFA)

    @precondition(lambda self: not self.world.dark)
    @rule()
    def game_day(self) -> None:
        self._run("drill", "failover", "--yes", *MFA)

    @precondition(lambda self: not self.world.dark)
    @rule(runbook=st.sampled_from(sorted(KILL_AFTER)), data=st.data())
    def kill_then_resume(self, runbook: str, data: st.DataObject) -> None:
        """A run killed after a step (the laptop died), then resumed the way the refusal or the docs say."""
        world = self.world
        step = data.draw(st.sampled_from(KILL_AFTER[runbook]))
        flags = ACKNOWLEDGE if runbook == "failover" else ["--yes"]
        before = world.run_ids()
        process = subprocess.Popen([*DRCTL, runbook, "--to", self._other(), *flags, *MFA], env=world.env(),
                                   cwd=world.workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   stdin=subprocess.DEVNULL)
        run_id = _kill_after(process, world.runs_dir(), before, step)
        world.log.append(f"{runbook} killed after {step}: {run_id}")
        if run_id is None:
            return
        time.sleep(LEASE_SECONDS + 0.5)  # the dead run's lease runs out: resume is what the refusal now offers
        resumed = world.drctl("resume", run_id, *flags, *MFA)
        if resumed.returncode == 2:
            self._unlock_as_told(resumed.stderr, run_id)
        else:
            world.settle(run_id)

    def _unlock_as_told(self, refusal: str, run_id: str) -> None:
        """A refused resume must say how to abandon the run; the command it prints must work as printed."""
        printed = re.search(r"`(drctl unlock [^`]+)`", refusal)
        if printed is None:
            return
        args = printed.group(1).split()[1:]
        args = [MFA[1] if a == "ARN" else MFA[3] if a == "CODE" else a for a in args]
        done = self.world.drctl(*args)
        assert done.returncode == 0, f"the printed unlock failed: {printed.group(1)}: {done.stderr}"

    # --- rules: the world ---------------------------------------------------------------------------------------------

    @precondition(lambda self: not self.world.dark)
    @rule(region=st.sampled_from(["us-east-1", "us-west-1"]), hang=st.booleans())
    def region_goes_dark(self, region: str, hang: bool) -> None:
        self.world.sandbox.faults.region_down(region, hang=hang)
        self.world.dark.add(region)
        self.world.log.append(f"region-down {region}{' (hang)' if hang else ''}")

    @precondition(lambda self: bool(self.world.dark))
    @rule()
    def region_comes_back(self) -> None:
        region = self.world.dark.pop()
        self.world.sandbox.faults.region_up(region)
        self.world.log.append(f"region-up {region}")

    @rule(paused=st.booleans())
    def s3_replication(self, paused: bool) -> None:
        faults = self.world.sandbox.faults
        faults.pause_replication() if paused else faults.resume_replication()
        self.world.log.append(f"s3 replication {'paused' if paused else 'resumed'}")

    @rule(paused=st.booleans())
    def database_replication(self, paused: bool) -> None:
        self.world.sandbox.action("db-replication-pause" if paused else "db-replication-resume")
        self.world.log.append(f"db replication {'paused' if paused else 'resumed'}")

    @rule(count=st.integers(1, 3))
    def records_are_written(self, count: int) -> None:
        for _ in range(count):
            self.world.write()

    # --- invariants ---------------------------------------------------------------------------------------------------

    @invariant()
    @recorded
    def exactly_one_writer(self) -> None:
        self.world.writer()

    @invariant()
    @recorded
    def dns_answers_the_writer_while_it_is_up(self) -> None:
        world = self.world
        writer = world.writer()
        if writer in world.dark:
            return
        answer = dns_answer(world.sandbox)
        assert answer == writer, f"DNS answers {answer}, the writer is {writer}"

    @invariant()
    @recorded
    def every_promised_write_survives(self) -> None:
        world = self.world
        if world.durable_before is None:
            return
        promised = {w.key for w in world.writes if w.written_at <= world.durable_before}
        lost = promised - world.surviving()
        assert not lost, f"{len(lost)} writes acknowledged before {world.durable_before} are gone"

    @invariant()
    @recorded
    def the_lock_is_free_at_rest(self) -> None:
        world = self.world
        for region, resources in world.sandbox.topology.regions.items():
            if region in world.dark:
                continue
            items = world.sandbox.client("dynamodb", region).scan(TableName=resources.runbook_table)["Items"]
            held = [item for item in items if item["pk"]["S"].startswith("lock#")]
            assert not held, f"lock held at rest in {region}: {held}"

    @invariant()
    @recorded
    def every_finished_run_left_evidence(self) -> None:
        missing = [run_id for run_id in self.world.finished_runs if self.world.evidence(run_id) is None]
        assert not missing, f"no evidence for {missing}"


def dns_answer(sandbox: Sandbox) -> str | None:
    """The region whose endpoint Route 53's resolvers answer for the application's record: the sandbox's own report
    of it, which holds while us-east-1 (where Route 53's API, and so TestDNSAnswer, signs) is dark."""
    return sandbox.status()["traffic"]["dns_answer"]


def _kill_after(process: subprocess.Popen[str], runs: Path, before: set[str], step: str,
                timeout: float = 120) -> str | None:
    """SIGKILL `process` once its new run journals `step` as succeeded; None when it ended first (refused, done)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for journal in runs.glob("*.json"):
            if journal.stem in before:
                continue
            try:
                steps = json.loads(journal.read_text())["steps"]
            except (ValueError, KeyError, OSError):
                continue
            if steps.get(step, {}).get("status") == "succeeded":
                process.send_signal(signal.SIGKILL)
                process.wait()
                return journal.stem
        if process.poll() is not None:
            return None
        time.sleep(0.02)
    process.kill()
    raise AssertionError(f"{step} never succeeded: {process.communicate()}")
