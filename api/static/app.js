// The packproof dashboard (issue 18): plain JavaScript modules and SVG, no build step, nothing
// fetched from elsewhere (map tiles only when a tile URL is set under Settings). Every URL is
// relative to the document's base (set by the API from the page's path), so the dashboard works
// against whatever packproof API serves it.
import { verifyBundle, parseBundleText, parseVkey, vkeyText, parseNote, b64decode } from "./verify.js";
import { verifyCertificate, rootFromMultiProof } from "./certificate.js";

const $ = (sel, root = document) => root.querySelector(sel);
const main = $("#main");
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const fmt = (x, d = 2) => (x === null || x === undefined ? "–" : typeof x === "number" ? (Number.isInteger(x) ? x.toLocaleString("en") : x.toFixed(d)) : esc(x));
const settings = {
  get: (k, d = "") => localStorage.getItem("packproof." + k) ?? d,
  set: (k, v) => (v ? localStorage.setItem("packproof." + k, v) : localStorage.removeItem("packproof." + k)),
};
const badge = (status) => `<span class="badge status-${esc(status)}">${esc(status)}</span>`;

function headers() {
  const token = settings.get("token");
  return token ? { Authorization: `Bearer ${token}` } : {};
}
export async function api(path, { text = false, allow404 = false } = {}) {
  const r = await fetch(path, { headers: headers() });
  if (allow404 && (r.status === 404 || r.status === 405)) return null;
  if (!r.ok) {
    let detail = r.statusText;
    try { detail = (await r.json()).detail ?? detail; } catch { /* not JSON */ }
    throw new Error(`${path}: ${r.status} ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
  }
  return text ? r.text() : r.json();
}

// ---- server-sent events over fetch (so a bearer token can ride along), reconnecting --------------

const live = { counts: { readings: 0, reading: 0, excursion: 0, block: 0, lag: 0 }, stop: null };
window.packproofLive = live; // the tests read the counts
function subscribe(query, onEvent) {
  let stopped = false, controller = null;
  const pill = $("#live");
  (async () => {
    while (!stopped) {
      controller = new AbortController();
      try {
        const r = await fetch(`events/stream${query}`, { headers: headers(), signal: controller.signal });
        if (!r.ok) throw new Error(`events/stream: ${r.status}`);
        pill.textContent = "live"; pill.style.background = "#1a7f37";
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let cut;
          while ((cut = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, cut); buf = buf.slice(cut + 2);
            let name = "message", data = "";
            for (const line of block.split("\n")) {
              if (line.startsWith("event: ")) name = line.slice(7);
              else if (line.startsWith("data: ")) data += line.slice(6);
            }
            if (!data) continue;
            live.counts[name] = (live.counts[name] || 0) + 1;
            const parsed = JSON.parse(data);
            if (name === "readings") live.counts.reading += parsed.readings.length;
            onEvent(name, parsed);
          }
        }
      } catch (e) {
        if (stopped) return;
      }
      pill.textContent = "live: reconnecting"; pill.style.background = "#b58100";
      await new Promise((res) => setTimeout(res, 3000));
    }
  })();
  live.stop = () => { stopped = true; controller?.abort(); pill.textContent = "live: off"; pill.style.background = ""; };
}

// At most one call of fn per ms (the last request is kept); a failed refresh (the API restarting)
// is logged, and the next event or tick tries again.
function throttle(fn, ms) {
  let timer = null, pending = false;
  const call = () => Promise.resolve().then(fn).catch((e) => console.warn(`refresh failed: ${e.message}`));
  return () => {
    if (timer) { pending = true; return; }
    call();
    timer = setTimeout(() => { timer = null; if (pending) { pending = false; call(); } }, ms);
  };
}

// ---- charts (SVG) -----------------------------------------------------------------------------

const W = 560, H = 190, PAD = { l: 48, r: 10, t: 18, b: 22 };
const QUANTITIES = [
  ["temperature_c", "Temperature (T.2)"], ["vibration.peak_g", "Vibration (T.3)"],
  ["shock.peak_g", "Shock (T.4)"], ["pressure_kpa", "Pressure (T.1)"],
];
const timeText = (t) => new Date(t * 1000).toISOString().slice(11, 19);

function chartSvg(series, excursions) {
  const { t, y } = series;
  const bands = series.bands;
  const values = [...y, ...(series.limit || [])];
  // bands near the data are drawn; far ones (-40 °C beside 20 °C) are listed, not stretched to
  let lo = Math.min(...values), hi = Math.max(...values);
  const span0 = Math.max(hi - lo, 1);
  for (const b of bands) if (b.value >= lo - span0 * 1.5 && b.value <= hi + span0 * 1.5) { lo = Math.min(lo, b.value); hi = Math.max(hi, b.value); }
  if (!values.length) { lo = 0; hi = 1; }
  const pad = (hi - lo) * 0.08 || 1; lo -= pad; hi += pad;
  const t0 = t.length ? t[0] : 0, t1 = t.length ? t[t.length - 1] : 1;
  const X = (v) => PAD.l + ((v - t0) / (t1 - t0 || 1)) * (W - PAD.l - PAD.r);
  const Y = (v) => H - PAD.b - ((v - lo) / (hi - lo)) * (H - PAD.t - PAD.b);
  const parts = [];
  for (const e of excursions) {
    const a = X(Date.parse(e.start) / 1000), b = X(Date.parse(e.end) / 1000);
    parts.push(`<rect class="excursion-span ${e.severity}" x="${a.toFixed(1)}" y="${PAD.t}" width="${Math.max(b - a, 2).toFixed(1)}" height="${H - PAD.t - PAD.b}"><title>${esc(e.test)} ${esc(e.severity)}: ${esc(e.limit_crossed)}</title></rect>`);
  }
  for (const b of bands) {
    if (b.value < lo || b.value > hi) continue;
    parts.push(`<line class="band-${b.severity}" x1="${PAD.l}" x2="${W - PAD.r}" y1="${Y(b.value).toFixed(1)}" y2="${Y(b.value).toFixed(1)}"/><text x="${W - PAD.r - 4}" y="${(Y(b.value) - 3).toFixed(1)}" text-anchor="end">${esc(b.label)}</text>`);
  }
  if (series.limit) { // the T.3 limit depends on each reading's frequency: a tick per point
    const ticks = series.limit.map((v, i) => `M${(X(t[i]) - 2).toFixed(1)},${Y(v).toFixed(1)}h4`).join("");
    parts.push(`<path class="limit-ticks" d="${ticks}"><title>T.3 limit at each reading's dominant frequency</title></path>`);
  }
  const pts = y.map((v, i) => `${X(t[i]).toFixed(1)},${Y(v).toFixed(1)}`).join(" ");
  parts.push(`<polyline class="series" data-points="${y.length}" points="${pts}"/>`);
  const beyond = (v, i) => bands.some((b) => b.severity === "violation" && (b.side === "above" ? v > b.value : v < b.value))
    || (series.limit && v > series.limit[i]);
  y.forEach((v, i) => { if (beyond(v, i)) parts.push(`<circle class="beyond" cx="${X(t[i]).toFixed(1)}" cy="${Y(v).toFixed(1)}" r="2.5"/>`); });
  for (const v of [lo + pad, hi - pad]) parts.push(`<text x="${PAD.l - 4}" y="${Y(v) + 4}" text-anchor="end">${fmt(v, 1)}</text>`);
  parts.push(`<text x="${PAD.l}" y="${H - 6}">${t.length ? timeText(t0) : ""}</text><text x="${W - PAD.r}" y="${H - 6}" text-anchor="end">${t.length ? timeText(t1) : ""} UTC</text>`);
  return `<svg class="chart" viewBox="0 0 ${W} ${H}" data-quantity="${esc(series.quantity)}" data-total="${series.total}" data-points="${series.points}">
    <text x="${PAD.l}" y="12">${esc(series.quantity)} (${esc(series.unit)}), ${fmt(series.points)} of ${fmt(series.total)} readings (LTTB)</text>${parts.join("")}</svg>`;
}

function nearestSeq(svg, series, evt) {
  const box = svg.getBoundingClientRect();
  const x = ((evt.clientX - box.left) / box.width) * W;
  const t0 = series.t[0], t1 = series.t[series.t.length - 1];
  let best = 0, dist = Infinity;
  series.t.forEach((tv, i) => {
    const d = Math.abs(PAD.l + ((tv - t0) / (t1 - t0 || 1)) * (W - PAD.l - PAD.r) - x);
    if (d < dist) { dist = d; best = i; }
  });
  return best;
}

// ---- the route map (SVG; web-mercator tiles only when a tile URL is set) -------------------------

const mercX = (lon, z) => ((lon + 180) / 360) * 256 * 2 ** z;
const mercY = (lat, z) => {
  const s = Math.sin((lat * Math.PI) / 180);
  return (0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI)) * 256 * 2 ** z;
};

