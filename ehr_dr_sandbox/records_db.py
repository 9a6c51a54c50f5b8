"""The sandbox's records database: the PostgreSQL pair, the schema, and the emulations that drive them.

`install` (listed in `server.EMULATIONS`) starts the pair (the primary region's node writing, the DR region's
streaming from it) in a fresh temp dir linked from `<state dir>/postgres`, creates the records database owned by
the cluster's master user (the user of the database secret `provision` writes; PostgreSQL trusts local connections,
so its password is never checked), applies the schema, and plugs in the Aurora Global Database and AWS Backup
emulations over that one pair, and the backup plans' accelerated schedule (`backup_plans.py`).

Actions (`drctl sandbox fault action NAME`, `Sandbox.action`): `kill-primary-db` (SIGKILL the node writing now, for an
unplanned-failover rehearsal), `db-replication-pause` / `db-replication-resume` (cut / restore the standby's WAL
stream: a lagging secondary), `db-rejoin` (the killed old writer's region is back: re-attach it as secondary),
`records-seed` (the database half of `drctl sandbox seed`), and the Aurora emulation's `aurora-cancel` and
`aurora-timings` (`aurora_global.py`). Status section `database`: roles, lag, ports, members' synchronization, timings.

Why a temp dir and a link rather than the state dir itself: run as root, PostgreSQL runs as the wheel's system user,
which must traverse every directory above its data. The state dir may sit under a private one (a 0700 home, or
pytest's temp root, which every new pytest session makes private again, mid-run); rather than open those up, the
data lives in its own dir under the system temp dir, and the link lets `down` and tests find it.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ehr_dr_sandbox import backup_plans
from ehr_dr_sandbox.aurora_global import AuroraGlobal
from ehr_dr_sandbox.aurora_global import register as register_aurora
from ehr_dr_sandbox.backup_jobs import BackupJobs
from ehr_dr_sandbox.backup_jobs import register as register_backup
from ehr_dr_sandbox.context import SandboxContext
from ehr_dr_sandbox.dispatch import Registry
from ehr_dr_sandbox.postgres_pair import PostgresError, PostgresPair
from ehr_dr_sandbox.provision import PLACEHOLDER_DB_CREDENTIALS
from ehr_dr_sandbox.records_schema import apply_schema, ensure_database, seed_records

PAIR_DIR = "postgres"


def pair_dir(state_dir: Path) -> Path:
    """Where the pair of the sandbox with this state dir keeps its `pair.json` (through the link)."""
    return state_dir / PAIR_DIR / "pair"


def remove_leftovers(state_dir: Path) -> bool:
    """Stop and remove the pair a sandbox with this state dir left behind (its server was killed before its stop
    hooks ran, so its PostgreSQL servers still run). For `drctl sandbox down` and a stale `up`; safe to run twice.
    Whether there was anything to remove."""
    link = state_dir / PAIR_DIR
    if not link.is_symlink():
        return False
    home = link.resolve()
    with contextlib.suppress(PostgresError):
        PostgresPair.open(pair_dir(state_dir)).destroy()
    shutil.rmtree(home, ignore_errors=True)
    link.unlink()
    return True


def install(registry: Registry, context: SandboxContext) -> None:
    topology = context.topology
    home = Path(tempfile.mkdtemp(prefix="ehr-dr-pg-"))
    link = context.state_dir / PAIR_DIR

    def remove() -> None:
        shutil.rmtree(home, ignore_errors=True)
        link.unlink(missing_ok=True)

    try:
        context.state_dir.mkdir(parents=True, exist_ok=True)
        link.symlink_to(home, target_is_directory=True)
        pair = PostgresPair.create(home / "pair", topology.primary_region, topology.dr_region)
        try:
            with pair.writer().connect() as admin:
                ensure_database(admin, topology.database_name, str(PLACEHOLDER_DB_CREDENTIALS["username"]))
            with pair.writer().connect(topology.database_name) as conn:
                apply_schema(conn)
        except BaseException:
            pair.destroy()
            raise
    except BaseException:
        remove()
        raise
    aurora = AuroraGlobal(pair, topology, context.backend, context.down_regions)
    backups = BackupJobs(pair, topology, context.backend, home / "backups")

    def stop() -> None:
        aurora.wait_idle()
        backups.wait_idle()
        pair.destroy()
        remove()

    context.on_stop(stop)
    register_aurora(registry, aurora)
    register_backup(registry, backups)
    backup_plans.install(registry, context, backups)

    @registry.action("kill-primary-db")
    def kill_primary(arguments: dict[str, Any]) -> dict[str, str]:
        writer = pair.writer()
        writer.kill()
        return {"killed": writer.region}

    @registry.action("db-replication-pause")
    def pause(arguments: dict[str, Any]) -> dict[str, Any]:
        pair.pause_replication()
        return {"paused": True}

    @registry.action("db-replication-resume")
    def resume(arguments: dict[str, Any]) -> dict[str, Any]:
        pair.resume_replication()
        return {"paused": False}

    @registry.action("db-rejoin")
    def rejoin(arguments: dict[str, Any]) -> dict[str, str]:
        return {"rejoined": aurora.rejoin()}

    @registry.action("records-seed")
    def seed(arguments: dict[str, Any]) -> dict[str, int]:
        with pair.writer().connect(topology.database_name, autocommit=False) as conn:
            counts = seed_records(conn, arguments.get("patients", []), arguments.get("scans", []))
        return vars(counts)

    registry.report("database")(aurora.report)
