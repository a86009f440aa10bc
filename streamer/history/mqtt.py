"""Track events to an MQTT broker (paho-mqtt): ``<prefix>/<stream>/events``, one JSON message per
start / update / end, and ``<prefix>/available``: retained "online" while connected, "offline"
when closed, and the same "offline" as the broker's last will should the service vanish.

paho's own network thread connects, reconnects (1 s growing to 30 s) and sends; ``publish`` on the
event loop only queues (at most ``mqtt.queue`` messages; with QoS 1 and 2 they wait for the broker
while it is down, with QoS 0 they are dropped then). A message that cannot be queued is counted
(``streamer_event_sink_dropped_total{sink="mqtt"}``). The connection state is ``streamer_mqtt_up``;
it is logged once when lost and once when back, never with the credentials.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import uuid

import paho.mqtt.client as mqtt

from streamer.history.settings import MqttConfig
from streamer.metrics import Metrics

log = logging.getLogger(__name__)


class MqttSink:
    name = "mqtt"

    def __init__(self, cfg: MqttConfig, metrics: Metrics) -> None:
        self.cfg = cfg
        self.metrics = metrics
        self.prefix = cfg.topic_prefix.rstrip("/")
        self.available = f"{self.prefix}/available"
        self.connected = threading.Event()
        self._down_logged = False
        self._closing = False
        cid = cfg.client_id or f"streamer-{socket.gethostname()}-{uuid.uuid4().hex[:6]}"
        c = self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid)
        if cfg.username:
            c.username_pw_set(cfg.username, cfg.password or None)
        if cfg.tls:
            c.tls_set(ca_certs=cfg.ca_file or None)
        c.will_set(self.available, "offline", qos=1, retain=True)
        c.max_queued_messages_set(cfg.queue)
        c.reconnect_delay_set(1, 30)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_connect_fail = self._on_connect_fail
        metrics.mqtt_up.set(0)

    @property
    def where(self) -> str:
        return f"{self.cfg.host}:{self.cfg.port}"

    def start(self) -> None:
        self.client.connect_async(self.cfg.host, self.cfg.port, self.cfg.keepalive_s)
        self.client.loop_start()

    def publish(self, stream: str, kind: str, data: dict[str, object]) -> None:
        """Queue one event (never waits)."""
        payload = json.dumps({"kind": kind, **data}, separators=(",", ":"))
        try:
            info = self.client.publish(f"{self.prefix}/{stream}/events", payload, qos=self.cfg.qos)
            rc = info.rc
        except Exception:  # (paho raises on a full queue in some versions)
            rc = mqtt.MQTT_ERR_QUEUE_SIZE
        queued = rc == mqtt.MQTT_ERR_NO_CONN and self.cfg.qos > 0  # (kept by paho, sent on reconnect)
        if rc != mqtt.MQTT_ERR_SUCCESS and not queued:
            self.metrics.event_sink_dropped.labels(self.name).inc()

    def _on_connect(self, client, userdata, flags, reason, properties=None) -> None:
        if reason.is_failure:
            self._down(f"refused: {reason}")
            return
        client.publish(self.available, "online", qos=1, retain=True)
        self.connected.set()
        self.metrics.mqtt_up.set(1)
        if self._down_logged:
            log.warning("MQTT broker %s: connected again", self.where)
        else:
            log.info("MQTT broker %s: connected", self.where)
        self._down_logged = False

    def _on_disconnect(self, client, userdata, flags, reason, properties=None) -> None:
        if not self._closing:
            self._down(f"disconnected: {reason}")

    def _on_connect_fail(self, client, userdata) -> None:
        self._down("cannot connect")

    def _down(self, why: str) -> None:
        self.connected.clear()
        self.metrics.mqtt_up.set(0)
        self.metrics.event_sink_errors.labels(self.name).inc()
        if not self._down_logged:
            self._down_logged = True
            log.error(
                "MQTT broker %s: %s; events are queued (up to %d) and the connection retried; "
                "video is not affected",
                self.where,
                why,
                self.cfg.queue,
            )

    def close(self, timeout: float = 5.0) -> None:
        """Say "offline" (retained), send what is queued if connected, and disconnect. Blocking."""
        self._closing = True
        c = self.client
        if self.connected.is_set():
            info = c.publish(self.available, "offline", qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout)
        c.disconnect()
        c.loop_stop()
        self.metrics.mqtt_up.set(0)
