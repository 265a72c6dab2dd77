"""A real, throwaway PostgreSQL server for tests.

    from harness.postgres import PostgresServer

    with PostgresServer() as pg:
        pg.psql("CREATE TABLE t (id int)")
        run_hopper("--source", pg.url, ...)

Each server gets its own temporary directory (data, unix socket, log), listens
on 127.0.0.1 only, on a free port, with fsync off. The superuser `postgres`
connects without a password over the unix socket and from 127.0.0.1; every
other role, including the role `hopper` (password `hopper-secret`) that owns
the database `hopper`, must give its password (SCRAM) over TCP, so password
handling is tested for real.

PostgreSQL refuses to run as root: when the tests run as root, initdb and the
server run as the `postgres` system user (or a dedicated `hopper-pg` user that
is created when there is no `postgres` user). When the server binaries are
missing and we are root, `apt-get install postgresql` is run first.

Standard library only, apart from the optional pytest fixture `postgres` at
the bottom. Queries go through the `psql` client.
"""
import atexit
import contextlib
import fcntl
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

__all__ = ["PostgresServer", "PostgresError", "PsqlError", "find_bindir",
           "postgres"]

ROLE = "hopper"
PASSWORD = "hopper-secret"
DBNAME = "hopper"
SUPERUSER = "postgres"
HOST = "127.0.0.1"

START_TIMEOUT = float(os.environ.get("HOPPER_PG_START_TIMEOUT", "60"))
STOP_TIMEOUT = 30.0


class PostgresError(RuntimeError):
    """The server could not be installed, started or stopped."""


class PsqlError(PostgresError):
    """psql exited non-zero; .returncode, .stdout and .stderr say why."""

    def __init__(self, returncode, stdout, stderr, sql):
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.sql = sql
        super().__init__(f"psql exited {returncode}: {stderr.strip()}")


# ---------------------------------------------------------------- binaries

def _version_key(path):
    m = re.search(r"/postgresql/(\d+)(?:\.(\d+))?/bin", path)
    return (int(m.group(1)), int(m.group(2) or 0)) if m else (0, 0)


def _search_bindir():
    env = os.environ.get("HOPPER_PG_BINDIR")
    if env:
        if not os.access(os.path.join(env, "postgres"), os.X_OK):
            raise PostgresError(f"HOPPER_PG_BINDIR={env} has no postgres")
        return env
    dirs = sorted((os.path.dirname(p) for p in
                   glob.glob("/usr/lib/postgresql/*/bin/postgres")),
                  key=_version_key, reverse=True)
    if dirs:
        return dirs[0]
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            d = subprocess.run([pg_config, "--bindir"], capture_output=True,
                               text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            d = ""
        if d and os.access(os.path.join(d, "postgres"), os.X_OK):
            return d
    d = os.path.dirname(shutil.which("postgres") or "")
    if d and os.access(os.path.join(d, "initdb"), os.X_OK):
        return d
    return None


def _online_clusters():
    """Debian clusters that are running, as "ver/name" strings."""
    if not shutil.which("pg_lsclusters"):
        return set()
    p = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True,
                       text=True)
    return {f"{f[0]}/{f[1]}" for f in (line.split() for line in
                                       p.stdout.splitlines())
            if len(f) >= 4 and f[3].startswith("online")}


