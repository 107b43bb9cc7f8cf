// emomusic's page: no build step, no library, nothing fetched from the internet.
"use strict";

const EMOTIONS = {
  neutral: [0, 0], calm: [0.5, -0.6], happy: [0.8, 0.5], surprised: [0.3, 0.8], sad: [-0.7, -0.5],
  angry: [-0.6, 0.8], fearful: [-0.7, 0.7], disgust: [-0.7, 0.3], contempt: [-0.5, 0.2],
};
const SOURCE_COLOURS = { tag: "#2c7be5", csv: "#8a3ffc", analysis: "#e5832c", playlist: "#33a02c" };
const $ = (id) => document.getElementById(id);
const svgNS = "http://www.w3.org/2000/svg";

function el(tag, attrs = {}, text = "") {
  const e = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text) e.textContent = text;
  return e;
}

// -- tabs ---------------------------------------------------------------------------------------------
document.querySelectorAll("nav button").forEach((b) => b.addEventListener("click", () => {
  document.querySelectorAll("nav button, .tab").forEach((x) => x.classList.remove("active"));
  b.classList.add("active");
  $(b.dataset.tab).classList.add("active");
  if (b.dataset.tab === "library") loadLibrary();
  if (b.dataset.tab === "house") loadHouse();
}));

// Where each label sits beside its point (dx, dy, anchor): neighbours (angry/fearful, disgust/contempt)
// are written away from each other so no two overlap.
const LABEL_AT = {
  angry: [0, -0.05, "middle"], fearful: [-0.05, 0.03, "end"], disgust: [-0.05, 0.03, "end"],
  contempt: [0.05, 0.05, "start"], surprised: [0, -0.05, "middle"], happy: [0, -0.05, "middle"],
  calm: [0, 0.1, "middle"], sad: [0, 0.1, "middle"], neutral: [0.05, -0.04, "start"],
};
for (const [name, [v, a]] of Object.entries(EMOTIONS)) {
  const [dx, dy, anchor] = LABEL_AT[name] || [0, -0.05, "middle"];
  $("points").appendChild(el("circle", { cx: v, cy: -a, r: 0.018, class: "emopoint" }));
  $("labels").appendChild(el("text", { x: v + dx, y: -a + dy, class: "emo", "text-anchor": anchor }, name));
}
document.querySelectorAll("select.emotions").forEach((s) => {
  for (const name of Object.keys(EMOTIONS)) s.appendChild(new Option(name, name));
});

// -- now ----------------------------------------------------------------------------------------------
let history = [];

function showState(data) {
  const s = data.state;
  if (!s) { $("emotion").textContent = "waiting…"; return; }
  $("emotion").textContent = s.emotion;
  $("confidence").textContent = `confidence ${(s.confidence * 100).toFixed(0)} %`;
  const me = $("me");
  if (s.valence === null) {
    $("va").textContent = "no one seen or heard";
    me.setAttribute("visibility", "hidden");
  } else {
    $("va").textContent = `valence ${s.valence.toFixed(2)}, arousal ${s.arousal.toFixed(2)}`;
    me.setAttribute("cx", s.valence); me.setAttribute("cy", -s.arousal); me.setAttribute("visibility", "visible");
    history.push({ t: Date.now() / 1000, valence: s.valence, arousal: s.arousal });
  }
  const ul = $("modalities");
  ul.replaceChildren();
  for (const [name, m] of Object.entries(s.modalities)) {
    const li = document.createElement("li");
    li.textContent = `${name}: ${m.emotion} (weight ${m.weight.toFixed(2)}, ${m.age_s.toFixed(1)} s ago)`;
    ul.appendChild(li);
  }
  drawTimeline();
}

// The timeline: the last ten minutes left to right (x 40..612), values -1..+1 bottom to top (y 120..10).
const TL = { x0: 40, x1: 612, y0: 10, y1: 120, span: 600 };
const tlX = (age) => TL.x1 - (age / TL.span) * (TL.x1 - TL.x0);
const tlY = (v) => TL.y0 + (1 - v) / 2 * (TL.y1 - TL.y0);
(function drawGrid() {
  const g = $("tl-grid");
  for (const v of [1, 0.5, 0, -0.5, -1]) {
    g.appendChild(el("line", { x1: TL.x0, x2: TL.x1, y1: tlY(v), y2: tlY(v), class: v === 0 ? "grid zero" : "grid" }));
    if (v % 1 === 0) g.appendChild(el("text", { x: TL.x0 - 6, y: tlY(v) + 4, "text-anchor": "end" }, v > 0 ? "+1" : `${v}`));
  }
  for (let min = 10; min >= 0; min -= 2) {
    const x = tlX(min * 60);
    g.appendChild(el("line", { x1: x, x2: x, y1: TL.y0, y2: TL.y1, class: "grid" }));
    g.appendChild(el("text", { x, y: TL.y1 + 16, "text-anchor": "middle", class: "tick" }, min ? `−${min} min` : "now"));
  }
})();

