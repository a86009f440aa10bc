"""Track events over MQTT, against a real Mosquitto broker the tests start: JSON on
streamer/<stream>/events, a retained streamer/available (online, offline, and offline as the last
will of a service that died), credentials (never logged), TLS (the broker's certificate checked),
and a broker that goes away and comes back: counted, logged once, the events kept and sent once
it is back; video never waits."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace

import paho.mqtt.client as mqtt
import pytest

from streamer.config import load_config
from streamer.history.service import History
from streamer.metrics import Metrics
from streamer.pipeline.events import EventHub
from streamer.track.tracker import TrackEvent
from streamer.types import Box, Label
from tests.conftest import ROOT
from tests.support.event_servers import Mosquitto, mosquitto_broker
from tests.test_events_store import value, wait

pytestmark = pytest.mark.system
USER, PASSWORD = "cam-service", "mqtt-Pa55-w0rd-secret"


class Listener:
    """A subscriber to streamer/#: every message, in order of arrival."""

    def __init__(self, port: int, auth: bool = False, client_id: str = "", persistent: bool = False) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.ready = threading.Event()
        self.c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=not persistent
        )
        if auth:
            self.c.username_pw_set(USER, PASSWORD)
        self.c.on_connect = lambda c, u, f, rc, p=None: (c.subscribe("streamer/#", qos=1), self.ready.set())
        self.c.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload, bool(m.retain)))
        self.c.reconnect_delay_set(0.2, 1)
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        assert self.ready.wait(10), "the listener did not connect"

    def events(self, stream: str) -> list[dict]:
        return [json.loads(p) for t, p, _ in list(self.messages) if t == f"streamer/{stream}/events"]

    def available(self) -> list[str]:
        return [p.decode() for t, p, _ in list(self.messages) if t == "streamer/available"]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def history(port: int, **mqtt_cfg: object) -> tuple[History, Metrics]:
    cfg = load_config(
        None,
        {"store": {"enabled": False}, "mqtt": {"enabled": True, "port": port, **mqtt_cfg}},
        environ={},
    )
    m = Metrics()
    return History(cfg, m), m


def stream(h: History, sid: str) -> EventHub:
    s = SimpleNamespace(id=sid, events=EventHub(sid), stage=SimpleNamespace(looks=None))
    h.attach(s)
    return s.events


def track(kind: str, tid: int, label: str = "male") -> TrackEvent:
    return TrackEvent(
        kind, tid, time.time(), Box(10, 20, 110, 140, 0.9), (Label("gender", label, 0.93),), 1.5
    )


@pytest.fixture
def broker() -> Iterator[Mosquitto]:
    yield from mosquitto_broker({USER: PASSWORD})