def _install_server():
    """apt-get install postgresql, as root, once per machine at a time.

    Installing the Debian package creates (and, where services run, starts)
    a cluster "main" on port 5432; whatever the install started is stopped
    again so that it leaves no server behind."""
    if os.geteuid() != 0:
        raise PostgresError(
            "PostgreSQL server binaries not found (looked in "
            "/usr/lib/postgresql/*/bin, pg_config --bindir, $PATH and "
            "$HOPPER_PG_BINDIR); run the tests as root so the harness can "
            "install them, or: sudo apt-get install postgresql")
    lockdir = "/run/lock" if os.path.isdir("/run/lock") else "/tmp"
    with open(os.path.join(lockdir, "hopper-pg-install.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _search_bindir():          # another process installed it meanwhile
            return
        before = _online_clusters()
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        cmd = ["apt-get", "install", "-y", "-qq", "--no-install-recommends",
               "postgresql"]
        p = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if p.returncode != 0:         # stale or missing package lists
            subprocess.run(["apt-get", "update", "-qq"], env=env,
                           capture_output=True, text=True)
            p = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if p.returncode != 0:
            raise PostgresError("apt-get install postgresql failed:\n"
                                + (p.stdout + p.stderr)[-3000:])
        for cluster in sorted(_online_clusters() - before):
            subprocess.run(["pg_ctlcluster", *cluster.split("/"), "stop"],
                           capture_output=True)


def find_bindir():
    """The directory holding initdb, postgres and psql; installs the server
    package first when it is missing (root only)."""
    d = _search_bindir()
    if not d:
        _install_server()
        d = _search_bindir()
    if not d:
        raise PostgresError("PostgreSQL installed but no bin dir with "
                            "`postgres` found")
    return d


# ----------------------------------------------------------- the OS user

def _server_user():
    """(uid, gid) to run initdb and postgres as; None to stay ourselves."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get("HOPPER_PG_USER")
    for candidate in ([name] if name else ["postgres", "hopper-pg"]):
        try:
            pw = pwd.getpwnam(candidate)
            return pw.pw_uid, pw.pw_gid
        except KeyError:
            pass
    if name:
        raise PostgresError(f"HOPPER_PG_USER={name}: no such user")
    subprocess.run(["useradd", "--system", "--no-create-home", "--user-group",
                    "--shell", "/usr/sbin/nologin", "hopper-pg"],
                   capture_output=True)
    pw = pwd.getpwnam("hopper-pg")
    return pw.pw_uid, pw.pw_gid


def _world_traversable(path):
    """True when every directory from / down to path lets others in."""
    path = os.path.realpath(path)
    while True:
        try:
            if not os.stat(path).st_mode & 0o001:
                return False
        except OSError:
            return False
        parent = os.path.dirname(path)
        if parent == path:
            return True
        path = parent


def _temp_base(as_other_user):
    base = os.environ.get("HOPPER_PG_TMPDIR") or tempfile.gettempdir()
    # The unix socket path (base/hopper-pg.XXXXXXXX/.s.PGSQL.NNNNN) must fit
    # in sun_path (108 bytes), and the server user must be able to reach it.
    if len(base) > 60 or (as_other_user and not _world_traversable(base)):
        base = "/tmp"
    return base


# ---------------------------------------------------------- processes

def _proc_table():
    """{pid: (ppid, state)} for every process, from /proc."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        table[int(entry)] = (int(fields[1]), fields[0])
    return table


def _descendants(pid):
    table = _proc_table()
    children = {}
    for p, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(p)
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _alive(pid):
    """True for a live process; zombies count as gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2:].split()[0] not in ("Z", "X")


def _wait_gone(pids, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [p for p in pids if _alive(p)]
        if not pids:
            return []
        time.sleep(0.02)
    return [p for p in pids if _alive(p)]


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# The postmaster runs under this small reaper (our direct child, running as
# us). It is a child subreaper, so when the postmaster is SIGKILLed its
# orphaned children are reparented to, and reaped by, the reaper rather than
# left as zombies under an init that may not reap (containers). It exits once
# every process below it is gone, so waiting for it means "all gone". It
# reports the postmaster's pid on the fd given. If the test process dies
# without stopping the server, the reaper notices (its parent pid changes) and
# asks the postmaster for an immediate shutdown, then removes the temp dir
# (unless it is to be kept); if the reaper itself is
# killed, the postmaster gets SIGQUIT (its parent-death signal).
_REAPER = r"""
import ctypes, os, signal, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl(36, 1, 0, 0, 0)                       # PR_SET_CHILD_SUBREAPER
parent = os.getppid()
uid, gid, report = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
cleanup, argv = sys.argv[4], sys.argv[5:]
pm = os.fork()
if pm == 0:
    try:
        os.close(report)
        if uid >= 0:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
        libc.prctl(1, int(signal.SIGQUIT), 0, 0, 0)   # PR_SET_PDEATHSIG
        os.execv(argv[0], argv)
    finally:
        os._exit(127)
os.write(report, b"%d\n" % pm)
os.close(report)
def forward(sig, _frame):
    try:
        os.kill(pm, signal.SIGQUIT if sig == signal.SIGTERM else sig)
    except ProcessLookupError:
        pass
for s in (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM):
    signal.signal(s, forward)
code, orphaned = 1, False
while True:
    try:
        pid, status = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        break
    if pid == pm:
        code = os.waitstatus_to_exitcode(status)
    elif pid == 0:
        if not orphaned and os.getppid() != parent:
            orphaned = True
            forward(signal.SIGQUIT, None)
        time.sleep(0.02)
if orphaned and cleanup:
    import shutil
    shutil.rmtree(cleanup, ignore_errors=True)
sys.exit(code if code >= 0 else 128 - code)
"""


_live_servers = set()
# A cleanly shut down copy of a fresh cluster (after initdb, role and
# database), per (bindir, user), in this process; new servers start from it.
_templates = {}
_template_roots = []


@atexit.register
def _stop_leftovers():
    for server in list(_live_servers):
        with contextlib.suppress(Exception):
            server.stop()
    for tdir in _template_roots:
        shutil.rmtree(tdir, ignore_errors=True)


# ---------------------------------------------------------- the server

class PostgresServer:
    """One throwaway PostgreSQL cluster. start() / stop() / restart() /
    kill(); psql() runs SQL; url is what hopper should connect to."""

    def __init__(self, settings=None, keep=None):
        """settings: extra postgresql.conf settings, e.g.
        {"max_connections": 20}. keep: leave the temp dir behind on stop()
        (default: $HOPPER_PG_KEEP is set), for post-mortems."""
        self.settings = dict(settings or {})
        self.keep = bool(os.environ.get("HOPPER_PG_KEEP")) if keep is None \
            else keep
        self._bindir = None
        self._user = None
        self._tmpdir = None
        self._port = None
        self._proc = None        # the reaper, see _REAPER
        self._pm = None          # the postmaster's pid
        self._log = None

    # ---- properties

    @property
    def port(self):
        return self._port

    @property
    def host(self):
        return HOST

    @property
    def tmpdir(self):
        return self._tmpdir

    @property
    def datadir(self):
        return self._tmpdir and os.path.join(self._tmpdir, "data")

    @property
    def socket_dir(self):
        return self._tmpdir

    @property
    def log_path(self):
        return self._tmpdir and os.path.join(self._tmpdir, "postgres.log")

    @property
    def bindir(self):
        return self._bindir

    @property
    def pid(self):
        """The postmaster's pid, or None when it is not running."""
        return self._pm if self.running else None

    @property
    def running(self):
        return (self._proc is not None and self._proc.poll() is None
                and _alive(self._pm))

    @property
    def url(self):
        return self.url_for()

    @property
    def admin_url(self):
        """The superuser, no password needed (127.0.0.1 is trusted)."""
        return f"postgres://{SUPERUSER}@{HOST}:{self._port}/{DBNAME}"

    def url_for(self, dbname=DBNAME, user=ROLE, password=PASSWORD):
        auth = user if password is None else f"{user}:{password}"
        return f"postgres://{auth}@{HOST}:{self._port}/{dbname}"

    # ---- lifecycle

    def start(self, timeout=START_TIMEOUT):
        """First call: initdb into a fresh temp dir, start, create the role
        and database. After kill() or an earlier stop without removal: start
        the same data dir on the same port again (crash recovery runs)."""
        if self.running:
            return self
        if self._tmpdir is None:
            self._create(timeout)
        else:
            self._launch(timeout)
        _live_servers.add(self)
        return self

    def stop(self, timeout=STOP_TIMEOUT):
        """Fast shutdown, wait, SIGKILL if it does not go; then remove the
        temp dir. Safe to call any number of times."""
        try:
            self._shutdown(signal.SIGINT, timeout)
        finally:
            _live_servers.discard(self)
            if self._log:
                self._log.close()
                self._log = None
            if self._tmpdir and not self.keep:
                shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
            self._proc = None

    def restart(self, timeout=START_TIMEOUT):
        """Fast shutdown, then start again on the same port and data."""
        if self._tmpdir is None:
            raise PostgresError("restart() of a server that was never started")
        self._shutdown(signal.SIGINT, STOP_TIMEOUT)
        self._launch(timeout)
        return self

    def kill(self):
        """Crash it: SIGKILL the postmaster and every process it started,
        and wait until they are all gone. start() afterwards recovers."""
        if self._proc is None:
            return
        self._kill_all()
        self._proc = None

    def _kill_all(self):
        """SIGKILL the postmaster, then everything below it; the reaper
        reaps them all and exits."""
        kids = _descendants(self._pm)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._pm, signal.SIGKILL)
        # Orphans move to the reaper; kill everything below it until none.
        deadline = time.monotonic() + 10
        while self._proc.poll() is None:
            kids = set(kids) | set(_descendants(self._proc.pid))
            for k in kids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(k, signal.SIGKILL)
            if time.monotonic() > deadline:
                self._proc.kill()
                self._proc.wait()
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(0.05)
        left = _wait_gone(list(kids), 10)
        if left:
            raise PostgresError(f"processes {left} survived SIGKILL")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return f"<PostgresServer {self.url if self._port else 'stopped'}>"

    # ---- queries

    def psql(self, sql, dbname=DBNAME, url=None, timeout=60, check=True):
        """Runs sql (any number of statements) through psql -X -q -At
        -v ON_ERROR_STOP=1 and returns its stdout, trailing newlines removed.
        Default: as the superuser over the unix socket. url: connect with
        that URL instead (e.g. self.url, or one with a wrong password).
        Raises PsqlError on failure unless check=False."""
        target = url or f"host={self.socket_dir} port={self._port} " \
                        f"user={SUPERUSER} dbname={dbname}"
        cmd = [os.path.join(self._bindir, "psql"), "-X", "-q", "-A", "-t",
               "-w", "-v", "ON_ERROR_STOP=1", "-d", target, "-f", "-"]
        p = subprocess.run(cmd, input=sql, capture_output=True, text=True,
                           timeout=timeout, env=self._client_env())
        if check and p.returncode != 0:
            raise PsqlError(p.returncode, p.stdout, p.stderr, sql)
        return p.stdout.rstrip("\n")

    def create_database(self, name, owner=ROLE):
        """A fresh database for one test; returns its URL for `hopper`."""
        self.psql(f'CREATE DATABASE "{name}" OWNER "{owner}"')
        return self.url_for(dbname=name)

    def _log_hint(self):
        keep = "" if self.keep else " (set HOPPER_PG_KEEP=1 to keep it)"
        return f"log {self.log_path}{keep}, last lines:\n{self.log_tail()}"

    def log_tail(self, lines=40):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except (OSError, TypeError):
            return "(no log)"

    # ---- internals

    def _client_env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(PGPASSFILE=os.path.join(self._tmpdir or "/", "no-pgpass"),
                   PGCONNECT_TIMEOUT="10", PGSSLMODE="disable", LC_ALL="C")
        return env

    def _as_server_user(self):
        if self._user is None:
            return {}
        uid, gid = self._user
        return {"user": uid, "group": gid, "extra_groups": []}

    def _create(self, timeout):
        self._bindir = find_bindir()
        self._user = _server_user()
        tmp = tempfile.mkdtemp(prefix="hopper-pg.",
                               dir=_temp_base(self._user is not None))
        self._tmpdir = tmp
        try:
            if self._user:
                os.chown(tmp, *self._user)
            key = (self._bindir, self._user)
            template = _templates.get(key)
            if template and os.path.isdir(template):
                # Same cluster as initdb + setup would give, 5-10x faster.
                self._copy_tree(template, self.datadir)
                self._launch_on_free_port(timeout)
                return
            self._initdb()
            self._launch_on_free_port(timeout)
            self.psql(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}';\n"
                      f"CREATE DATABASE {DBNAME} OWNER {ROLE};",
                      dbname="postgres")
            if not os.environ.get("HOPPER_PG_NO_TEMPLATE"):
                # Keep a cleanly shut down copy for the next servers.
                self._shutdown(signal.SIGINT, STOP_TIMEOUT)
                _templates[key] = self._save_template()
                self._launch(timeout)
        except BaseException:
            self.stop()
            raise

    def _launch_on_free_port(self, timeout):
        for attempt in range(5):
            self._port = _free_port()
            try:
                return self._launch(timeout)
            except PostgresError:
                # Someone took the port between our probe and the bind.
                if attempt == 4 or "in use" not in self.log_tail(10):
                    raise

    def _copy_tree(self, src, dst):
        p = subprocess.run(["cp", "-a", src, dst], capture_output=True,
                           text=True, cwd=self._tmpdir,
                           **self._as_server_user())
        if p.returncode != 0:
            raise PostgresError(f"cp -a {src} {dst} failed: {p.stderr}")

    def _save_template(self):
        base = os.path.dirname(self._tmpdir)
        # Remove templates of test processes that died before atexit.
        for old in glob.glob(os.path.join(base, "hopper-pg-template.*.*")):
            pid = os.path.basename(old).split(".")[1]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(old, ignore_errors=True)
        tdir = tempfile.mkdtemp(prefix=f"hopper-pg-template.{os.getpid()}.",
                                dir=base)
        _template_roots.append(tdir)
        if self._user:
            os.chown(tdir, *self._user)
        data = os.path.join(tdir, "data")
        self._copy_tree(self.datadir, data)
        for leftover in ("postmaster.pid", "postmaster.opts"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(data, leftover))
        return data

    def _initdb(self):
        p = subprocess.run(
            [os.path.join(self._bindir, "initdb"), "-D", self.datadir,
             "-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--locale=C",
             "--no-sync"],
            capture_output=True, text=True, cwd=self._tmpdir,
            env=self._server_env(), timeout=120, **self._as_server_user())
        if p.returncode != 0:
            raise PostgresError(f"initdb failed ({p.returncode}):\n"
                                + (p.stdout + p.stderr)[-3000:])
        with open(os.path.join(self.datadir, "pg_hba.conf"), "w") as f:
            f.write("# written by tests/harness/postgres.py\n"
                    "local all all                  trust\n"
                    f"host  all {SUPERUSER} {HOST}/32 trust\n"
                    f"host  all all      {HOST}/32 scram-sha-256\n")
        if self._user:
            os.chown(os.path.join(self.datadir, "pg_hba.conf"), *self._user)

    def _server_env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C", LANG="C")
        return env

    def _launch(self, timeout):
        settings = {
            "listen_addresses": HOST,
            "port": self._port,
            "unix_socket_directories": self.socket_dir,
            "fsync": "off",
            "full_page_writes": "off",
            "password_encryption": "scram-sha-256",
            "logging_collector": "off",
            "log_line_prefix": "%m [%p] %q%u@%d ",
            "shared_buffers": "32MB",
        }
        settings.update(self.settings)
        cmd = [os.path.join(self._bindir, "postgres"), "-D", self.datadir]
        for k, v in settings.items():
            cmd += ["-c", f"{k}={v}"]
        if self._log is None:
            self._log = open(self.log_path, "ab")
        self._log.write(f"---- harness: starting on port {self._port}\n"
                        .encode())
        self._log.flush()
        uid, gid = self._user or (-1, -1)
        r, w = os.pipe()
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-c", _REAPER, str(uid), str(gid),
                 str(w), "" if self.keep else self._tmpdir, *cmd],
                stdin=subprocess.DEVNULL, stdout=self._log,
                stderr=subprocess.STDOUT, cwd=self._tmpdir,
                env=self._server_env(), start_new_session=True,
                pass_fds=[w])
            os.close(w)
            w = None
            with os.fdopen(r) as report:
                r = None
                line = report.readline()
        finally:
            for fd in (r, w):
                if fd is not None:
                    os.close(fd)
        if not line.strip().isdigit():
            self._proc.wait()
            self._proc = None
            raise PostgresError("could not start the postgres reaper; log "
                                f"{self.log_path}:\n{self.log_tail()}")
        self._pm = int(line)
        isready = [os.path.join(self._bindir, "pg_isready"), "-q",
                   "-h", HOST, "-p", str(self._port), "-U", SUPERUSER,
                   "-d", "postgres", "-t", "2"]
        deadline = time.monotonic() + timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                self._proc = None
                raise PostgresError(
                    f"postgres exited with status {code} while starting; "
                    f"{self._log_hint()}")
            if subprocess.run(isready, env=self._client_env()).returncode == 0:
                return
            if time.monotonic() > deadline:
                self._shutdown(signal.SIGQUIT, 5)
                raise PostgresError(
                    f"postgres did not accept connections within {timeout}s; "
                    f"{self._log_hint()}")
            time.sleep(0.05)

    def _shutdown(self, sig, timeout):
        """Signal the postmaster (SIGINT fast, SIGQUIT immediate), wait,
        then SIGKILL it and anything it left behind."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._pm, sig)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill_all()
        self._proc = None


# ---------------------------------------------------------- pytest

try:
    import pytest
except ImportError:    # usable without pytest, e.g. from a script
    pytest = None

if pytest is not None:
    @pytest.fixture(scope="session")
    def postgres():
        """One server for the whole session. Tests may restart() it; tests
        that kill() or reconfigure a server should start their own
        PostgresServer instead. Use create_database() for isolation."""
        with PostgresServer() as server:
            yield server