function drawTimeline() {
  const now = Date.now() / 1000;
  history = history.filter((p) => now - p.t <= TL.span);
  const pts = (key) => history.filter((p) => p[key] !== null)
    .map((p) => `${tlX(now - p.t).toFixed(1)},${tlY(p[key]).toFixed(1)}`).join(" ");
  $("tl-v").setAttribute("points", pts("valence"));
  $("tl-a").setAttribute("points", pts("arousal"));
}

async function api(path, options) {
  let r;
  try {
    r = await fetch(path, options);
  } catch (e) {
    throw new Error("the daemon is not reachable (stopped, or the network is down)");
  }
  const body = await r.json().catch(() => ({ error: `HTTP ${r.status}` }));
  if (!r.ok) throw new Error(body.error || `HTTP ${r.status}`);
  return body;
}

// -- music --------------------------------------------------------------------------------------------
function showPlayer(p) {
  const s = p.status;
  if (!s) { $("playing").textContent = "no music stage"; return; }
  $("playing").textContent = s.title || (s.state === "error" ? "error" : "nothing");
  $("playing-detail").textContent = s.state === "error" ? s.error
    : `${s.state}${s.artist ? " · " + s.artist : ""}${s.track_valence !== null ? ` · v=${s.track_valence} a=${s.track_arousal} (${s.placement})` : ""}`;
  if (document.activeElement !== $("mode")) $("mode").value = s.mode;
  if (document.activeElement !== $("volume")) { $("volume").value = s.volume; $("volume-value").textContent = `${s.volume} %`; }
  if (document.activeElement !== $("mood")) $("mood").value = s.fixed_mood;
  const q = $("queue");
  q.replaceChildren();
  for (const t of p.queue) {
    const li = document.createElement("li");
    li.textContent = `${t.title} — ${t.artist || "unknown"}`;
    q.appendChild(li);
  }
}

async function command(topic, payload) {
  try {
    await api("/api/command", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ topic, payload }) });
    $("command-answer").textContent = `sent ${payload} to ${topic}`;
  } catch (e) {
    $("command-answer").textContent = e.message;
  }
}
document.querySelectorAll("[data-cmd]").forEach((b) => b.addEventListener("click", () => command(b.dataset.cmd, b.dataset.payload)));
$("mode").addEventListener("change", (e) => command("mode/set", e.target.value));
$("mood").addEventListener("change", (e) => command("mood/set", e.target.value));
$("volume").addEventListener("input", (e) => { $("volume-value").textContent = `${e.target.value} %`; });
$("volume").addEventListener("change", (e) => command("volume/set", e.target.value));
$("feel-send").addEventListener("click", () => command("feedback/set", $("feel").value));

// -- live updates -------------------------------------------------------------------------------------
// While the daemon cannot be reached the page says since when, greys what it shows (the last known
// values) and disables the controls; it keeps trying and comes back by itself.
let offlineSince = null;
function setOnline(on) {
  document.body.classList.toggle("offline", !on);
  $("live").classList.toggle("on", on);
  document.querySelectorAll("#music button, #music select, #music input").forEach((x) => { x.disabled = !on; });
  if (on) {
    offlineSince = null;
    $("offline").hidden = true;
    return;
  }
  offlineSince = offlineSince || new Date();
  $("offline").textContent = `daemon offline since ${offlineSince.toLocaleTimeString()}: showing the last known values; retrying…`;
  $("offline").hidden = false;
}
function connect() {
  const es = new EventSource("/api/events");
  es.onopen = () => setOnline(true);
  es.onmessage = (e) => { setOnline(true); const d = JSON.parse(e.data); showState(d); showPlayer(d.player); };
  es.onerror = () => { setOnline(false); es.close(); setTimeout(connect, 3000); };
}
api("/api/history").then((h) => {
  history = h.points.filter((p) => p.valence !== null).map((p) => ({ t: p.t - h.now + Date.now() / 1000, valence: p.valence, arousal: p.arousal }));
  drawTimeline();
}).catch(() => {});
connect();

