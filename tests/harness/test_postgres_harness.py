"""The PostgreSQL harness itself: a real server starts, answers, checks
passwords, survives restart and SIGKILL, and leaves nothing behind."""
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from harness.postgres import (DBNAME, PASSWORD, ROLE, PostgresError,
                              PostgresServer, PsqlError, _descendants, _alive,
                              postgres)  # noqa: F401 -- the fixture


HERE = os.path.dirname(os.path.abspath(__file__))


def listening_ports():
    """Local (address, port) pairs in LISTEN state, from /proc/net/tcp{,6}."""
    out = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            addr, port = fields[1].split(":")
            if fields[3] == "0A":
                out.add((addr, int(port, 16)))
    return out


def server_pids(pg):
    return [pg.pid, *_descendants(pg.pid)]


def test_starts_and_answers(postgres):
    pg = postgres
    assert pg.running
    assert pg.url == \
        f"postgres://{ROLE}:{PASSWORD}@127.0.0.1:{pg.port}/{DBNAME}"
    assert os.path.isfile(os.path.join(pg.datadir, "PG_VERSION"))
    assert os.path.getsize(pg.log_path) > 0
    assert pg.psql("SELECT 1 + 1") == "2"
    assert pg.psql("SHOW fsync") == "off"
    assert pg.psql("SHOW listen_addresses") == "127.0.0.1"
    assert pg.psql("SELECT current_database()") == DBNAME
    # Several statements, one row per line, no headers or command tags.
    assert pg.psql("CREATE TEMP TABLE t (a int, b text);"
                   "INSERT INTO t VALUES (1, 'x'), (2, 'y');"
                   "SELECT a, b FROM t ORDER BY a") == "1|x\n2|y"


def test_listens_on_loopback_only(postgres):
    mine = {addr for addr, port in listening_ports() if port == postgres.port}
    assert mine == {"0100007F"}          # 127.0.0.1, and no IPv6 or 0.0.0.0


def test_runs_as_an_ordinary_user(postgres):
    st = os.stat(f"/proc/{postgres.pid}")
    assert st.st_uid != 0
    assert os.stat(postgres.datadir).st_uid == st.st_uid


def test_role_password_is_checked(postgres):
    pg = postgres
    assert pg.psql("SELECT current_user", url=pg.url) == ROLE
    assert pg.psql(f"SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid"
                   f" WHERE rolname = '{ROLE}'") == "t"
    with pytest.raises(PsqlError, match="password authentication failed"):
        pg.psql("SELECT 1", url=pg.url_for(password="wrong"))
    with pytest.raises(PsqlError, match="no password supplied"):
        pg.psql("SELECT 1", url=pg.url_for(password=None))
    # The owner can make tables in its database.
    pg.psql("CREATE TABLE owned (id int); DROP TABLE owned", url=pg.url)


def test_sql_error_raises_and_stops(postgres):
    with pytest.raises(PsqlError) as err:
        postgres.psql("CREATE TABLE e (x int); SELECT nonsense; "
                      "DROP TABLE e")
    assert err.value.returncode == 3
    assert 'column "nonsense" does not exist' in err.value.stderr
    # ON_ERROR_STOP: the DROP never ran.
    assert postgres.psql("SELECT count(*) FROM pg_tables "
                         "WHERE tablename = 'e'") == "1"
    postgres.psql("DROP TABLE e")


def test_create_database(postgres):
    url = postgres.create_database("scratch_one")
    assert url.endswith(f":{postgres.port}/scratch_one")
    assert postgres.psql("SELECT current_database()", url=url) == \
        "scratch_one"


def test_restart_keeps_data_and_port():
    with PostgresServer() as pg:
        port, old = pg.port, pg.pid
        pg.psql("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('a')",
                url=pg.url)
        pg.restart()
        assert pg.running and pg.pid != old and not _alive(old)
        assert pg.port == port
        assert pg.psql("SELECT v FROM kept", url=pg.url) == "a"


def test_kill_then_start_recovers():
    with PostgresServer() as pg:
        port = pg.port
        pg.psql("CREATE TABLE crash (n int);"
                "INSERT INTO crash SELECT generate_series(1, 1000)",
                url=pg.url)
        pids = server_pids(pg)
        assert len(pids) > 1
        pg.kill()
        assert not pg.running and pg.pid is None
        assert not [p for p in pids if _alive(p)]
        with pytest.raises(PsqlError):
            pg.psql("SELECT 1", url=pg.url)
        pg.start()
        assert pg.port == port
        assert pg.psql("SELECT count(*) FROM crash", url=pg.url) == "1000"
        assert "database system was interrupted" in \
            open(pg.log_path).read()


def test_stop_leaves_nothing():
    pg = PostgresServer().start()
    tmp, port, pids = pg.tmpdir, pg.port, server_pids(pg)
    assert os.path.isdir(tmp)
    pg.stop()
    assert not pg.running
    assert not [p for p in pids if _alive(p)]
    assert not os.path.exists(tmp)
    assert port not in {p for _, p in listening_ports()}
    pg.stop()                           # idempotent
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_failed_start_reports_log_and_cleans_up():
    pg = PostgresServer(settings={"shared_buffers": "bogus"})
    with pytest.raises(PostgresError, match="shared_buffers") as err:
        pg.start()
    assert "while starting" in str(err.value)
    assert not pg.running and pg.tmpdir is None


def test_server_dies_with_its_test_process(tmp_path):
    """A test process killed before stop() must not leave a server behind."""
    script = tmp_path / "orphan.py"
    script.write_text(
        "import os, signal, sys\n"
        f"sys.path.insert(0, {os.path.dirname(HERE)!r})\n"
        "from harness.postgres import PostgresServer\n"
        "pg = PostgresServer().start()\n"
        "print(pg.pid, pg.tmpdir, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n")
    p = subprocess.run([sys.executable, str(script)], capture_output=True,
                       text=True, timeout=60,
                       env=dict(os.environ, HOPPER_PG_NO_TEMPLATE="1"))
    assert p.returncode == -signal.SIGKILL, p.stderr
    pid, tmp = p.stdout.split()
    deadline = time.monotonic() + 10
    while (_alive(int(pid)) or os.path.exists(tmp)) and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(int(pid))
    assert not os.path.exists(tmp)
