// streamer page: send your camera over WebRTC, watch any stream (WebRTC or MJPEG), add cameras.
"use strict";
const ICE = window.STREAMER_ICE_SERVERS || [];

// API token (when the service requires one): from the URL as #token=..., else asked for on a 401.
let TOKEN = new URLSearchParams(location.hash.slice(1)).get("token") || sessionStorage.getItem("streamer-token") || "";
if (TOKEN) sessionStorage.setItem("streamer-token", TOKEN);
async function api(url, opts = {}) {
  const headers = Object.assign({}, opts.headers || {}, TOKEN ? { "X-API-Token": TOKEN } : {});
  const r = await fetch(url, Object.assign({}, opts, { headers }));
  if (r.status === 401) {
    const t = window.prompt("This service needs its API token:");
    if (t) { TOKEN = t; sessionStorage.setItem("streamer-token", t); return api(url, opts); }
  }
  return r;
}
function withToken(url) { return TOKEN ? `${url}?token=${encodeURIComponent(TOKEN)}` : url; }
// Snapshots and crops need the token too, and take it only as a header (?token= is for video and
// events, which a browser cannot fetch with headers): with a token they are fetched and shown from a blob.
async function setImage(img, url) {
  if (!TOKEN) { img.src = url; return; }
  try {
    const r = await fetch(url, { headers: { "X-API-Token": TOKEN } });
    if (!r.ok) throw new Error(`${r.status}`);
    const src = URL.createObjectURL(await r.blob());
    img.addEventListener("load", () => URL.revokeObjectURL(src), { once: true });
    img.src = src;
  } catch (e) { img.dispatchEvent(new Event("error")); }
}

function waitIce(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const check = () => { if (pc.iceGatheringState === "complete") { pc.removeEventListener("icegatheringstatechange", check); resolve(); } };
    pc.addEventListener("icegatheringstatechange", check);
    setTimeout(resolve, 3000); // no STUN reachable: go with the candidates we have
  });
}

async function negotiate(pc, url) {
  await pc.setLocalDescription(await pc.createOffer());
  await waitIce(pc);
  const r = await api(url, { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ sdp: pc.localDescription.sdp, type: pc.localDescription.type }) });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  await pc.setRemoteDescription(body);
  return body;
}

// --- your camera -----------------------------------------------------------
let myPc = null, myStream = null, myId = "";
const mineStatus = document.getElementById("mine-status");
document.getElementById("start").onclick = async () => {
  try {
    myStream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
    myPc = new RTCPeerConnection({ iceServers: ICE });
    myPc.ontrack = (ev) => { document.getElementById("annotated").srcObject = ev.streams[0] || new MediaStream([ev.track]); };
    myPc.onconnectionstatechange = () => {
      if (myPc) mineStatus.textContent = `${myPc.connectionState}` + (myId ? ` · stream ${myId}` : "");
    };
    myStream.getTracks().forEach((t) => myPc.addTrack(t, myStream));
    const answer = await negotiate(myPc, "/offer");
    myId = answer.stream;
    mineStatus.textContent = `${myPc.connectionState} · stream ${myId}`;
    document.getElementById("start").disabled = true;
    document.getElementById("stop").disabled = false;
  } catch (e) { mineStatus.textContent = "error: " + e.message; }
};
document.getElementById("stop").onclick = () => {
  if (myPc) myPc.close();
  if (myStream) myStream.getTracks().forEach((t) => t.stop());
  myPc = myStream = null;
  myId = "";
  document.getElementById("start").disabled = false;
  document.getElementById("stop").disabled = true;
  mineStatus.textContent = "stopped";
};

// --- streams -----------------------------------------------------------------
const cards = new Map(); // id -> {el, pc}
const container = document.createElement("div");
container.className = "cards";
document.getElementById("streams").appendChild(container);

function card(s) {
  const el = document.createElement("div");
  el.className = "card";
  el.innerHTML = `<h3></h3><div class="meta"></div>
    <button class="watch">Watch (WebRTC)</button><button class="mjpeg">MJPEG</button><button class="remove">Remove</button>
    <div class="view"></div><ul class="tracks"></ul>`;
  el.querySelector("h3").textContent = s.id;
  const entry = { el, pc: null, events: null, tracks: new Map(), timer: null, info: s, drawn: 0 };
  el.querySelector(".watch").onclick = () => watch(s.id, entry);
  el.querySelector(".mjpeg").onclick = () => {
    stopView(entry);
    const img = document.createElement("img");
    img.className = "mjpeg"; img.src = withToken(`/streams/${encodeURIComponent(s.id)}/mjpeg`);
    el.querySelector(".view").replaceChildren(img);
    followTracks(s.id, entry);
  };
  el.querySelector(".remove").onclick = async () => {
    await api(`/streams/${encodeURIComponent(s.id)}`, { method: "DELETE" });
    refresh();
  };
  return entry;
}