async def test_events_as_json_and_a_retained_availability_with_credentials(
    broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    h, m = history(broker.port, username=USER, password=PASSWORD)
    h.start()
    sink = h.sinks[0]
    assert sink.connected.wait(10) and value(m, "streamer_mqtt_up") == 1
    hub = stream(h, "door")
    # the broker holds "online" once a first subscriber got it (live or retained): one that comes
    # later is sent the retained copy, flagged so (one racing the service's publish would get it live)
    probe = Listener(broker.port, auth=True)
    try:
        wait(lambda: probe.available() == ["online"], "'online'", timeout=120)
    finally:
        probe.close()
    listen = Listener(broker.port, auth=True)
    try:
        wait(lambda: listen.available() == ["online"], "the retained 'online'", timeout=120)
        assert listen.messages[0][2], "availability is retained"
        hub.publish([track("start", 3)])
        hub.publish([track("update", 3, "female")])
        hub.publish([track("end", 3, "female")])
        wait(lambda: len(listen.events("door")) == 3, "three events")
        got = listen.events("door")
        assert [e["kind"] for e in got] == ["start", "update", "end"]
        assert got[0]["stream"] == "door" and got[0]["track"] == 3 and got[0]["box"]["left"] == 10
        assert got[2]["labels"] == {"gender": {"label": "female", "p": 0.93}}
        await h.close()
        wait(lambda: listen.available()[-1:] == ["offline"], "'offline' at close")
        assert value(m, "streamer_mqtt_up") == 0
    finally:
        listen.close()
    later = Listener(broker.port, auth=True)  # a new client is told at once: retained
    try:
        wait(lambda: later.available() == ["offline"], "the retained 'offline'")
    finally:
        later.close()
    assert PASSWORD not in caplog.text


async def test_wrong_credentials_are_one_log_line_without_the_password(
    broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    h, m = history(broker.port, username=USER, password="not-the-" + PASSWORD)
    h.start()
    try:
        wait(lambda: value(m, "streamer_event_sink_errors_total", sink="mqtt") >= 2, "refused twice")
        hub = stream(h, "door")
        t0 = time.perf_counter()
        for i in range(50):
            hub.publish([track("start", i)])
        assert time.perf_counter() - t0 < 1.0  # (queued, never waiting on the broker)
    finally:
        await h.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "streamer.history.mqtt" and r.levelno >= 40]
    assert len(lines) == 1 and "refused" in lines[0], lines
    assert PASSWORD not in caplog.text and value(m, "streamer_mqtt_up") == 0


def test_the_last_will_says_offline_when_the_service_dies() -> None:
    with_broker = mosquitto_broker()
    broker = next(with_broker)
    listen = Listener(broker.port)
    script = (
        "import sys, time\n"
        "from streamer.history.mqtt import MqttSink\n"
        "from streamer.history.settings import MqttConfig\n"
        "from streamer.metrics import Metrics\n"
        f"s = MqttSink(MqttConfig(enabled=True, port={broker.port}, keepalive_s=5), Metrics())\n"
        "s.start()\n"
        "assert s.connected.wait(10)\n"
        "print('READY', flush=True)\n"
        "time.sleep(60)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "READY"
        wait(lambda: listen.available()[-1:] == ["online"], "'online'")
        proc.kill()  # no DISCONNECT: the broker sends the will
        proc.wait()
        wait(lambda: listen.available()[-1:] == ["offline"], "the last will's 'offline'")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        listen.close()
        with_broker.close()


async def test_a_broker_that_goes_away_and_back(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    broker = Mosquitto(persist=True)
    if not broker.available:
        next(mosquitto_broker())  # (skips, or fails under STREAMER_REQUIRE_SYSTEM_TESTS)
    broker.start()
    # a durable subscription: the broker keeps what comes while this listener is away
    listen = Listener(broker.port, client_id="test-listener", persistent=True)
    h, m = history(broker.port, keepalive_s=5)
    try:
        h.start()
        sink = h.sinks[0]
        assert sink.connected.wait(10)
        hub = stream(h, "gate")
        hub.publish([track("start", 1)])
        wait(lambda: len(listen.events("gate")) == 1, "the first event")
        broker.stop()  # (SIGTERM: mosquitto saves its sessions)
        wait(lambda: value(m, "streamer_mqtt_up") == 0, "the broker's absence noticed")
        t0 = time.perf_counter()
        for i in range(2, 12):
            hub.publish([track("start", i)])  # while it is away: queued by the sink
        assert time.perf_counter() - t0 < 1.0
        broker.start()
        wait(lambda: value(m, "streamer_mqtt_up") == 1, "connected again", timeout=60)
        wait(lambda: len(listen.events("gate")) >= 11, "the queued events delivered", timeout=30)
        assert sorted({e["track"] for e in listen.events("gate")}) == list(range(1, 12))
        assert value(m, "streamer_event_sink_dropped_total", sink="mqtt") == 0
        down = [r for r in caplog.records if r.name == "streamer.history.mqtt" and r.levelno >= 40]
        assert len(down) == 1, [r.getMessage() for r in down]
        assert any("connected again" in r.getMessage() for r in caplog.records)
    finally:
        await h.close()
        listen.close()
        broker.cleanup()


async def test_tls_with_the_brokers_ca_and_refused_without_it() -> None:
    broker = Mosquitto(tls=True)
    if not broker.available:
        next(mosquitto_broker())  # (skips, or fails under STREAMER_REQUIRE_SYSTEM_TESTS)
    broker.start()
    trusting, m = history(broker.port, tls=True, ca_file=str(broker.ca_file))
    doubting, m2 = history(broker.port, tls=True)  # the system's CAs: this test CA is not one of them
    listen = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    got: list[bytes] = []
    listen.tls_set(ca_certs=str(broker.ca_file))
    listen.on_connect = lambda c, u, f, rc, p=None: c.subscribe("streamer/+/events", qos=1)
    listen.on_message = lambda c, u, msg: got.append(msg.payload)
    try:
        listen.connect("127.0.0.1", broker.port)
        listen.loop_start()
        trusting.start()
        doubting.start()
        assert trusting.sinks[0].connected.wait(15) and value(m, "streamer_mqtt_up") == 1
        time.sleep(0.5)  # (the listener subscribed)
        stream(trusting, "tls").publish([track("start", 1)])
        wait(lambda: len(got) == 1, "the event over TLS")
        assert json.loads(got[0])["track"] == 1
        wait(
            lambda: value(m2, "streamer_event_sink_errors_total", sink="mqtt") >= 1,
            "the untrusted broker refused",
        )
        assert value(m2, "streamer_mqtt_up") == 0 and not doubting.sinks[0].connected.is_set()
    finally:
        await trusting.close()
        await doubting.close()
        listen.disconnect()
        listen.loop_stop()
        broker.cleanup()