function mapSvg(tracks, pins) {
  const MW = 900, MH = 420;
  const all = tracks.flatMap((tr) => tr.lat.map((la, i) => [la, tr.lon[i]]));
  if (!all.length) return `<p class="muted">No reading carried a location.</p>`;
  let z = 18;
  const fit = () => {
    const xs = all.map(([, lo]) => mercX(lo, z)), ys = all.map(([la]) => mercY(la, z));
    return [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  };
  let [x0, x1, y0, y1] = fit();
  while (z > 0 && (x1 - x0 > MW * 0.85 || y1 - y0 > MH * 0.85)) { z -= 1; [x0, x1, y0, y1] = fit(); }
  const ox = (x0 + x1) / 2 - MW / 2, oy = (y0 + y1) / 2 - MH / 2;
  const P = (la, lo) => [mercX(lo, z) - ox, mercY(la, z) - oy];
  const parts = [];
  const tileUrl = settings.get("tileUrl");
  if (tileUrl) {
    const n = 2 ** z;
    for (let tx = Math.floor(ox / 256); tx <= Math.floor((ox + MW) / 256); tx++) {
      for (let ty = Math.max(0, Math.floor(oy / 256)); ty <= Math.min(n - 1, Math.floor((oy + MH) / 256)); ty++) {
        const href = tileUrl.replace("{z}", z).replace("{x}", ((tx % n) + n) % n).replace("{y}", ty);
        parts.push(`<image href="${esc(href)}" x="${tx * 256 - ox}" y="${ty * 256 - oy}" width="256" height="256"/>`);
      }
    }
  } else {
    parts.push(`<rect width="${MW}" height="${MH}" fill="#eef3f8"/>`);
  }
  const colors = ["#1f6feb", "#8250df", "#1a7f37", "#bf3989", "#953800", "#0a7ea4"];
  tracks.forEach((tr, k) => {
    const pts = tr.lat.map((la, i) => P(la, tr.lon[i]).map((v) => v.toFixed(1)).join(",")).join(" ");
    parts.push(`<polyline fill="none" stroke="${colors[k % colors.length]}" stroke-width="2" points="${pts}"><title>${esc(tr.device_id)}</title></polyline>`);
    if (tr.lat.length) {
      const [sx, sy] = P(tr.lat[0], tr.lon[0]);
      const [ex, ey] = P(tr.lat.at(-1), tr.lon.at(-1));
      parts.push(`<circle cx="${sx}" cy="${sy}" r="4" fill="#fff" stroke="#333"><title>start</title></circle><circle cx="${ex}" cy="${ey}" r="4" fill="#333"><title>latest</title></circle>`);
    }
  });
  for (const p of pins) {
    const [px, py] = P(p.lat, p.lon);
    parts.push(`<g class="pin"><circle cx="${px}" cy="${py}" r="6" fill="${p.color}" stroke="#fff"/><title>${esc(p.title)}</title></g>`);
  }
  const credit = tileUrl ? `<text x="${MW - 4}" y="${MH - 4}" text-anchor="end">tiles: ${esc(new URL(tileUrl.replace(/[{}]/g, ""), location.href).host)}</text>` : `<text x="6" y="${MH - 6}">track drawn from the readings' locations (no map tiles: set a tile URL under Settings)</text>`;
  return `<svg class="chart map" viewBox="0 0 ${MW} ${MH}">${parts.join("")}${credit}</svg>`;
}

function locateSeq(track, seq) {
  let best = -1;
  track.seq.forEach((s, i) => { if (s <= seq) best = i; });
  return best < 0 ? null : { lat: track.lat[best], lon: track.lon[best] };
}

// ---- pages ------------------------------------------------------------------------------------

async function shipmentsPage() {
  main.innerHTML = `<h1>Shipments</h1><p class="muted">Status is the worst of each shipment's packs (see /shipments/{id}/condition); it updates live.</p>
    <table id="shipments"><thead><tr><th>shipment</th><th>status</th><th>profile</th><th>packs</th><th>readings</th><th>sealed</th><th>missing</th><th>unsealed</th><th>stale packs</th><th>excursions</th></tr></thead><tbody></tbody></table>`;
  const body = $("#shipments tbody");
  const list = (await api("shipments?limit=1000")).shipments;
  const rows = new Map();
  for (const s of list) {
    const tr = document.createElement("tr");
    tr.dataset.shipment = s.shipment_id;
    body.append(tr);
    rows.set(s.shipment_id, tr);
  }
  const refresh = async (id) => {
    const c = await api(`shipments/${encodeURIComponent(id)}/condition`);
    const v = c.excursions.filter((e) => e.severity === "violation").length;
    rows.get(id).innerHTML = `<td><a href="ui/shipments/${encodeURIComponent(id)}">${esc(id)}</a></td><td>${badge(c.status)}</td><td>${esc(c.profile)}</td><td>${c.packs.length}</td><td>${fmt(c.readings)}</td><td>${fmt(c.sealed)}</td><td>${fmt(c.missing)}</td><td>${fmt(c.unsealed)}</td><td>${c.stale_packs.length ? `<span class="warn">${c.stale_packs.length}</span>` : 0}</td><td>${c.excursions.length}${v ? ` <span class="bad">(${v} beyond UN 38.3)</span>` : ""}</td>`;
  };
  await Promise.all(list.map((s) => refresh(s.shipment_id)));
  const dirty = new Set();
  const flush = throttle(() => { for (const id of dirty) if (rows.has(id)) refresh(id); dirty.clear(); }, 2000);
  subscribe("", (name, data) => {
    if (data.shipment_id) { dirty.add(data.shipment_id); flush(); }
  });
}

async function shipmentPage(id) {
  const sid = encodeURIComponent(id);
  const [cond, custody] = await Promise.all([api(`shipments/${sid}/condition`), custodyOf(sid)]);
  main.innerHTML = `<h1>Shipment ${esc(id)} <span id="status">${badge(cond.status)}</span></h1>
    <div class="card"><div class="figures" id="figures"></div>
      <p>Certificate of the shipment: <a href="shipments/${sid}/certificate?format=html">HTML</a> · <a href="shipments/${sid}/certificate?format=pdf">PDF</a> · <a href="shipments/${sid}/certificate?format=json">JSON</a> (<a class="verify-cert" href="ui/verify?certificate=${encodeURIComponent(`shipments/${sid}/certificate?format=json`)}">verify it here</a>)</p></div>
    <h2>Excursions</h2><table id="excursions"><thead><tr><th>#</th><th>pack</th><th>test</th><th>severity</th><th>peak / limit</th><th>from – to (UTC)</th><th>seqs</th><th>where</th><th>custodian then</th><th></th></tr></thead><tbody></tbody></table>
    <h2>Route</h2><div class="card" id="map"><p class="muted">Loading the tracks…</p></div>
    <h2>Packs</h2><div id="packs"></div>
    <h2>Custody</h2><div class="card" id="custody"></div>`;
  const state = { cond, series: new Map(), tracks: new Map(), known: new Set() };
  const renderFigures = (c) => {
    const acked = c.packs.reduce((n, p) => n + (p.acked_seq === null ? 0 : p.acked_seq - (p.first_seq ?? 0) + 1), 0);
    $("#status").innerHTML = badge(c.status);
    $("#figures").innerHTML = [["profile", esc(c.profile)], ["readings stored", fmt(c.readings)], ["acked (dense from first seq)", fmt(acked)],
      ["missing", fmt(c.missing)], ["sealed", fmt(c.sealed)], ["unsealed", fmt(c.unsealed)], ["stale packs", c.stale_packs.length ? `<span class="warn">${esc(c.stale_packs.join(", "))}</span>` : "0"],
      ["disputed", fmt(c.disputed)], ["as of", esc(c.as_of.slice(11, 19)) + " UTC"]].map(([k, v]) => `<div><span class="muted">${k}</span><b>${v}</b></div>`).join("");
  };
  const renderExcursions = (c) => {
    const tb = $("#excursions tbody");
    tb.innerHTML = c.excursions.length ? "" : `<tr><td colspan="10" class="muted">No excursion: every reading inside the warning bands.</td></tr>`;
    for (const e of c.excursions) {
      const tr = document.createElement("tr");
      tr.dataset.excursion = e.id;
      if (state.known.size && !state.known.has(e.id)) tr.classList.add("new");
      const track = state.tracks.get(e.device_id);
      const at = track ? locateSeq(track, e.start_seq) : null;
      const who = e.custody ? `${esc(e.custody.pack)}: owner ${esc(e.custody.owners.join(", ") || "–")}, carrier ${esc(e.custody.carriers.join(", ") || "–")}${e.custody.changes.length ? `; then ${e.custody.changes.map((ch) => `${esc(ch.role)} ${esc(ch.party)}`).join(", ")}` : ""}` : "–";
      tr.innerHTML = `<td>${e.id}</td><td>${esc(e.device_id)}</td><td>${esc(e.test)} ${esc(e.quantity)}</td><td class="${e.severity === "violation" ? "bad" : "warn"}">${esc(e.severity)}${e.open ? " (open)" : ""}</td>
        <td>${fmt(e.peak)} / ${fmt(e.limit)}<div class="muted">${esc(e.limit_crossed)}</div></td><td>${esc(e.start.slice(11, 19))} – ${esc(e.end.slice(11, 19))}</td><td>${e.start_seq}–${e.end_seq} (${e.readings})</td>
        <td>${at ? `${at.lat.toFixed(3)}, ${at.lon.toFixed(3)}` : "–"}</td><td>${who}</td><td><a href="ui/verify?reading=${encodeURIComponent(`${e.device_id}:${e.start_seq}`)}">verify</a></td>`;
      tb.append(tr);
    }
    for (const e of c.excursions) state.known.add(e.id);
    if (!state.known.size) state.known.add(-1); // later excursions are marked new
  };
  const drawMap = () => {
    const pins = state.cond.excursions.map((e) => {
      const at = state.tracks.get(e.device_id) && locateSeq(state.tracks.get(e.device_id), e.start_seq);
      return at && { ...at, color: e.severity === "violation" ? "#c62828" : "#b58100", title: `${e.device_id} ${e.test} ${e.severity}: ${e.limit_crossed}` };
    }).filter(Boolean);
    $("#map").innerHTML = mapSvg([...state.tracks.values()], pins);
  };
  const packs = $("#packs");
  for (const p of cond.packs) {
    const div = document.createElement("div");
    div.className = "card pack";
    div.dataset.device = p.device_id;
    packs.append(div);
  }
  const renderPack = async (p) => {
    const div = packs.querySelector(`[data-device="${CSS.escape(p.device_id)}"]`);
    const base = `shipments/${sid}/packs/${encodeURIComponent(p.device_id)}`;
    const all = await Promise.all(QUANTITIES.map(([q]) => api(`${base}/series?quantity=${encodeURIComponent(q)}&points=800`)));
    const serial = all[0].pack;
    const cert = `packs/${encodeURIComponent(serial ?? p.device_id)}/certificate`;
    const stats = `${badge(p.status)}${p.stale ? ' <span class="warn">stale</span>' : ""} · trust ${esc(p.trust)} · readings ${fmt(p.readings)} (seq ${fmt(p.first_seq)}–${fmt(p.last_seq)}) · acked to seq ${fmt(p.acked_seq)} · missing ${fmt(p.missing)}${p.gaps.length ? ` (${p.gaps.map(([a, b]) => `${a}–${b}`).join(", ")})` : ""} · unsealed ${fmt(p.unsealed)} · last seen ${esc((p.last_seen || "").slice(11, 19))}`;
    div.innerHTML = `<h3>${esc(p.device_id)}${serial ? ` <span class="muted">pack ${esc(serial)}</span>` : ""}</h3><p>${stats}</p>
      <p>Certificate: <a href="${cert}?format=html">HTML</a> · <a href="${cert}?format=pdf">PDF</a> · <a href="${cert}?format=json">JSON</a> · <a class="verify-cert" href="ui/verify?certificate=${encodeURIComponent(`${cert}?format=json`)}">verify it here</a> · <a href="ui/verify?reading=${encodeURIComponent(`${p.device_id}:${p.first_seq ?? 0}`)}">verify a reading</a></p>
      <div class="charts"></div><p class="picked muted">Click a chart to pick a reading and verify it.</p>`;
    const charts = div.querySelector(".charts");
    all.forEach((s) => {
      const ex = state.cond.excursions.filter((e) => e.device_id === p.device_id && e.quantity === s.quantity);
      charts.insertAdjacentHTML("beforeend", chartSvg(s, ex));
      const svg = charts.lastElementChild;
      svg.addEventListener("click", (evt) => {
        const i = nearestSeq(svg, s, evt);
        const rid = `${p.device_id}:${s.seq[i]}`;
        div.querySelector(".picked").innerHTML = `Reading <b>${esc(rid)}</b> at ${timeText(s.t[i])} UTC: ${esc(s.quantity)} ${fmt(s.y[i])} ${esc(s.unit)} · <a href="ui/verify?reading=${encodeURIComponent(rid)}">verify it in your browser</a>`;
      });
    });
    state.series.set(p.device_id, all);
  };
  const loadTracks = async (c) => {
    await Promise.all(c.packs.map(async (p) => {
      const tr = await api(`shipments/${sid}/packs/${encodeURIComponent(p.device_id)}/track?points=600`);
      state.tracks.set(p.device_id, { ...tr, device_id: p.device_id });
    }));
    drawMap();
  };
  renderFigures(cond);
  await Promise.all([...cond.packs.map(renderPack), loadTracks(cond)]);
  renderExcursions(cond);
  renderCustody(custody);
  document.body.dataset.rendered = String(performance.now());
  // live: a new excursion is listed at once; charts, figures and tracks follow, throttled
  const dirtyPacks = new Set();
  const refreshCondition = throttle(async () => {
    state.cond = await api(`shipments/${sid}/condition`);
    renderFigures(state.cond); renderExcursions(state.cond);
  }, 1000);
  const refreshPacks = throttle(async () => {
    const todo = state.cond.packs.filter((p) => dirtyPacks.has(p.device_id));
    dirtyPacks.clear();
    await Promise.all([...todo.map(renderPack), loadTracks(state.cond)]);
  }, 5000);
  subscribe(`?shipment=${sid}`, (name, data) => {
    if (name === "excursion") {
      if (!state.cond.excursions.some((e) => e.id === data.id)) {
        state.cond.excursions.push({ ...data, end: data.start, end_seq: data.start_seq, readings: 1, open: true, custody: null });
        renderExcursions(state.cond);
      }
      refreshCondition();
    } else if (name === "readings") {
      for (const r of data.readings) dirtyPacks.add(r.device_id);
      refreshPacks(); refreshCondition();
    } else if (name === "lag") {
      state.cond.packs.forEach((p) => dirtyPacks.add(p.device_id)); refreshPacks();
    }
  });
}

async function custodyOf(sid) {
  const events = [];
  let after = 0;
  for (let page = 0; page < 20 && after !== null; page++) { // the timeline's first 2,000 events
    const r = await api(`shipments/${sid}/custody?after=${after}&limit=100`, { allow404: true }).catch(() => null);
    if (!r) break;
    events.push(...r.events);
    after = r.next_after;
  }
  return { events };
}

function renderCustody(custody) {
  const el = $("#custody");
  if (!custody || !custody.events || !custody.events.length) { el.innerHTML = `<p class="muted">No custody event recorded for this shipment.</p>`; return; }
  el.innerHTML = `<ol class="timeline">${custody.events.map((e) => {
    const ev = e.event || {};
    const who = [ev.transporter && `carrier ${ev.transporter}`, ev.to && `to ${ev.to}`, ev.holder && `holder ${ev.holder}`].filter(Boolean).join(", ");
    return `<li><b>${esc(e.ts.slice(0, 19).replace("T", " "))}</b> ${esc(e.kind)} by <b>${esc(e.actor)}</b> (${esc((ev.packs || []).join(", "))})${who ? ` ${esc(who)}` : ""}${ev.location?.name ? ` at ${esc(ev.location.name)}` : ""} <span class="muted">${e.block_height === null ? "not sealed yet" : `sealed in block ${e.block_height}`}</span></li>`;
  }).join("")}</ol>`;
}

async function ledgerPage() {
  main.innerHTML = `<h1>Ledger and log</h1>
    <div class="card"><h2>Head</h2><div id="head"></div></div>
    <div class="card"><h2>Intake</h2><div class="figures" id="intake"></div><p class="muted">Stored per second: over the last minute, from GET /health's reading count (shown from the second look, every 10 s and with each new block). Sealed per second: the leaves (readings and records) of the recent blocks over the time they span.</p></div>
    <div class="card"><h2>Latest checkpoint</h2><div id="checkpoint"></div></div>
    <div class="card" id="anchors-card" hidden><h2>Anchors</h2><div id="anchors"></div></div>
    <h2>Recent blocks</h2><table id="blocks"><thead><tr><th>height</th><th>sealed at</th><th>leaves</th><th>log size</th><th>key</th><th>hash</th></tr></thead><tbody></tbody></table>`;
  const samples = [];
  const refresh = async () => {
    const [head, health] = await Promise.all([api("ledger/head"), api("health")]);
    $("#head").innerHTML = `<div class="figures"><div><span class="muted">height</span><b>${fmt(head.height)}</b></div><div><span class="muted">key id</span><b>${esc(head.key_id)}</b></div></div>
      <p>hash <code>${esc(head.hash)}</code><br>ledger public key <code>${esc(head.ledger_public_key)}</code> <span class="muted">(as the server states it: pin the one you were given)</span></p>`;
    const now = performance.now() / 1000;
    samples.push([now, health.readings]);
    while (samples.length > 2 && now - samples[0][0] > 60) samples.shift();
    const [t0, r0] = samples[0];
    const rate = now > t0 ? (health.readings - r0) / (now - t0) : 0;
    const start = Math.max(0, (head.height ?? 0) - 19);
    const blocks = (await api(`ledger/blocks?start=${start}&limit=20`)).blocks.reverse();
    const span = blocks.length > 1 ? (Date.parse(blocks[0].header.sealed_at) - Date.parse(blocks.at(-1).header.sealed_at)) / 1000 : 0;
    const sealedRate = span > 0 ? blocks.slice(0, -1).reduce((n, b) => n + b.header.leaf_count, 0) / span : null;
    $("#intake").innerHTML = `<div><span class="muted">readings stored</span><b>${fmt(health.readings)}</b></div>
      <div><span class="muted">stored per second</span><b id="rate">${samples.length > 1 ? rate.toFixed(1) : "…"}</b></div>
      <div><span class="muted">leaves sealed per second (last ${blocks.length} blocks)</span><b>${sealedRate === null ? "–" : sealedRate.toFixed(1)}</b></div>
      <div><span class="muted">readings on the live feed since this page opened</span><b>${fmt(live.counts.reading)}</b></div>
      <div><span class="muted">blocks</span><b>${fmt(health.blocks)}</b></div><div><span class="muted">health</span><b>${esc(health.status)}</b></div>`;
    $("#blocks tbody").innerHTML = blocks.map((b) => `<tr><td>${b.header.height}</td><td>${esc(b.header.sealed_at)}</td><td>${b.header.leaf_count}</td><td>${fmt(b.header.log_size)}</td><td>${esc(b.header.key_id)}</td><td><code>${esc(b.hash.slice(0, 16))}…</code></td></tr>`).join("");
    const note = await api("checkpoint", { text: true, allow404: true }).catch(() => null);
    if (note) {
      const cp = parseNote(note);
      $("#checkpoint").innerHTML = `<p>origin <b>${esc(cp.origin)}</b>, size <b>${cp.size}</b></p><table><thead><tr><th>signed by</th><th>key id</th><th>kind</th></tr></thead><tbody>${cp.signatures.map((s) => `<tr><td>${esc(s.name)}</td><td>${s.id.toString(16).padStart(8, "0")}</td><td>${s.name === cp.origin ? "the log" : s.sig.length === 72 ? `witness cosignature/v1 at ${new Date(Number(new DataView(s.sig.buffer, s.sig.byteOffset, 8).getBigUint64(0)) * 1000).toISOString()}` : "other"}</td></tr>`).join("")}</tbody></table><pre>${esc(note)}</pre>`;
    } else {
      $("#checkpoint").innerHTML = `<p class="muted">No checkpoint yet.</p>`;
    }
    const anchors = await api("anchors", { allow404: true }).catch(() => null);
    if (anchors) {
      $("#anchors-card").hidden = false;
      const list = Array.isArray(anchors) ? anchors : anchors.anchors || [];
      $("#anchors").innerHTML = list.length ? `<table><thead><tr>${Object.keys(list[0]).map((k) => `<th>${esc(k)}</th>`).join("")}</tr></thead><tbody>${list.slice(-20).map((a) => `<tr>${Object.values(a).map((v) => `<td>${esc(typeof v === "object" ? JSON.stringify(v) : v)}</td>`).join("")}</tr>`).join("")}</tbody></table>` : `<pre>${esc(JSON.stringify(anchors, null, 1))}</pre>`;
    }
  };
  await refresh();
  document.body.dataset.rendered = String(performance.now());
  const again = throttle(refresh, 3000);
  subscribe("", (name) => { if (name === "block") again(); });
  setInterval(again, 10000);
}

// ---- verify in your browser ---------------------------------------------------------------------

const TAMPER = {
  "reading value": (b) => { b.reading.leaf = b.reading.leaf.replace(/"temperature_c":(-?[\d.]+)/, (m, v) => `"temperature_c":${Number(v) + 1}`); },
  "audit path": (b) => { const p = b.reading.audit_path; if (p.length) p[0] = (p[0][0] === "0" ? "1" : "0") + p[0].slice(1); },
  "block signature": (b) => { const s = b64decode(b.reading.block.signature); s[0] ^= 1; b.reading.block.signature = btoa(String.fromCharCode(...s)); },
  "block header": (b) => { b.reading.block.header.sealed_at = b.reading.block.header.sealed_at.replace(/\d(?=\.|Z)/, (d) => String((Number(d) + 1) % 10)); },
  "checkpoint root": (b) => { if (b.log) b.log.checkpoint = b.log.checkpoint.replace(/\n([A-Za-z0-9+/]{43}=)\n/, (m, r) => `\n${r[0] === "A" ? "B" : "A"}${r.slice(1)}\n`); },
  "log path": (b) => { if (b.log && b.log.path.length) b.log.path[0] = (b.log.path[0][0] === "A" ? "B" : "A") + b.log.path[0].slice(1); },
};

// The same edits for a certificate (its first pack): a reading's bytes (re-packed, so only its signature
// can tell), a hash of the multi-leaf proof, the log's checkpoint signature, a claimed maximum.
const flipB64 = (t) => (t[0] === "A" ? "B" : "A") + t.slice(1);
const TAMPER_CERT = {
  "a reading's bytes": async (p) => {
    const raw = new Uint8Array(await new Response(new Blob([b64decode(p.evidence.readings.data)]).stream().pipeThrough(new DecompressionStream("gzip"))).arrayBuffer());
    const lines = new TextDecoder().decode(raw).split("\n");
    lines[0] = lines[0].replace(/"temperature_c":(-?[\d.]+)/, (m, v) => `"temperature_c":${Number(v) + 1}`);
    const text = new TextEncoder().encode(lines.join("\n"));
    const gz = new Uint8Array(await new Response(new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"))).arrayBuffer());
    let bin = ""; for (const b of gz) bin += String.fromCharCode(b);
    p.evidence.readings.data = btoa(bin);
    p.evidence.readings.sha256 = Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", text)), (b) => b.toString(16).padStart(2, "0")).join("");
  },
  "a proof hash": (p) => { p.evidence.log.proof = flipB64(p.evidence.log.proof); },
  "checkpoint signature": (p) => { p.evidence.log.checkpoint = p.evidence.log.checkpoint.replace(/\n\n\u2014 (\S+) (\S+)\n/, (m, n, sig) => `\n\n\u2014 ${n} ${sig.slice(0, 10)}${sig[10] === "A" ? "B" : "A"}${sig.slice(11)}\n`); },
  "a claimed max": (p) => { const q = p.claims.quantities.find((x) => x.max); q.max.value += 1; },
};

function findBundles(doc, out = [], where = "") {
  if (doc && typeof doc === "object") {
    if (doc.format === "packproof-proof/2") out.push({ where: where || "the document", bundle: doc });
    else for (const [k, v] of Object.entries(doc)) findBundles(v, out, where ? `${where}.${k}` : k);
  }
  return out;
}

async function verifyPage(params) {
  const readingId = params.get("reading") || "";
  const certificate = params.get("certificate");
  main.innerHTML = `<h1>Verify in your browser</h1>
    <p class="muted">Your browser checks the proof itself with WebCrypto (SHA-256, Ed25519): the leaf hash, the Merkle path, the block, the log's signed checkpoint and witness cosignatures, the device's signature. For a certificate: its packed readings, every leaf's hash and its one multi-leaf proof, every device signature and the claims cheap to recompute; the rest is named and left to <code>packproof verify --certificate</code>. The server's own verdict is never asked for.</p>
    <div class="card pinned"><h2>Keys you trust</h2>
      <label>Ledger public key (base64): <input type="text" id="ledger-key"></label><div class="muted" id="ledger-key-source"></div>
      <label>Log verifier key (C2SP vkey, name+id+key): <input type="text" id="log-key"></label><div class="muted" id="log-key-source"></div>
      <label>Witness keys (cosignature/v1 vkeys, one a line; each one listed must have cosigned): <textarea id="witness-keys" rows="2"></textarea></label>
      <button id="save-keys">Pin these keys (kept in this browser)</button> <button id="forget-keys">Forget pinned keys</button></div>
    <div class="card"><label>Reading id: <input type="text" id="reading-id" value="${esc(readingId)}" placeholder="device:seq"></label>
      <button id="fetch">Fetch its proof bundle</button>
      <label>Certificate JSON URL: <input type="text" id="certificate" value="${esc(certificate || "")}" placeholder="packs/PACK/certificate?format=json"></label><button id="fetch-cert">Fetch and verify the certificate</button>
      <label>Proof bundle or certificate (JSON; edit it to see what breaks): <textarea id="bundle" rows="8"></textarea></label>
      <div>Tamper with a bundle: ${Object.keys(TAMPER).map((k) => `<button class="tamper" data-tamper="${esc(k)}">${esc(k)}</button>`).join("")}</div>
      <div>Tamper with a certificate: ${Object.keys(TAMPER_CERT).map((k) => `<button class="tamper-cert" data-tamper="${esc(k)}">${esc(k)}</button>`).join("")}</div>
      <button id="verify"><b>Verify</b></button></div>
    <div class="card"><h2 id="verdict">No bundle checked yet</h2><p class="muted" id="progress"></p><ol class="steps" id="steps"></ol></div>`;
  const head = await api("ledger/head").catch(() => null);
  const note = await api("checkpoint", { text: true, allow404: true }).catch(() => null);
  const pinned = { ledger: settings.get("ledgerKey"), log: settings.get("logKey"), witnesses: settings.get("witnessKeys") };
  $("#ledger-key").value = pinned.ledger || head?.ledger_public_key || "";
  $("#ledger-key-source").textContent = pinned.ledger ? "pinned in this browser" : "⚠ taken from this server (GET /ledger/head): paste the key you were given to pin it";
  let serverLogKey = "";
  if (head && note) {
    try { serverLogKey = await vkeyText(parseNote(note).origin, 1, b64decode(head.ledger_public_key)); } catch { /* no checkpoint */ }
  }
  $("#log-key").value = pinned.log || serverLogKey;
  $("#log-key-source").textContent = pinned.log ? "pinned in this browser" : "⚠ derived from this server's ledger key under its checkpoint's origin: pin your own";
  $("#witness-keys").value = pinned.witnesses || "";
  $("#save-keys").onclick = () => { settings.set("ledgerKey", $("#ledger-key").value.trim()); settings.set("logKey", $("#log-key").value.trim()); settings.set("witnessKeys", $("#witness-keys").value.trim()); verifyPage(params); };
  $("#forget-keys").onclick = () => { ["ledgerKey", "logKey", "witnessKeys"].forEach((k) => settings.set(k, "")); verifyPage(params); };
  const options = async () => {
    const o = { askedId: $("#reading-id").value.trim() || undefined };
    if ($("#ledger-key").value.trim()) o.ledgerKey = b64decode($("#ledger-key").value.trim());
    if ($("#log-key").value.trim()) o.logKeys = [await parseVkey($("#log-key").value, 1)];
    o.witnesses = await Promise.all($("#witness-keys").value.split("\n").map((l) => l.trim()).filter(Boolean).map((l) => parseVkey(l, 4)));
    return o;
  };
  const show = (results) => {
    const allHold = results.every((r) => r.verdict.holds);
    const first = results.flatMap((r) => r.verdict.checks.filter((c) => c.ok === false).map((c) => ({ ...c, where: r.where })))[0];
    const stated = [...new Set(results.map((r) => r.verdict.stated).filter(Boolean))];
    $("#verdict").innerHTML = allHold ? `<span class="ok">✓ ${stated.length ? "the certificate holds" : "the proof holds"}</span>${stated.length ? ` <span class="muted">(it states: ${esc(stated.join(", "))})</span>` : results.length > 1 ? ` (${results.length} bundles)` : ""}` : `<span class="bad">✗ broken link: ${esc(first.name)}</span>${results.length > 1 ? ` in ${esc(first.where)}` : ""}`;
    $("#verdict").dataset.holds = String(allHold);
    $("#verdict").dataset.broken = first ? first.name : "";
    $("#steps").innerHTML = results.map((r) => `${results.length > 1 ? `<li><b>${esc(r.where)}</b> ${esc(r.verdict.readingId || "")}</li>` : ""}${r.verdict.checks.map((c) => `<li data-check="${esc(c.name)}" data-ok="${c.ok}"><span class="mark ${c.ok === true ? "ok" : c.ok === false ? "bad" : "muted"}">${c.ok === true ? "✓" : c.ok === false ? "✗" : "–"}</span><b>${esc(c.name)}</b>: ${esc(c.detail)}</li>`).join("")}`).join("");
  };
  const run = async () => {
    let doc;
    try { doc = parseBundleText($("#bundle").value); } catch (e) { show([{ where: "input", verdict: { holds: false, checks: [{ name: "bundle", ok: false, detail: `not JSON: ${e.message}` }] } }]); return; }
    let opts;
    try { opts = await options(); } catch (e) { show([{ where: "keys", verdict: { holds: false, checks: [{ name: "keys", ok: false, detail: e.message }] } }]); return; }
    let plain = null;
    try { plain = JSON.parse($("#bundle").value); } catch { /* parseBundleText took it */ }
    if (plain && plain.format === "packproof-certificate/1") { // its readings packed, one multi-leaf proof
      const t0 = performance.now();
      const tell = (step, n, total) => { $("#progress").textContent = `${step}: ${n.toLocaleString("en")} of ${total.toLocaleString("en")}`; };
      $("#verdict").textContent = "Checking the certificate…";
      show(await verifyCertificate(plain, opts, tell));
      $("#progress").textContent = `checked in your browser in ${((performance.now() - t0) / 1000).toFixed(2)} s`;
      return;
    }
    const bundles = findBundles(doc);
    if (!bundles.length) bundles.push({ where: "input", bundle: doc });
    if (bundles.length > 1) opts.askedId = undefined;
    show(await Promise.all(bundles.map(async (b) => ({ where: b.where, verdict: await verifyBundle(b.bundle, opts) }))));
  };
  $("#fetch").onclick = async () => {
    const id = $("#reading-id").value.trim();
    try {
      $("#bundle").value = JSON.stringify(await api(`readings/${encodeURIComponent(id)}/proof`), null, 1);
      await run();
    } catch (e) { $("#verdict").textContent = e.message; }
  };
  $("#fetch-cert").onclick = async () => {
    try {
      $("#bundle").value = JSON.stringify(await api($("#certificate").value.trim()), null, 1);
      $("#reading-id").value = "";
      await run();
    } catch (e) { $("#verdict").textContent = e.message; }
  };
  $("#verify").onclick = run;
  for (const b of document.querySelectorAll(".tamper")) {
    b.onclick = async () => {
      const doc = JSON.parse($("#bundle").value);
      for (const found of findBundles(doc).slice(0, 1)) TAMPER[b.dataset.tamper](found.bundle);
      $("#bundle").value = JSON.stringify(doc, null, 1);
      await run();
    };
  }
  for (const b of document.querySelectorAll(".tamper-cert")) {
    b.onclick = async () => {
      const doc = JSON.parse($("#bundle").value);
      if (doc.format !== "packproof-certificate/1") return;
      await TAMPER_CERT[b.dataset.tamper](doc.kind === "shipment" ? doc.packs[0] : doc);
      $("#bundle").value = JSON.stringify(doc, null, 1);
      await run();
    };
  }
  if (readingId) await $("#fetch").onclick();
  else if (certificate) await $("#fetch-cert").onclick();
  document.body.dataset.rendered = String(performance.now());
}

function settingsPage() {
  main.innerHTML = `<h1>Settings</h1><div class="card">
    <label>Map tile URL (off when empty; e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png — the tile server then learns where your shipments are): <input type="text" id="tile" value="${esc(settings.get("tileUrl"))}"></label>
    <label>Bearer token for an API started with a read token (kept in this browser): <input type="text" id="token" value="${esc(settings.get("token"))}"></label>
    <button id="save">Save</button></div>`;
  $("#save").onclick = () => { settings.set("tileUrl", $("#tile").value.trim()); settings.set("token", $("#token").value.trim()); location.href = document.baseURI; };
}

async function health() {
  try {
    const h = await api("health");
    $("#health").textContent = `health: ${h.status}`;
    $("#health").style.background = h.status === "ok" ? "#1a7f37" : "#c62828";
  } catch { $("#health").textContent = "health: unreachable"; }
}

async function route() {
  const path = new URL(location.href).pathname;
  const rel = "/" + decodeURIComponent(path.slice(new URL(document.baseURI).pathname.length));
  health(); setInterval(health, 15000);
  try {
    let m;
    if ((m = /^\/ui\/shipments\/([^/]+)$/.exec(rel))) await shipmentPage(m[1]);
    else if (rel === "/ui/ledger") await ledgerPage();
    else if (rel === "/ui/verify") await verifyPage(new URLSearchParams(location.search));
    else if (rel === "/ui/settings") settingsPage();
    else await shipmentsPage();
  } catch (e) {
    main.innerHTML = `<p class="bad">${esc(e.message)}</p>`;
  }
}

window.packproof = { verifyBundle, parseBundleText, parseVkey, vkeyText, verifyCertificate, rootFromMultiProof }; // the cross-check test calls these
route();
