// streamer page: the event history (GET /events): what happened, newest first, with each track's
// best face snapshot; filters by stream, label and time; an event's detail; tracks per hour.
// Every value from the service goes in with textContent (never as markup): labels and stream ids
// are data. Needs app.js (api, setImage).
"use strict";
(() => {
  const root = document.getElementById("history");
  if (!root) return;
  const $ = (sel) => root.querySelector(sel);
  const list = $("#h-list"), more = $("#h-more"), status = $("#h-status"), detail = $("#h-detail");
  let cursor = null;

  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const when = (t) => new Date(t * 1000).toLocaleString();
  const labelText = (labels) =>
    Object.entries(labels || {}).map(([c, l]) => (l.label === "?" ? `${c}?` : `${l.label} ${Number(l.p).toFixed(2)}`)).join(", ") || "face";
  const epoch = (input) => (input.value ? String(new Date(input.value).getTime() / 1000) : "");

  function query() {
    const q = new URLSearchParams();
    const add = (k, v) => { if (v) q.set(k, v); };
    add("stream", $("#h-stream").value.trim());
    add("label", $("#h-label").value.trim());
    add("since", epoch($("#h-since")));
    add("until", epoch($("#h-until")));
    return q;
  }

  async function load(append) {
    const q = query();
    q.set("limit", "24");
    if (append && cursor) q.set("cursor", cursor);
    let r, body;
    try { r = await api(`/events?${q}`); body = await r.json(); }
    catch (e) { status.textContent = "history unavailable"; return; }
    if (!r.ok) { status.textContent = `error: ${body.error || r.status}`; return; }
    if (!append) list.replaceChildren();
    for (const ev of body.events) list.appendChild(item(ev));
    cursor = body.next;
    more.hidden = !cursor;
    status.textContent = list.children.length ? "" : "nothing yet: a track is kept when it ends";
    counts(q);
  }

  function item(ev) {
    const li = el("li", "h-item");
    li.dataset.id = String(ev.id);
    if (ev.thumbnail_url) {
      const img = el("img", "h-thumb");
      img.alt = `track ${ev.track}`;
      img.loading = "lazy";
      setImage(img, ev.thumbnail_url);
      li.appendChild(img);
    }
    const text = el("div", "h-text");
    text.appendChild(el("div", "h-labels", labelText(ev.labels)));
    text.appendChild(el("div", "meta", `${ev.stream} · #${ev.track} · ${when(ev.started_at)} · ${ev.duration_s.toFixed(1)} s`));
    li.appendChild(text);
    li.onclick = () => show(ev.id);
    return li;
  }

  async function show(id) {
    let r, ev;
    try { r = await api(`/events/${id}`); ev = await r.json(); } catch (e) { return; }
    if (!r.ok) { detail.replaceChildren(el("p", "status", ev.error || "not found")); return; }
    const box = el("div", "h-detail-body");
    if (ev.snapshot_url) {
      const face = el("img", "h-face");
      face.alt = "face snapshot";
      setImage(face, ev.snapshot_url);
      const frame = el("img", "h-frame");
      frame.alt = "frame";
      setImage(frame, ev.thumbnail_url);
      box.append(face, frame);
    }
    const dl = el("dl");
    const row = (k, v) => { dl.append(el("dt", null, k), el("dd", null, v)); };
    row("stream", ev.stream);
    row("track", `#${ev.track}`);
    row("labels", labelText(ev.labels));
    row("seen", `${when(ev.started_at)} – ${when(ev.ended_at)} (${ev.duration_s.toFixed(1)} s)`);
    row("looks", String(ev.looks));
    row("who", ev.identity || "unknown");
    box.appendChild(dl);
    const del = el("button", "h-delete", "Delete");
    del.onclick = async () => {
      const d = await api(`/events/${ev.id}`, { method: "DELETE" });
      if (d.ok) { detail.replaceChildren(); load(false); }
    };
    const close = el("button", null, "Close");
    close.onclick = () => detail.replaceChildren();
    detail.replaceChildren(el("h3", null, `Event ${ev.id}`), box, del, close);
  }

  async function counts(q) {
    const c = new URLSearchParams();
    for (const k of ["stream", "since", "until"]) if (q.get(k)) c.set(k, q.get(k));
    let body;
    try { const r = await api(`/events/counts?${c}`); if (!r.ok) return; body = await r.json(); } catch (e) { return; }
    const hours = body.hours || [];
    const top = Math.max(1, ...hours.map((h) => h.tracks));
    const bars = hours.map((h) => {
      const b = el("div", "h-bar");
      b.style.height = `${Math.round((40 * h.tracks) / top) + 2}px`;
      const labels = Object.entries(h.labels).map(([k, n]) => `${k} ${n}`).join(", ");
      b.title = `${new Date(h.hour * 1000).toLocaleString()}: ${h.tracks} tracks${labels ? " · " + labels : ""}`;
      return b;
    });
    const total = hours.reduce((n, h) => n + h.tracks, 0);
    $("#h-counts").replaceChildren(el("span", "meta", `${total} tracks, per hour: `), ...bars);
  }

  $("#h-filters").onsubmit = (e) => { e.preventDefault(); load(false); };
  more.onclick = () => load(true);
  load(false);
  setInterval(() => { if (!cursor && !detail.children.length) load(false); }, 10000);
})();
