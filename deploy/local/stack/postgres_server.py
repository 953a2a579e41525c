"""PostgreSQL from Debian's server binaries, run as the ``postgres`` user when we are root."""

from __future__ import annotations

import contextlib
import glob
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stack import procs
from stack.argv import initdb_argv, postgres_argv
from stack.base import Service, StackError
from stack.config import BIND_HOST, socket_dir_for
from stack.console import say

if TYPE_CHECKING:
    import psycopg

PG_LIB = Path("/usr/lib/postgresql")


def _version_key(path: str) -> tuple[int, ...]:
    name = Path(path).parent.parent.name  # /usr/lib/postgresql/<ver>/bin/initdb
    return tuple(int(p) for p in name.split(".") if p.isdigit())


def pg_bindir(version: str | None = None) -> Path | None:
    """The server binaries of ``version``, or of the newest installed version."""
    pattern = str(PG_LIB / (version or "*") / "bin" / "initdb")
    found = sorted(glob.glob(pattern), key=_version_key)
    for initdb in reversed(found):
        bindir = Path(initdb).parent
        if (bindir / "postgres").exists() and (bindir / "pg_ctl").exists():
            return bindir
    return None


class Postgres(Service):
    name = "postgres"
    env_var = "HERALD_DATABASE_URL"

    # ------------------------------------------------------------ where things live
    def run_as(self) -> procs.RunAs | None:
        if not procs.is_root():
            return None
        try:
            return procs.RunAs.lookup("postgres")
        except KeyError:
            raise StackError(
                "postgres: there is no `postgres` OS user (install postgresql)"
            ) from None

    def data_dir(self) -> Path:
        record = self.cfg.postgres_datadir_record
        with contextlib.suppress(OSError):
            text = record.read_text().strip()
            if text:
                return Path(text)
        return self.cfg.postgres_default_data

    def home(self) -> Path:
        return self.data_dir().parent

    def socket_dir(self) -> Path:
        return socket_dir_for(self.home(), self.cfg.root)

    def workdir(self) -> Path:
        # the postmaster chdirs into its data folder
        return self.data_dir()

    def bindir(self) -> Path:
        version_file = self.data_dir() / "PG_VERSION"
        version = None
        with contextlib.suppress(OSError):
            version = version_file.read_text().strip() or None
        bindir = pg_bindir(version)
        if bindir is None:
            wanted = f"PostgreSQL {version}" if version else "PostgreSQL"
            raise StackError(f"postgres: no {wanted} server binaries under {PG_LIB}")
        return bindir

    def missing_packages(self) -> list[str]:
        return [] if pg_bindir() else ["postgresql"]

    def env(self) -> dict[str, str] | None:
        run_as = self.run_as()
        env = run_as.env() if run_as else dict(os.environ)
        env.setdefault("LANG", "C.UTF-8")
        env.pop("PGDATA", None)
        return env

    # ------------------------------------------------------------ preparing the data folder
    def _reachable_by(self, path: Path, run_as: procs.RunAs) -> bool:
        result = procs.run(["test", "-x", str(path)], run_as=run_as, env=run_as.env())
        return result.returncode == 0

    def _choose_data_dir(self) -> Path:
        record = self.cfg.postgres_datadir_record
        if record.exists():
            return self.data_dir()
        stack_pg = self.cfg.root / "postgres"
        stack_pg.mkdir(parents=True, exist_ok=True)
        run_as = self.run_as()
        default = self.cfg.postgres_default_data
        if run_as is None or default.exists() or self._reachable_by(stack_pg, run_as):
            return default
        home = self.cfg.postgres_external_home
        say(
            f"postgres: {self.cfg.root} is not reachable by the postgres user; "
            f"data goes to {home}/pgdata"
        )
        home.parent.mkdir(parents=True, exist_ok=True)
        home.parent.chmod(0o755)
        self._own_dir(home, run_as, 0o700)
        (home / "STACK_DIR").write_text(f"{self.cfg.root}\n")
        record.write_text(f"{home / 'pgdata'}\n")
        return home / "pgdata"

    @staticmethod
    def _own_dir(path: Path, run_as: procs.RunAs | None, mode: int) -> None:
        path.mkdir(parents=True, exist_ok=True)
        if run_as is not None:
            os.chown(path, run_as.uid, run_as.gid)
        path.chmod(mode)

    def _clear_stale_locks(self, data: Path) -> None:
        """Lock files of a postmaster that died (kill -9, or a zombie no init reaped)."""
        socket_lock = self.socket_dir() / f".s.PGSQL.{self.endpoint.port}.lock"
        for lock in (data / "postmaster.pid", socket_lock):
            pid = procs.read_pid(lock)
            if pid is None:
                continue
            info = procs.proc_info(pid)
            if info is None or not procs.is_alive(pid) or info.comm != "postgres":
                say(f"postgres: removing stale {lock} (pid {pid} is gone)")
                lock.unlink(missing_ok=True)

    def prepare(self) -> None:
        run_as = self.run_as()
        data = self._choose_data_dir()
        self._own_dir(data, run_as, 0o700)
        self._own_dir(self.socket_dir(), run_as, 0o755)
        self._clear_stale_locks(data)
        if (data / "PG_VERSION").exists():
            return
        if any(data.iterdir()):
            raise StackError(
                f"postgres: {data} is neither empty nor a database cluster; move it away"
            )
        say(f"postgres: initdb {data}")
        result = procs.run(
            initdb_argv(self.bindir(), data),
            run_as=run_as,
            log=self.log_path,
            cwd=data,
            env=self.env(),
            timeout=300,
        )
        if result.returncode != 0:
            raise StackError(f"postgres: initdb failed (exit {result.returncode})", self.log_path)

    def argv(self) -> list[str]:
        return postgres_argv(self.bindir(), self.data_dir(), self.endpoint.port, self.socket_dir())

    # ------------------------------------------------------------ running
    def _as_superuser(self, timeout: int, **options: Any) -> psycopg.Connection[Any]:
        """A connection as `postgres` to the server the stack runs (not the URL's role)."""
        import psycopg

        return psycopg.connect(
            host=BIND_HOST,
            port=self.endpoint.port,
            user="postgres",
            dbname="postgres",
            connect_timeout=timeout,
            **options,
        )

    def ping(self) -> None:
        with self._as_superuser(2) as conn:
            conn.execute("SELECT 1")

    def after_ready(self) -> None:
        """Create the role and database the URL names (idempotent). The role is a plain
        login role that owns its database (Herald creates its schemas there), never a
        superuser: a role that an older stack made one is demoted."""
        from psycopg import sql

        target = self.cfg.postgres
        with self._as_superuser(5, autocommit=True) as conn:
            role = sql.Identifier(target.user)
            if target.user != "postgres":
                found = conn.execute(
                    "SELECT rolsuper FROM pg_roles WHERE rolname = %s", (target.user,)
                ).fetchone()
                if found is None:
                    say(f"postgres: creating role {target.user}")
                    conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(role))
                elif found[0]:
                    say(f"postgres: role {target.user} is a superuser; making it a plain role")
                    conn.execute(sql.SQL("ALTER ROLE {} NOSUPERUSER").format(role))
            if target.password:
                conn.execute(
                    sql.SQL("ALTER ROLE {} PASSWORD {}").format(role, sql.Literal(target.password))
                )
            found = conn.execute(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                (target.dbname,),
            ).fetchone()
            database = sql.Identifier(target.dbname)
            if found is None:
                say(f"postgres: creating database {target.dbname}")
                conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(database, role))
            elif found[0] != target.user:
                say(f"postgres: giving database {target.dbname} to role {target.user}")
                conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(database, role))

    def version(self) -> str:
        import psycopg

        with psycopg.connect(self.cfg.database_url, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]).split()[0] if row else "?"

    def stop(self, pid: int) -> bool:
        run_as = self.run_as()
        data = self.data_dir()
        try:
            pg_ctl = str(self.bindir() / "pg_ctl")
            result = procs.run(
                [pg_ctl, "stop", "-D", str(data), "-m", "fast", "-w", "-t", "30"],
                run_as=run_as,
                log=self.log_path,
                cwd=data,
                env=self.env(),
                timeout=60,
            )
            if result.returncode == 0 and procs.wait_gone(pid, 10):
                return True
        except (StackError, OSError) as exc:
            say(f"postgres: pg_ctl stop failed ({exc}); signalling pid {pid}")
        # SIGINT is Postgres's "fast" shutdown
        return procs.terminate(pid, sig=signal.SIGINT)