function stopView(entry) {
  if (entry.pc) { entry.pc.close(); entry.pc = null; }
  if (entry.events) { entry.events.close(); entry.events = null; }
  if (entry.timer) { clearInterval(entry.timer); entry.timer = null; }
  entry.tracks.clear();
  entry.drawn = 0;
  entry.el.querySelector(".view").replaceChildren();
  entry.el.querySelector(".tracks").replaceChildren();
  describe(entry);
}

// The tracks of the watched stream, from its Server-Sent Events: id, labels, how long seen.
function followTracks(id, entry) {
  const es = new EventSource(withToken(`/streams/${encodeURIComponent(id)}/events`));
  entry.events = es;
  // (a resumed track, recognised on coming back, counts from when it was first seen)
  const seen = (d) => { entry.tracks.set(d.track, { labels: d.labels, since: d.time - (d.duration_s || 0) }); };
  es.addEventListener("start", (ev) => seen(JSON.parse(ev.data)));
  es.addEventListener("update", (ev) => {
    const d = JSON.parse(ev.data), t = entry.tracks.get(d.track);
    if (t) t.labels = d.labels; else seen(d);
  });
  es.addEventListener("end", (ev) => entry.tracks.delete(JSON.parse(ev.data).track));
  const draw = () => {
    const items = [...entry.tracks].map(([track, t]) => {
      const li = document.createElement("li");
      const labels = Object.entries(t.labels).map(([c, l]) => l.label === "?" ? `${c}?` : l.label).join(", ");
      li.textContent = `#${track} ${labels || "face"} · ${Math.max(0, Date.now() / 1000 - t.since).toFixed(0)} s`;
      return li;
    });
    entry.el.querySelector(".tracks").replaceChildren(...items);
    entry.drawn = items.length;
    describe(entry);
  };
  entry.timer = setInterval(draw, 1000);
}

async function watch(id, entry) {
  stopView(entry);
  const pc = new RTCPeerConnection({ iceServers: ICE });
  entry.pc = pc;
  pc.addTransceiver("video", { direction: "recvonly" });
  const video = document.createElement("video");
  video.autoplay = true; video.muted = true; video.playsInline = true;
  entry.el.querySelector(".view").replaceChildren(video);
  pc.ontrack = (ev) => { video.srcObject = new MediaStream([ev.track]); };
  followTracks(id, entry);
  try { await negotiate(pc, `/streams/${encodeURIComponent(id)}/offer`); }
  catch (e) { entry.el.querySelector(".view").textContent = "error: " + e.message; }
}

// The card's line. While the stream is followed its face count is the track list's as last drawn
// (from its events, each second), so the two never disagree; else the last /streams poll's.
function describe(entry) {
  const s = entry.info;
  const faces = entry.events ? entry.drawn : s.faces.length;
  entry.el.querySelector(".meta").textContent =
    `${s.kind} · ${s.source} · ${s.width}x${s.height} · ${faces} face${faces === 1 ? "" : "s"}` +
    (s.reconnects ? ` · ${s.reconnects} reconnects` : "") + (s.error && !s.up ? ` · ${s.error}` : "");
}

async function refresh() {
  let data;
  try { data = await (await api("/streams")).json(); } catch (e) { return; }
  const seen = new Set();
  for (const s of data.streams) {
    seen.add(s.id);
    let entry = cards.get(s.id);
    if (!entry) { entry = card(s); cards.set(s.id, entry); container.appendChild(entry.el); }
    const h3 = entry.el.querySelector("h3");
    h3.textContent = s.id;
    const badge = document.createElement("span");
    badge.className = "badge " + (s.up ? "up" : "down");
    badge.textContent = s.up ? "up" : "down";
    h3.appendChild(badge);
    entry.info = s;
    describe(entry);
  }
  for (const [id, entry] of cards) {
    if (!seen.has(id)) { stopView(entry); entry.el.remove(); cards.delete(id); }
  }
}

document.getElementById("add").onsubmit = async (ev) => {
  ev.preventDefault();
  const body = { url: document.getElementById("url").value };
  const sid = document.getElementById("sid").value;
  if (sid) body.id = sid;
  const r = await api("/streams", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const out = await r.json();
  document.getElementById("add-status").textContent = r.ok ? `added ${out.id}` : `error: ${out.error}`;
  refresh();
};

refresh();
setInterval(refresh, 2000);