// -- house --------------------------------------------------------------------------------------------
// Every room's daemon on the broker, as their retained topics say; refreshed while the tab is open.
let houseTimer = null;
async function roomCommand(device, topic, payload) {
  try {
    await api("/api/command", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ device, topic, payload }) });
    $("house-note").textContent = `sent ${payload} to ${device}'s ${topic}`;
  } catch (e) {
    $("house-note").textContent = e.message;
  }
  clearTimeout(houseTimer);
  houseTimer = setTimeout(loadHouse, 3000);  // not at once: the note stays readable
}
async function loadHouse() {
  clearTimeout(houseTimer);
  let h;
  try { h = await api("/api/house"); } catch (e) { $("house-note").textContent = e.message; return; }
  const m = h.mood;
  $("house-mood").textContent = m ? m.emotion : "…";
  $("house-mood-detail").textContent = m ? `in ${m.room || m.device}, seen ${m.seen}; published by ${h.published_by}` : "";
  const body = $("rooms").querySelector("tbody");
  body.replaceChildren();
  for (const r of h.rooms) {
    const tr = document.createElement("tr");
    const cells = [r.room || "—", r.device, r.online ? "online" : "offline", r.emotion || "—",
      r.confidence == null ? "" : r.confidence.toFixed(2),
      r.player && r.player.title ? `${r.player.title} (${r.player.state})` : (r.player && r.player.state) || ""];
    for (const c of cells) tr.appendChild(Object.assign(document.createElement("td"), { textContent: c }));
    const controls = document.createElement("td");  // sent to that room over MQTT, validated there as ever
    if (r.online) {
      const mode = document.createElement("select");
      mode.className = "room-mode";
      for (const m of ["match", "regulate", "fixed", "off"]) mode.appendChild(new Option(m, m, false, r.player && r.player.mode === m));
      if (!r.player || !r.player.mode) mode.value = "";
      mode.addEventListener("change", () => roomCommand(r.device, "mode/set", mode.value));
      controls.appendChild(mode);
      for (const p of ["play", "pause", "skip"]) {
        const b = Object.assign(document.createElement("button"), { textContent: p, className: `room-${p}` });
        b.addEventListener("click", () => roomCommand(r.device, "player/set", p));
        controls.appendChild(b);
      }
    }
    tr.appendChild(controls);
    tr.dataset.device = r.device;
    if (!r.online) tr.className = "muted";
    body.appendChild(tr);
  }
  $("house-note").textContent = h.followed ? `${h.rooms.length} room(s)` : "this daemon does not follow the house (house.enabled = false, or no MQTT)";
  if ($("house").classList.contains("active")) houseTimer = setTimeout(loadHouse, 3000);
}

// -- library ------------------------------------------------------------------------------------------
let tracks = [];
async function loadLibrary() {
  try { tracks = (await api("/api/library")).tracks; } catch (e) { $("library-count").textContent = e.message; return; }
  const g = $("dots");
  g.replaceChildren();
  const sources = {};
  tracks.forEach((t, i) => {
    sources[t.placement] = (sources[t.placement] || 0) + 1;
    const c = el("circle", { cx: t.valence, cy: -t.arousal, r: 0.035, fill: SOURCE_COLOURS[t.placement] || "#888", "data-i": i });
    c.appendChild(el("title", {}, `${t.title} — ${t.artist || "unknown"} (${t.placement})${t.banned ? " · disliked" : ""}`));
    g.appendChild(c);
  });
  const legend = $("sources");
  legend.replaceChildren("placed by: ");
  for (const [k, n] of Object.entries(sources)) {
    const span = Object.assign(document.createElement("span"), { textContent: `● ${k} ${n}  ` });
    span.style.color = SOURCE_COLOURS[k] || "#888";
    legend.appendChild(span);
  }
  filterLibrary();
}
function filterLibrary() {
  const q = $("search").value.trim().toLowerCase();
  const list = $("tracks");
  list.replaceChildren();
  let shown = 0;
  tracks.forEach((t, i) => {
    const hit = !q || `${t.title} ${t.artist}`.toLowerCase().includes(q);
    document.querySelector(`#dots circle[data-i="${i}"]`).classList.toggle("hidden", !hit);
    if (!hit) return;
    shown += 1;
    const li = document.createElement("li");
    const heard = t.heard && t.heard.length ? ` · heard: ${t.heard.join(", ")}` : "";
    const sure = t.confidence !== null && t.confidence !== undefined ? ` (sure ${t.confidence.toFixed(2)})` : "";
    li.textContent = `${t.title} — ${t.artist || "unknown"} · v=${t.valence} a=${t.arousal} · ${t.placement}${sure}${heard}${t.banned ? " · disliked" : ""}`;
    list.appendChild(li);
  });
  $("library-count").textContent = `${shown} of ${tracks.length} tracks`;
}
$("search").addEventListener("input", filterLibrary);

