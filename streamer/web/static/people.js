// streamer page: the face library (GET /people, /unknown): people and their enrolled faces, enroll
// a photo, remove a face or a person; unknown people grouped ("unknown 7: 12 sightings"), each
// nameable in one step. Every value from the service goes in with textContent (names are data).
// Needs app.js (api, setImage).
"use strict";
(() => {
  const root = document.getElementById("people");
  if (!root) return;
  const $ = (sel) => root.querySelector(sel);
  const status = $("#p-status");
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const path = (name) => encodeURIComponent(name);
  const say = async (r) => {
    if (r.ok) { status.textContent = ""; return true; }
    let msg = String(r.status);
    try { msg = (await r.json()).error || msg; } catch (e) { /* not JSON */ }
    status.textContent = `error: ${msg}`;
    return false;
  };

  async function load() {
    let r, body;
    try { r = await api("/people"); body = await r.json(); } catch (e) { status.textContent = "library unavailable"; return; }
    if (!r.ok) { status.textContent = body.error || String(r.status); return; }
    const list = $("#p-list");
    list.replaceChildren();
    for (const p of body.people) {
      const li = el("li", "p-person");
      li.appendChild(el("strong", null, p.name));
      li.appendChild(el("span", "meta", ` ${p.faces.length} faces${p.negatives.length ? `, ${p.negatives.length} not them` : ""} `));
      for (const f of p.faces) {
        const img = el("img", "p-face");
        img.alt = `${p.name} (${f.source})`;
        img.title = "remove this face";
        img.onerror = () => { img.replaceWith(el("span", "meta", `[${f.source}]`)); };
        setImage(img, f.crop_url);
        img.onclick = async () => { if (await say(await api(`/people/${path(p.name)}/faces/${f.id}`, { method: "DELETE" }))) load(); };
        li.appendChild(img);
      }
      const rm = el("button", null, "Remove");
      rm.onclick = async () => { if (await say(await api(`/people/${path(p.name)}`, { method: "DELETE" }))) load(); };
      li.appendChild(rm);
      list.appendChild(li);
    }
    unknown();
  }

  async function unknown() {
    let r, body;
    try { r = await api("/unknown"); body = await r.json(); } catch (e) { return; }
    if (!r.ok) return;
    const list = $("#p-unknown");
    list.replaceChildren();
    for (const c of body.clusters) {
      const li = el("li", "p-cluster");
      if (c.snapshot_url) {
        const img = el("img", "p-face");
        img.alt = c.name;
        setImage(img, c.snapshot_url);
        li.appendChild(img);
      }
      li.appendChild(el("span", null, `${c.name}: ${c.sightings} sightings `));
      const name = el("input");
      name.placeholder = "name";
      name.size = 12;
      const go = el("button", null, "Name");
      go.onclick = async () => {
        if (!name.value.trim()) return;
        const r2 = await api(`/unknown/${c.id}/name`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ name: name.value.trim() }) });
        if (await say(r2)) load();
      };
      li.append(name, go);
      list.appendChild(li);
    }
  }

  $("#p-enroll").onsubmit = async (e) => {
    e.preventDefault();
    const name = $("#p-name").value.trim(), file = $("#p-photo").files[0];
    if (!name || !file) { status.textContent = "a name and a JPEG or PNG photo"; return; }
    status.textContent = "enrolling…";
    const type = file.type === "image/png" ? "image/png" : "image/jpeg";
    const r = await api(`/people/${path(name)}/faces`, { method: "POST", headers: { "Content-Type": type }, body: file });
    if (await say(r)) { $("#p-photo").value = ""; load(); }
  };

  // "this is" / "not" on an event: the History detail's id, asked here
  $("#p-event").onsubmit = async (e) => {
    e.preventDefault();
    const id = $("#p-event-id").value.trim(), name = $("#p-event-name").value.trim();
    if (!id || !name) return;
    const negative = e.submitter && e.submitter.value === "not";
    const r = await api(`/events/${encodeURIComponent(id)}/person`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ name, negative }) });
    if (await say(r)) load();
  };

  load();
  setInterval(unknown, 15000);
})();
