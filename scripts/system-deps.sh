#!/usr/bin/env bash
# Installs the Debian packages the integration tests need, if any is missing:
#   - GStreamer's RTSP server with Python bindings (a real RTSP camera for tests),
#   - Chromium (a real browser for the WebRTC page test),
#   - PostgreSQL and Mosquitto (a real database and MQTT broker for the event history's tests:
#     tests/support/event_servers.py starts private instances on loopback ports, as `nobody` when root).
# The service itself needs none of them (OpenCV's wheel carries FFmpeg; the event store's default
# is SQLite, in the standard library).
set -euo pipefail
pkgs=(chromium gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gi
      gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-tools
      postgresql mosquitto)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "system-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "system-deps: need root to apt-get install ${missing[*]}; the tests that need them will be skipped" >&2
    [ "${CI:-}" = "true" ] && exit 1 || exit 0
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
