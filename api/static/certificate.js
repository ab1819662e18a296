// Verify a condition certificate (packproof-certificate/1, docs/design.md "Certificates") in the
// browser with WebCrypto only (SHA-256, Ed25519), trusting nothing the server says about it. The
// links, in order and under the names the Python verifier gives them (api/certificate/verify.py):
//
//   readings            base64 -> gzip (DecompressionStream) -> the lines' SHA-256 and count as stated;
//                       each line a valid reading of the subject device in RFC 8785 form, seqs rising
//   key records         the device's sealed key records (device-registered / device-key-rotated)
//   device signatures   each reading's Ed25519 signature by the key in force at its seq (the rule of
//                       packproof.records.key_index_at), whose record sits before the reading in the log
//   custody records     custody-event records
//   checkpoint          the C2SP signed note opens with the log's key (c2sp.org/signed-note)
//   log inclusion       RFC 6962 leaf hashes (0x00 || leaf) of every carried leaf (readings, key,
//                       custody and party records) and the one multi-leaf proof lead to its root:
//                       packproof.anchor.merkle.root_from_multi_proof, ported below
//   witness NAME        each pinned witness's cosignature/v1 on that checkpoint
//   claims.PATH         the claims cheap and exact to recompute here (reading count, period,
//                       completeness and gaps, min and max per quantity), compared field by field
//   claims left to the command line: MKT, time in bands, excursions, test verdicts, silences, custody
//                       holdings, UN 38.3 summary, the overall verdict; also party signatures and the
//                       profile: said so (ok null), never pretended.
//
// Each check is {name, ok: true|false|null (not checked), detail}, as verifyBundle gives them.

import {
  b64decode, canonical, concat, ed25519Verify, hex, keyId, leafHash, nodeHash, noteKeyId, openCheckpoint,
  parseKeyRecord, parseNote, readingProblem, sha256, verifyCosignature,
} from "./verify.js";

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });
const MAX_NAMED = 5;
const CHUNK = 2000; // readings hashed or verified between two progress reports
const QUANTITY = { "T.1": "pressure_kpa", "T.2": "temperature_c", "T.3": "vibration.peak_g", "T.4": "shock.peak_g" };
const VERDICTS = ["fit", "inspect before use", "do not install"];
export const LEFT_TO_CLI = "mean kinetic temperature, time in warning and beyond, excursions and their custodians, " +
  "test verdicts, silent periods, custody chain and holdings, UN 38.3 summary, the overall verdict";

const named = (items) => items.slice(0, MAX_NAMED).join(", ") + (items.length > MAX_NAMED ? ` and ${items.length - MAX_NAMED} more` : "");

// ---- the multi-leaf proof (packproof/tiles.py fold_multiproof, anchor/merkle.py root_from_multi_proof) ----

const split = (n) => { let k = 1; while (k * 2 < n) k *= 2; return k; }; // largest power of two below n (> 1)

async function rootOfLeafHashes(hashes) { // RFC 6962 MTH over leaf hashes: pairs up, an odd last node promoted
  let level = hashes;
  while (level.length > 1) {
    const up = [];
    for (let i = 0; i + 1 < level.length; i += 2) up.push(nodeHash(level[i], level[i + 1]));
    const next = await Promise.all(up);
    if (level.length % 2) next.push(level[level.length - 1]);
    level = next;
  }
  return level[0];
}

// The root a multi-leaf proof implies for `leaves` ([[index, 32-byte leaf hash]], indices rising) in a
// tree of `size`: each subtree with no given leaf taken from `proof` left to right, each subtree of given
// leaves only rebuilt from them. Throws, naming what is wrong, as the Python does (ProofError).
export async function rootFromMultiProof(size, leaves, proof) {
  proof.forEach((p, k) => { if (p.length !== 32) throw new Error(`multi-proof hash ${k} has ${p.length} bytes, expected 32`); });
  for (const [i, h] of leaves) if (h.length !== 32) throw new Error(`leaf hash at index ${i} has ${h.length} bytes, expected 32`);
  const indices = leaves.map(([i]) => i);
  const hashes = leaves.map(([, h]) => h);
  if (!indices.length) throw new Error("a multi-leaf proof needs at least one leaf");
  indices.forEach((i, k) => {
    if (!(Number.isInteger(i) && i >= 0 && i < size)) throw new Error(`leaf index ${i} out of range for tree size ${size}`);
    if (k && i <= indices[k - 1]) throw new Error(`leaf indices must rise: ${indices[k - 1]} then ${i}`);
  });
  let taken = 0;
  const bisect = (x, a, b) => { while (a < b) { const m = (a + b) >> 1; if (indices[m] < x) a = m + 1; else b = m; } return a; };
  const walk = async (lo, hi, a, b) => {
    if (a === b) {
      if (taken === proof.length) throw new Error(`the multi-proof has ${proof.length} hashes, too few for these leaves in tree size ${size}`);
      return proof[taken++];
    }
    if (b - a === hi - lo) return rootOfLeafHashes(hashes.slice(a, b));
    const k = split(hi - lo);
    const m = bisect(lo + k, a, b);
    const left = await walk(lo, lo + k, a, m);
    const right = await walk(lo + k, hi, m, b);
    return nodeHash(left, right);
  };
  const root = await walk(0, size, 0, indices.length);
  if (taken !== proof.length) throw new Error(`the multi-proof has ${proof.length} hashes, these leaves in tree size ${size} need ${taken}`);
  return root;
}

