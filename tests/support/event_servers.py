"""Real PostgreSQL and Mosquitto for the event history's tests: private instances in a temp folder,
on loopback ports, as ``nobody`` when the tests run as root (PostgreSQL refuses root). A missing
binary skips the test, or fails it under STREAMER_REQUIRE_SYSTEM_TESTS=1 (conftest.need_system)."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import free_port, need_system


def find(name: str, *patterns: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for pattern in patterns:
        hits = sorted(glob.glob(pattern))
        if hits:
            return hits[-1]
    return None


def _as_nobody() -> dict[str, object]:
    """Popen arguments that run a server as ``nobody`` when the tests run as root (no wrapper
    process between: signals reach the server itself)."""
    if os.geteuid() != 0:
        return {}
    pw = pwd.getpwnam("nobody")
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


def _wait_port(port: int, proc: subprocess.Popen, what: str, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited ({proc.returncode}): {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not listen on {port}: {log.read_text()[-2000:]}")
        time.sleep(0.1)


class Postgres:
    def __init__(self) -> None:
        self.initdb = find("initdb", "/usr/lib/postgresql/*/bin/initdb")
        self.postgres = find("postgres", "/usr/lib/postgresql/*/bin/postgres")
        self.proc: subprocess.Popen | None = None
        self.root: Path | None = None
        self.port = 0

    @property
    def available(self) -> bool:
        return self.initdb is not None and self.postgres is not None

    def start(self) -> None:
        who = _as_nobody()
        self.root = Path(tempfile.mkdtemp(prefix="streamer-pg-"))
        if who:
            os.chown(self.root, who["user"], who["group"])  # type: ignore[arg-type]
        initdb = [str(self.initdb), "-D", str(self.root / "data"), "-U", "streamer", "--auth=trust"]
        subprocess.run([*initdb, "-E", "UTF8", "--no-sync"], check=True, capture_output=True, **who)  # type: ignore[call-overload]
        self.port = free_port()
        self.run()

    def run(self) -> None:
        """Start the server on its data folder and port (again, after ``halt``)."""
        assert self.root is not None
        log = self.root / "log"
        server = [str(self.postgres), "-D", str(self.root / "data"), "-p", str(self.port), "-h", "127.0.0.1"]
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(  # type: ignore[call-overload]
                [*server, "-k", str(self.root), "-c", "fsync=off", "-c", "full_page_writes=off"],
                stdout=out,
                stderr=subprocess.STDOUT,
                **_as_nobody(),
            )
        _wait_port(self.port, self.proc, "postgres", log)
        self._ready()

    def halt(self) -> None:
        """Stop the server (fast shutdown: its clients are cut off), keeping its data."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)  # (SIGTERM would wait for every client to leave)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def _ready(self, timeout: float = 30.0) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self.url("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def url(self, db: str) -> str:
        return f"postgresql://streamer@127.0.0.1:{self.port}/{db}"

    def new_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}"')
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        self.halt()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)


class Mosquitto:
    def __init__(
        self,
        port: int | None = None,
        users: dict[str, str] | None = None,
        persist: bool = False,
        tls: bool = False,
    ) -> None:
        self.persist = persist
        self.tls = tls  # a TLS listener with a certificate for 127.0.0.1 from a CA made here (ca_file)
        self.binary = find("mosquitto", "/usr/sbin/mosquitto")
        self.passwd = find("mosquitto_passwd", "/usr/bin/mosquitto_passwd")
        self.port = port or free_port()
        self.users = users or {}
        self.proc: subprocess.Popen | None = None
        self.root = Path(tempfile.mkdtemp(prefix="streamer-mqtt-"))

    @property
    def available(self) -> bool:
        return self.binary is not None and (not self.users or self.passwd is not None)

    def start(self) -> None:
        conf = [f"listener {self.port} 127.0.0.1"]
        if self.tls:
            crt, key = self._certificates()
            conf += [f"cafile {self.ca_file}", f"certfile {crt}", f"keyfile {key}"]
        if self.persist:  # (sessions and queued messages survive a restart: saved at SIGTERM)
            conf += ["persistence true", f"persistence_location {self.root}/"]
        else:
            conf.append("persistence false")
        if os.geteuid() == 0:
            conf.append("user root")  # (no dropping to a user that cannot read this folder)
        if self.users:
            pwfile = self.root / "passwd"
            pwfile.write_text("")
            for user, password in self.users.items():
                subprocess.run(
                    [str(self.passwd), "-b", str(pwfile), user, password], check=True, capture_output=True
                )
            pwfile.chmod(0o600)
            conf += ["allow_anonymous false", f"password_file {pwfile}"]
        else:
            conf.append("allow_anonymous true")
        path = self.root / "mosquitto.conf"
        path.write_text("\n".join(conf) + "\n")
        log = self.root / "log"
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [str(self.binary), "-c", str(path)], stdout=out, stderr=subprocess.STDOUT
            )
        _wait_port(self.port, self.proc, "mosquitto", log)

    @property
    def ca_file(self) -> Path:
        return self.root / "ca.crt"

    def _certificates(self) -> tuple[Path, Path]:
        r = self.root
        if not (r / "server.crt").exists():
            openssl = find("openssl", "/usr/bin/openssl")
            need_system("openssl", openssl is not None)
            (r / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
            for cmd in (
                "req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=test-ca",
                "req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1",
                "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 "
                "-extfile san.ext",
            ):
                subprocess.run([str(openssl), *cmd.split()], cwd=r, check=True, capture_output=True)
        return r / "server.crt", r / "server.key"

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def postgres_server() -> Iterator[Postgres]:
    pg = Postgres()
    need_system("PostgreSQL server (postgresql)", pg.available)
    pg.start()
    try:
        yield pg
    finally:
        pg.stop()


def mosquitto_broker(users: dict[str, str] | None = None) -> Iterator[Mosquitto]:
    m = Mosquitto(users=users)
    need_system("Mosquitto MQTT broker (mosquitto)", m.available)
    m.start()
    try:
        yield m
    finally:
        m.cleanup()