// -- analyze ------------------------------------------------------------------------------------------
let recording = null;

function wav(samples, rate) {  // Float32 mono -> 16-bit PCM WAV
  const buf = new ArrayBuffer(44 + samples.length * 2);
  const v = new DataView(buf);
  const str = (o, s) => { for (let i = 0; i < s.length; i++) v.setUint8(o + i, s.charCodeAt(i)); };
  str(0, "RIFF"); v.setUint32(4, 36 + samples.length * 2, true); str(8, "WAVEfmt ");
  v.setUint32(16, 16, true); v.setUint16(20, 1, true); v.setUint16(22, 1, true); v.setUint32(24, rate, true);
  v.setUint32(28, rate * 2, true); v.setUint16(32, 2, true); v.setUint16(34, 16, true); str(36, "data");
  v.setUint32(40, samples.length * 2, true);
  samples.forEach((s, i) => v.setInt16(44 + i * 2, Math.max(-1, Math.min(1, s)) * 32767, true));
  return new Blob([buf], { type: "audio/wav" });
}

$("record").addEventListener("click", async () => {
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const ctx = new AudioContext();
    const src = ctx.createMediaStreamSource(stream);
    const node = ctx.createScriptProcessor(4096, 1, 1);
    const chunks = [];
    node.onaudioprocess = (e) => chunks.push(new Float32Array(e.inputBuffer.getChannelData(0)));
    src.connect(node); node.connect(ctx.destination);
    $("recorded").textContent = "recording…";
    await new Promise((r) => setTimeout(r, 5000));
    node.disconnect(); src.disconnect(); stream.getTracks().forEach((t) => t.stop());
    const all = new Float32Array(chunks.reduce((n, c) => n + c.length, 0));
    let o = 0; for (const c of chunks) { all.set(c, o); o += c.length; }
    recording = wav(all, ctx.sampleRate);
    await ctx.close();
    $("recorded").textContent = `recorded ${(all.length / ctx.sampleRate).toFixed(1)} s (used instead of a file)`;
  } catch (e) {
    $("recorded").textContent = `cannot record: ${e.message}`;
  }
});

$("analyze-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = new FormData(ev.target);
  if (recording) form.set("audio", recording, "recording.wav");
  for (const k of ["image", "audio"]) { const f = form.get(k); if (f && f.size === 0) form.delete(k); }
  const out = $("result");
  out.hidden = false;
  out.textContent = "analysing…";
  try {
    showResult(await api("/api/analyze", { method: "POST", body: form }));
  } catch (e) {
    out.replaceChildren(Object.assign(document.createElement("p"), { className: "error", textContent: e.message }));
  }
});

function showResult(r) {
  const out = $("result");
  out.replaceChildren();
  const h = document.createElement("div");
  h.className = "big";
  h.id = "result-emotion";
  h.textContent = r.emotion;
  out.appendChild(h);
  const p = document.createElement("p");
  p.className = "muted";
  p.textContent = r.valence === null ? r.reason
    : `confidence ${(r.confidence * 100).toFixed(0)} % · valence ${r.valence} · arousal ${r.arousal}`;
  out.appendChild(p);
  for (const [name, m] of Object.entries(r.modalities)) {
    const d = document.createElement("p");
    d.textContent = m.emotion ? `${name}: ${m.emotion} (confidence ${m.confidence})${m.read_as ? "; " + m.read_as : ""}`
      : `${name}: ${m.error}`;
    out.appendChild(d);
  }
  if (r.recommendations.length) {
    const t = document.createElement("table");
    t.id = "recommendations";
    t.innerHTML = "<tr><th>song</th><th>artist</th><th>why</th></tr>";
    for (const s of r.recommendations) {
      const row = t.insertRow();
      [s.title, s.artist || "unknown", s.why].forEach((x) => { row.insertCell().textContent = x; });
    }
    out.appendChild(Object.assign(document.createElement("p"), { textContent: r.reason }));
    out.appendChild(t);
  }
}