// ---- unpacking ------------------------------------------------------------------------------------

async function gunzip(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function unpackReadings(packed) {
  if (!packed || packed.encoding !== "jsonl+gzip+base64") throw new Error("evidence.readings: not jsonl+gzip+base64");
  let raw;
  try { raw = await gunzip(b64decode(packed.data)); } catch (e) { throw new Error(`evidence.readings.data is not base64 of gzip: ${e.message}`); }
  const digest = hex(await sha256(raw));
  if (digest !== packed.sha256) throw new Error(`evidence.readings: the lines hash to ${digest}, the certificate says ${packed.sha256}`);
  const lines = [];
  for (let at = 0; raw.length;) { // split on 0x0a, keeping each line's exact bytes (they are the log's leaves)
    const nl = raw.indexOf(10, at);
    lines.push(raw.subarray(at, nl < 0 ? raw.length : nl));
    if (nl < 0) break;
    at = nl + 1;
  }
  if (lines.length !== packed.count) throw new Error(`evidence.readings: ${lines.length} lines, the certificate says ${packed.count}`);
  return lines;
}

const indicesOf = (runs) => runs.flatMap(([first, n]) => Array.from({ length: n }, (_, k) => first + k));

function keyIndexAt(records, seq) { // packproof.records.key_index_at
  let found = null;
  records.forEach((k, i) => { if (k.valid_from_seq <= seq && (found === null || k.valid_from_seq >= records[found].valid_from_seq)) found = i; });
  return found;
}

const valueOf = (r, q) => q === "pressure_kpa" ? r.pressure_kpa : q === "temperature_c" ? r.temperature_c
  : q === "vibration.peak_g" ? r.vibration.peak_g : r.shock.peak_g;

// ---- one pack -------------------------------------------------------------------------------------

// cert: the parsed pack certificate. opts: {ledgerKey, logKeys, witnesses} as for verifyBundle;
// progress(step, done, total) is told as the readings are hashed and their signatures checked.
export async function verifyPackCertificate(cert, opts = {}, progress = () => {}) {
  const checks = [];
  const device = cert?.subject?.device_id;
  const done = () => ({ holds: checks.every((c) => c.ok !== false), checks, readingId: device ? `pack ${device}` : null,
    stated: cert?.claims?.overall?.verdict ?? null });
  const ev = cert?.evidence;
  if (!ev || !ev.log || typeof device !== "string" || !cert.claims) {
    checks.push({ name: "certificate", ok: false, detail: "not a pack certificate: subject, claims or evidence.log missing" });
    return done();
  }

  // 1. readings
  let lines = [];
  const readings = [];
  try {
    lines = await unpackReadings(ev.readings);
    const bad = [];
    lines.forEach((line, k) => {
      let r, text;
      try { text = dec.decode(line); r = JSON.parse(text); } catch { bad.push(`line ${k}: not JSON`); return; }
      const problem = readingProblem(r);
      if (problem) { bad.push(`line ${k}: not a reading (${problem})`); return; }
      const rid = `${r.device_id}:${r.seq}`;
      if (canonical(r) !== text) bad.push(`${rid}: not in RFC 8785 canonical form`);
      else if (r.device_id !== device) bad.push(`${rid}: not from device ${device}`);
      else if (readings.length && r.seq <= readings[readings.length - 1].seq) bad.push(`${rid}: seq not above the one before (${readings[readings.length - 1].seq})`);
      readings.push(r);
    });
    checks.push({ name: "readings", ok: !bad.length, detail: bad.length ? named(bad) : `${readings.length.toLocaleString("en")} readings of ${device}, canonical, seqs rising (gunzipped and hashed here)` });
  } catch (e) {
    checks.push({ name: "readings", ok: false, detail: e.message });
  }

  // 2. key records and device signatures
  const records = [];
  let bad = [];
  (ev.registry || []).forEach((text, k) => {
    const rec = parseKeyRecord(text);
    if (rec === null || rec.device_id !== device) bad.push(`record ${k} is not a key record of ${device}`);
    else records.push(rec);
  });
  checks.push({ name: "key records", ok: !bad.length && records.length > 0, detail: bad.length ? named(bad) : records.length ? `${records.length} key record(s) of ${device}` : "no key record of the device" });
  const readingIdx = indicesOf(ev.log.reading_runs || []);
  const keys = await Promise.all(records.map(async (r) => r.public_key === null ? null
    : crypto.subtle.importKey("raw", b64decode(r.public_key), { name: "Ed25519" }, false, ["verify"]).catch(() => null)));
  const failed = [], early = [];
  let unsigned = 0, verified = 0;
  for (let start = 0; start < readings.length; start += CHUNK) {
    const part = readings.slice(start, start + CHUNK);
    const verdicts = await Promise.all(part.map(async (r, j) => {
      const k = start + j;
      const at = keyIndexAt(records, r.seq);
      if (at === null) return `${r.device_id}:${r.seq} (no key record valid at its seq)`;
      if (k < readingIdx.length && at < ev.log.registry_indices.length && ev.log.registry_indices[at] >= readingIdx[k]) early.push(`${r.device_id}:${r.seq}`);
      if (records[at].public_key === null) { unsigned += 1; return null; }
      if (r.sig === undefined || r.sig === null || keys[at] === null) return `${r.device_id}:${r.seq}`;
      const { sig, ...signed } = r;
      const ok = await crypto.subtle.verify({ name: "Ed25519" }, keys[at], b64decode(sig), enc.encode(canonical(signed))).catch(() => false);
      if (ok) verified += 1;
      return ok ? null : `${r.device_id}:${r.seq}`;
    }));
    failed.push(...verdicts.filter(Boolean));
    progress("device signatures", Math.min(start + CHUNK, readings.length), readings.length);
  }
  if (failed.length || early.length) {
    const detail = (failed.length ? `signature does not verify: ${named(failed)}` : "") + (early.length ? `; key record sealed after the reading: ${named(early)}` : "");
    checks.push({ name: "device signatures", ok: false, detail: detail.replace(/^; /, "") });
  } else if (unsigned && unsigned === readings.length) {
    checks.push({ name: "device signatures", ok: null, detail: `device ${device} is an unsigned tracker: trust begins at the ingestor` });
  } else {
    const ids = [...new Set(await Promise.all(records.filter((r) => r.public_key).map((r) => keyId(b64decode(r.public_key)))))].sort();
    checks.push({ name: "device signatures", ok: true, detail: `${verified.toLocaleString("en")} Ed25519 signatures by key(s) ${ids.join(", ")}, checked with WebCrypto` });
  }

  // 3. custody records (their parties' signatures: the command line)
  bad = [];
  (ev.custody || []).forEach((text, k) => {
    let obj = null;
    try { obj = JSON.parse(text); } catch { /* named below */ }
    if (!obj || obj.record !== "custody-event" || typeof obj.event !== "object" || obj.event === null) bad.push(`record ${k}: not a custody-event record`);
  });
  checks.push({ name: "custody records", ok: !bad.length, detail: bad.length ? named(bad) : `${(ev.custody || []).length} custody event(s)` });
  if ((ev.custody || []).length) checks.push({ name: "party signatures", ok: null, detail: "not checked in the browser: `packproof verify --certificate` checks each custody event's signature by its party's sealed key (their records are proven in the log below)" });
  checks.push({ name: "profile", ok: null, detail: `${ev.profile?.name} (${ev.profile?.edition}): not compared with the builtin here; \`packproof verify --certificate\` does` });

  // 5. checkpoint, inclusion, witnesses
  let named_key;
  try { named_key = b64decode(ev.log.ledger_public_key); } catch { named_key = new Uint8Array(); }
  const trusted = opts.ledgerKey || null;
  const logKeys = opts.logKeys || [];
  let cp = null;
  if (trusted && hex(trusted) !== hex(named_key) && !logKeys.length) {
    checks.push({ name: "checkpoint", ok: false, detail: `the certificate names ledger key ${await keyId(named_key)}, you trust ${await keyId(trusted)}` });
  } else {
    try {
      const origin = parseNote(ev.log.checkpoint).origin;
      const key = trusted || named_key;
      cp = await openCheckpoint(ev.log.checkpoint, [...logKeys, { name: origin, id: await noteKeyId(origin, 1, key), publicKey: key }]);
      const note = trusted || logKeys.length ? "" : " (key taken from the certificate: pin it)";
      checks.push({ name: "checkpoint", ok: true, detail: `${cp.origin} size ${cp.size} root ${hex(cp.root)}, signed by the log (${cp.key.name}+${cp.key.id.toString(16).padStart(8, "0")})${note}` });
    } catch (e) {
      checks.push({ name: "checkpoint", ok: false, detail: `does not open with the log's keys: ${e.message}` });
    }
  }
  if (cp) {
    checks.push(await inclusion(ev, lines, readingIdx, cp, progress));
    const pinned = opts.witnesses || [];
    for (const w of pinned) {
      const r = await verifyCosignature(cp, w);
      checks.push({ name: `witness ${w.name}`, ok: r.ok === null ? false : r.ok, detail: r.detail });
    }
    const unknown = cp.signatures.filter((s) => s.name !== cp.key.name && !pinned.some((w) => w.name === s.name && w.id === s.id));
    if (unknown.length) checks.push({ name: "cosignatures", ok: null, detail: `not checked: ${unknown.map((s) => s.name).join(", ")} cosigned; pin a witness's key to check its cosignature` });
  }

  // 6. the claims cheap and exact to recompute here, compared as `claims.differences` compares them
  const c = cert.claims;
  const seqs = readings.map((r) => r.seq);
  const first = records.length ? Math.min(...records.map((r) => r.valid_from_seq)) : 0;
  const gaps = [];
  let at = first;
  for (const s of seqs) { if (s > at) gaps.push({ first_seq: at, last_seq: s - 1 }); at = Math.max(at, s + 1); }
  const completeness = {
    first_registered_seq: first, first_seq: seqs.length ? seqs[0] : null, last_seq: seqs.length ? seqs[seqs.length - 1] : null,
    expected: seqs.length ? seqs[seqs.length - 1] - first + 1 : 0, carried: seqs.length,
    missing: gaps.reduce((n, g) => n + g.last_seq - g.first_seq + 1, 0), gaps,
  };
  const quantities = Object.entries(QUANTITY).map(([test, quantity]) => {
    let lo = null, hi = null;
    for (const r of readings) {
      const x = valueOf(r, quantity);
      if (lo === null || x < lo.value) lo = { value: x, seq: r.seq, ts: r.ts };
      if (hi === null || x > hi.value) hi = { value: x, seq: r.seq, ts: r.ts };
    }
    return { quantity, test, min: lo, max: hi };
  });
  const found = {
    completeness, device_id: device, quantities,
    period_start: readings.length ? readings[0].ts : null, period_end: readings.length ? readings[readings.length - 1].ts : null,
    tests: Object.keys(QUANTITY).map((test) => ({ test, readings: readings.length })),
  };
  const pick = (o, keys) => (o !== null && typeof o === "object" && !Array.isArray(o) ? Object.fromEntries(keys.filter((k) => k in o).map((k) => [k, o[k]])) : o);
  const said = {
    ...pick(c, ["device_id", "period_start", "period_end"]),
    completeness: pick(c.completeness, Object.keys(completeness)),
    quantities: Array.isArray(c.quantities) ? c.quantities.map((q) => pick(q, ["quantity", "test", "min", "max"])) : c.quantities,
    tests: Array.isArray(c.tests) ? c.tests.map((t) => pick(t, ["test", "readings"])) : c.tests,
  };
  const diffs = differences(said, found).map(([path, a, b]) => ({ name: path, ok: false, detail: `the certificate says ${short(a)}, its readings give ${short(b)}` }));
  checks.push(...diffs);
  if (!diffs.length) checks.push({ name: "claims", ok: true, detail: `recomputed here from the ${readings.length.toLocaleString("en")} readings: count, period, completeness (${completeness.missing} missing seq(s) in ${gaps.length} gap(s)), min and max of ${Object.values(QUANTITY).join(", ")}` });
  checks.push({ name: "claims left to the command line", ok: null, detail: `not recomputed in the browser: ${LEFT_TO_CLI} (the certificate says: ${c.overall?.verdict}, ${c.overall?.rule}). Run \`packproof verify --certificate FILE --ledger-key KEY\` to recompute every claim` });
  return done();
}

// Where two JSON values differ, as [dotted path, said, found]: objects by key (sorted), lists by index
// (a missing element "(absent)"), numbers by value (api/certificate/claims.py differences).
export function differences(said, found, path = "claims") {
  const isObj = (o) => o !== null && typeof o === "object" && !Array.isArray(o);
  if (isObj(said) && isObj(found)) {
    return [...new Set([...Object.keys(said), ...Object.keys(found)])].sort().flatMap((k) => differences(said[k] ?? null, found[k] ?? null, `${path}.${k}`));
  }
  if (Array.isArray(said) && Array.isArray(found)) {
    return Array.from({ length: Math.max(said.length, found.length) }, (_, i) =>
      differences(i < said.length ? said[i] : "(absent)", i < found.length ? found[i] : "(absent)", `${path}[${i}]`)).flat();
  }
  return JSON.stringify(said) === JSON.stringify(found) ? [] : [[path, said, found]];
}

const short = (v) => { const t = JSON.stringify(v) ?? "(absent)"; return t.length <= 160 ? t : t.slice(0, 157) + "..."; };

async function inclusion(ev, lines, readingIdx, cp, progress) {
  const log = ev.log;
  const name = "log inclusion";
  if (readingIdx.length !== lines.length) return { name, ok: false, detail: `${readingIdx.length} log indices for ${lines.length} readings` };
  const lists = [["registry", "registry_indices"], ["custody", "custody_indices"], ["parties", "party_indices"]];
  if (lists.some(([a, b]) => (log[b] || []).length !== (ev[a] || []).length)) return { name, ok: false, detail: "the record indices do not match the records carried" };
  const pairs = [...readingIdx.map((i, k) => [i, lines[k]]),
    ...lists.flatMap(([a, b]) => (log[b] || []).map((i, k) => [i, enc.encode(ev[a][k])]))];
  const seen = new Set();
  for (const [i] of pairs) { if (seen.has(i)) return { name, ok: false, detail: `two leaves claim log index ${i}` }; seen.add(i); }
  if (!pairs.length) return { name, ok: null, detail: "no leaf to prove" };
  const leaves = [];
  for (let start = 0; start < pairs.length; start += CHUNK) {
    const part = pairs.slice(start, start + CHUNK);
    leaves.push(...await Promise.all(part.map(async ([i, bytes]) => [i, await leafHash(bytes)])));
    progress("leaf hashes", Math.min(start + CHUNK, pairs.length), pairs.length);
  }
  leaves.sort((a, b) => a[0] - b[0]);
  let proof, got;
  try {
    const raw = b64decode(log.proof);
    if (raw.length % 32) throw new Error(`evidence.log.proof holds ${raw.length} bytes, not a whole number of 32-byte hashes`);
    proof = Array.from({ length: raw.length / 32 }, (_, k) => raw.subarray(32 * k, 32 * k + 32));
    got = await rootFromMultiProof(Number(cp.size), leaves, proof);
  } catch (e) {
    return { name, ok: false, detail: e.message };
  }
  const ok = hex(got) === hex(cp.root);
  return { name, ok, detail: `${leaves.length.toLocaleString("en")} RFC 6962 leaf hashes, one multi-leaf proof of ${proof.length.toLocaleString("en")} hashes -> root ${hex(got)}` + (ok ? " (the checkpoint's)" : `, the checkpoint's root is ${hex(cp.root)}`) };
}

// ---- a pack's or a shipment's certificate --------------------------------------------------------

// [{where, verdict}] for the page: one per pack, and the shipment's verdict against its packs'.
export async function verifyCertificate(doc, opts = {}, progress = () => {}) {
  if (doc === null || typeof doc !== "object" || doc.format !== "packproof-certificate/1") {
    return [{ where: "input", verdict: { holds: false, checks: [{ name: "certificate", ok: false, detail: `field format: expected 'packproof-certificate/1', got ${short(doc?.format)}` }] } }];
  }
  if (doc.kind !== "shipment") return [{ where: `pack ${doc.subject?.device_id}`, verdict: await verifyPackCertificate(doc, opts, progress) }];
  const out = [];
  for (const p of doc.packs || []) out.push({ where: `pack ${p.subject?.device_id}`, verdict: await verifyPackCertificate(p, opts, progress) });
  const verdicts = (doc.packs || []).map((p) => p.claims?.overall?.verdict);
  const worstOf = verdicts.length ? verdicts.reduce((a, v) => VERDICTS.indexOf(v) > VERDICTS.indexOf(a) ? v : a) : "inspect before use";
  out.push({ where: `shipment ${doc.shipment_id}`, verdict: { holds: doc.verdict === worstOf, readingId: null, checks: [{ name: "verdict", ok: doc.verdict === worstOf, detail: `the shipment certificate says ${short(doc.verdict)}, its packs give ${short(worstOf)}` }] } });
  return out;
}
