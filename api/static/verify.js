// Verify a packproof proof bundle (packproof-proof/2) in the browser, with WebCrypto only
// (SHA-256, Ed25519), trusting nothing the server says about it: the same links, in the same order
// and under the same names, as the Python verifier (anchor/proof.py, verify_bundle):
//
//   reading            the leaf is a valid reading in RFC 8785 canonical form
//   reading id         it is the reading that was asked for
//   registry record    the sealed key record for the device, valid at the seq, sealed before the reading
//   device signature   Ed25519 by that key over the canonical reading without `sig`
//   merkle path        RFC 6962 leaf hash (0x00 || leaf bytes) up the audit path (RFC 9162 §2.1.3.2)
//                      to the root the block signs (the log root of a v2 block)
//   block hash         SHA-256 of the header's canonical JSON
//   block signature    Ed25519 by the ledger key (the one pinned, else the bundle's)
//   log checkpoint     the C2SP signed note (c2sp.org/signed-note) opens with the log's key
//   log inclusion      the path leads to the checkpoint's root
//   witness NAME       each pinned witness's cosignature/v1 (c2sp.org/tlog-cosignature)
//
// Each check is {name, ok: true|false|null (not checked), detail}; `holds` when none is false.
// A certificate (packproof-certificate/1) carries its readings packed and one multi-leaf proof instead:
// certificate.js checks it with the pieces exported here.

const enc = new TextEncoder();

export const b64decode = (s) => {
  if (typeof s !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4) throw new Error("not base64");
  const bin = atob(s);
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
};
export const b64encode = (u8) => btoa(String.fromCharCode(...u8));
export const hex = (u8) => Array.from(u8, (b) => b.toString(16).padStart(2, "0")).join("");
export const unhex = (s) => Uint8Array.from(s.match(/../g) || [], (h) => parseInt(h, 16));
export const concat = (...parts) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
};
const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

export async function ed25519Verify(publicKey, signature, message) {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  try {
    const key = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
    return await crypto.subtle.verify({ name: "Ed25519" }, key, signature, message);
  } catch {
    return false; // not a point on the curve, ...
  }
}

// RFC 8785: keys sorted by UTF-16 code units, numbers as ECMAScript writes them (JSON.stringify).
export function canonical(v) {
  if (v === null || typeof v === "boolean" || typeof v === "string") return JSON.stringify(v);
  if (typeof v === "number") {
    if (!Number.isFinite(v)) throw new Error("NaN and Infinity have no JSON form");
    return JSON.stringify(v);
  }
  if (Array.isArray(v)) return "[" + v.map(canonical).join(",") + "]";
  return "{" + Object.keys(v).sort().map((k) => JSON.stringify(k) + ":" + canonical(v[k])).join(",") + "}";
}

// ---- RFC 6962 / RFC 9162 -------------------------------------------------------------------

export const leafHash = (bytes) => sha256(concat(new Uint8Array([0]), bytes));
export const nodeHash = (l, r) => sha256(concat(new Uint8Array([1]), l, r));

const bitLength = (n) => n.toString(2).length - (n === 0n ? 1 : 0);
const popCount = (n) => [...n.toString(2)].filter((c) => c === "1").length;

export function inclusionProofLength(index, size) {
  const inner = bitLength(index ^ (size - 1n));
  return inner + popCount(index >> BigInt(inner));
}

// The root a path implies for a leaf hash (RFC 9162 §2.1.3.2); throws naming a malformed claim.
export async function rootFromInclusionProof(index, size, leaf, path) {
  index = BigInt(index); size = BigInt(size);
  if (!(index >= 0n && index < size)) throw new Error(`leaf index ${index} out of range for tree size ${size}`);
  path.forEach((p, k) => { if (p.length !== 32) throw new Error(`audit path hash ${k} has ${p.length} bytes, expected 32`); });
  const want = inclusionProofLength(index, size);
  if (path.length !== want) {
    throw new Error(`audit path has ${path.length} hashes, expected ${want} for index ${index} in tree size ${size}`);
  }
  let fn = index, sn = size - 1n, r = leaf;
  for (const p of path) {
    if (fn & 1n || fn === sn) {
      r = await nodeHash(p, r);
      if (!(fn & 1n)) while (fn && !(fn & 1n)) { fn >>= 1n; sn >>= 1n; }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n; sn >>= 1n;
  }
  return r;
}

// ---- the reading contract (packproof/reading.py), checked as strictly as the verifier does ----

const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const TS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;
const SIG = /^[A-Za-z0-9+/]{86}==$/;
const MAX_SEQ = 2 ** 53 - 1;

export function readingProblem(r) {
  const isObj = (o) => o !== null && typeof o === "object" && !Array.isArray(o);
  const num = (x, lo, hi) => typeof x === "number" && Number.isFinite(x) && x >= lo && x <= hi;
  const only = (o, allowed, required) => {
    for (const k of Object.keys(o)) if (!allowed.includes(k)) return `${k}: extra inputs are not permitted`;
    for (const k of required) if (!(k in o)) return `${k}: field required`;
    return null;
  };
  if (!isObj(r)) return "not an object";
  const top = only(r, ["v", "device_id", "shipment_id", "seq", "ts", "temperature_c", "vibration", "shock",
    "pressure_kpa", "location", "sig"], ["v", "device_id", "shipment_id", "seq", "ts", "temperature_c", "vibration",
    "shock", "pressure_kpa"]);
  if (top) return top;
  if (r.v !== 1) return "v: must be 1";
  for (const k of ["device_id", "shipment_id"]) if (typeof r[k] !== "string" || !ID.test(r[k])) return `${k}: not an id`;
  if (!Number.isInteger(r.seq) || r.seq < 0 || r.seq > MAX_SEQ) return "seq: not a seq";
  if (typeof r.ts !== "string" || !TS.test(r.ts) || Number.isNaN(Date.parse(r.ts))) return "ts: not an RFC 3339 UTC time";
  if (!num(r.temperature_c, -100, 200)) return "temperature_c: out of range";
  if (!num(r.pressure_kpa, 0, 500)) return "pressure_kpa: out of range";
  if (!isObj(r.vibration) || only(r.vibration, ["peak_g", "freq_hz"], ["peak_g", "freq_hz"])
      || !num(r.vibration.peak_g, 0, 1000) || !num(r.vibration.freq_hz, 0, 10000)) return "vibration: not valid";
  if (!isObj(r.shock) || only(r.shock, ["peak_g", "duration_ms"], ["peak_g", "duration_ms"])
      || !num(r.shock.peak_g, 0, 10000) || !num(r.shock.duration_ms, 0, 10000)) return "shock: not valid";
  if ("location" in r && r.location !== null && (!isObj(r.location) || only(r.location, ["lat", "lon"], ["lat", "lon"])
      || !num(r.location.lat, -90, 90) || !num(r.location.lon, -180, 180))) return "location: not valid";
  if ("sig" in r && r.sig !== null && (typeof r.sig !== "string" || !SIG.test(r.sig))) return "sig: not a signature";
  return null;
}

// JSON.parse keeping what Python's strict typing sees: a number written with a fraction or an exponent
// (2.0, 1e3) is not an integer to a typed field, so it is kept as text and fails the shape check.
export function parseBundleText(text) {
  return JSON.parse(text, (key, value, context) => {
    if (typeof value === "number" && context && /[.eE]/.test(context.source)) return { number: context.source };
    return value;
  });
}

// ---- the bundle's shape (anchor/proof.py ProofBundle): malformed is not a proof ----------------

const HEX64 = /^[0-9a-f]{64}$/;
function key32(s) { try { return b64decode(s).length === 32; } catch { return false; } }
function sig64(s) { try { return b64decode(s).length === 64; } catch { return false; } }
const count = (x, lo = 0) => Number.isInteger(x) && x >= lo && x <= MAX_SEQ;

function sealedProblem(s, where) {
  if (s === null || typeof s !== "object") return `${where}: not an object`;
  const keys = ["leaf", "leaf_index", "tree_size", "audit_path", "block", "ledger_public_key"];
  for (const k of Object.keys(s)) if (!keys.includes(k)) return `${where}.${k}: extra field`;
  if (typeof s.leaf !== "string" || !s.leaf.length || s.leaf.length > 65536) return `${where}.leaf: not a leaf text`;
  if (!count(s.leaf_index)) return `${where}.leaf_index: not a count`;
  if (!count(s.tree_size, 1)) return `${where}.tree_size: not a size`;
  if (!Array.isArray(s.audit_path) || s.audit_path.length > 64 || !s.audit_path.every((h) => typeof h === "string" && HEX64.test(h))) {
    return `${where}.audit_path: not a list of SHA-256 hex hashes`;
  }
  if (!key32(s.ledger_public_key)) return `${where}.ledger_public_key: not an Ed25519 key`;
  const b = s.block;
  if (b === null || typeof b !== "object" || Object.keys(b).sort().join() !== "hash,header,signature") return `${where}.block: not a block`;
  if (typeof b.hash !== "string" || !HEX64.test(b.hash)) return `${where}.block.hash: not a SHA-256 hex hash`;
  if (!sig64(b.signature)) return `${where}.block.signature: not an Ed25519 signature`;
  const h = b.header;
  if (h === null || typeof h !== "object") return `${where}.block.header: not an object`;
  const hk = ["v", "height", "prev_hash", "merkle_root", "leaf_count", "sealed_at", "key_id", "next_key", "log_size", "log_root"];
  for (const k of Object.keys(h)) if (!hk.includes(k)) return `${where}.block.header.${k}: extra field`;
  if (h.v !== 1 && h.v !== 2) return `${where}.block.header.v: not 1 or 2`;
  if (!count(h.height) || !count(h.leaf_count, 1)) return `${where}.block.header: height or leaf_count not a count`;
  for (const k of ["prev_hash", "merkle_root"]) if (typeof h[k] !== "string" || !HEX64.test(h[k])) return `${where}.block.header.${k}: not a hash`;
  if (typeof h.sealed_at !== "string" || !TS.test(h.sealed_at)) return `${where}.block.header.sealed_at: not a time`;
  if (typeof h.key_id !== "string" || !/^[0-9a-f]{16}$/.test(h.key_id)) return `${where}.block.header.key_id: not a key id`;
  if ("next_key" in h && h.next_key !== null && !key32(h.next_key)) return `${where}.block.header.next_key: not a key`;
  const logged = h.log_size !== undefined && h.log_size !== null;
  if (h.v === 2 && (!count(h.log_size, 1) || typeof h.log_root !== "string" || !HEX64.test(h.log_root))) {
    return `${where}.block.header: a v2 header records the log: log_size and log_root are required`;
  }
  if (h.v === 1 && (logged || (h.log_root !== undefined && h.log_root !== null))) return `${where}.block.header: a v1 header has no log`;
  return null;
}

export function bundleProblem(doc) {
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) return "the bundle is not a JSON object";
  if (doc.format !== "packproof-proof/2") return `field format: expected 'packproof-proof/2', got ${JSON.stringify(doc.format)}`;
  for (const k of Object.keys(doc)) if (!["format", "reading", "registry", "log"].includes(k)) return `${k}: extra field`;
  const p = sealedProblem(doc.reading, "reading") || sealedProblem(doc.registry, "registry");
  if (p) return p;
  const log = doc.log;
  if (log !== undefined && log !== null) {
    if (typeof log !== "object" || Object.keys(log).sort().join() !== "checkpoint,index,path,size") return "log: not a log proof";
    if (!count(log.index) || !count(log.size, 1)) return "log: index or size not a count";
    if (!Array.isArray(log.path) || log.path.length > 64 || !log.path.every((h) => { try { return b64decode(h).length === 32; } catch { return false; } })) {
      return "log.path: not a list of base64 SHA-256 hashes";
    }
    if (typeof log.checkpoint !== "string" || !log.checkpoint.length) return "log.checkpoint: not a note";
  }
  return null;
}

// ---- C2SP signed notes, checkpoints and cosignatures -------------------------------------------

export async function noteKeyId(name, type, publicKey) {
  const d = await sha256(concat(enc.encode(name + "\n"), new Uint8Array([type]), publicKey));
  return ((d[0] << 24) | (d[1] << 16) | (d[2] << 8) | d[3]) >>> 0;
}

// A verifier key text `<name>+<hex8 id>+<base64(type || key)>`, its id checked.
export async function parseVkey(text, type) {
  const [name, idHex, ...rest] = text.trim().split("+");
  const raw = b64decode(rest.join("+"));
  if (!name || !/^[0-9a-fA-F]{8}$/.test(idHex || "")) throw new Error(`${text}: not a verifier key (name+id+key)`);
  if (raw[0] !== type || raw.length !== 33) throw new Error(`${text}: not an Ed25519 key of type ${type}`);
  const id = await noteKeyId(name, type, raw.slice(1));
  if (id !== parseInt(idHex, 16)) throw new Error(`${text}: key id ${idHex} is not the one name and key give`);
  return { name, id, publicKey: raw.slice(1), text: text.trim() };
}

export async function vkeyText(name, type, publicKey) {
  const id = await noteKeyId(name, type, publicKey);
  return `${name}+${id.toString(16).padStart(8, "0")}+${b64encode(concat(new Uint8Array([type]), publicKey))}`;
}

export function parseNote(note) {
  const cut = note.lastIndexOf("\n\n");
  if (cut < 0 || !note.endsWith("\n")) throw new Error("not a signed note (no blank line before signatures)");
  const text = note.slice(0, cut + 1);
  const signatures = note.slice(cut + 2, -1).split("\n").map((line) => {
    const m = /^\u2014 (\S+) (\S+)$/.exec(line);
    if (!m) throw new Error(`malformed signature line ${JSON.stringify(line)}`);
    const raw = b64decode(m[2]);
    if (raw.length < 5) throw new Error(`signature line of ${m[1]} is too short`);
    return { name: m[1], id: ((raw[0] << 24) | (raw[1] << 16) | (raw[2] << 8) | raw[3]) >>> 0, sig: raw.slice(4) };
  });
  const lines = text.slice(0, -1).split("\n");
  if (lines.length < 3 || !/^\d+$/.test(lines[1])) throw new Error("the note's text is not a checkpoint");
  const root = b64decode(lines[2]);
  if (root.length !== 32) throw new Error("the checkpoint's root is not 32 bytes");
  return { text, signatures, origin: lines[0], size: BigInt(lines[1]), root };
}

// Open a checkpoint note with known log keys (type 0x01): signed-note rules: signatures by unknown
// keys are ignored, a known key's failing signature rejects the note, no known signature refuses it.
export async function openCheckpoint(note, keys) {
  const cp = parseNote(note);
  let good = null;
  for (const s of cp.signatures) {
    const k = keys.find((key) => key.name === s.name && key.id === s.id);
    if (!k) continue;
    if (!(await ed25519Verify(k.publicKey, s.sig, enc.encode(cp.text)))) {
      throw new Error(`the signature by ${s.name} (key ${s.id.toString(16).padStart(8, "0")}) does not verify`);
    }
    good = k;
  }
  if (!good) throw new Error(`no signature by a known key (${keys.map((k) => k.name + "+" + k.id.toString(16).padStart(8, "0")).join(", ") || "none given"})`);
  return { ...cp, key: good };
}

// A witness's cosignature/v1 line on the checkpoint: 8-byte big-endian time || Ed25519 signature
// over "cosignature/v1\ntime <t>\n" || checkpoint body. true, false, or null when it has none.
export async function verifyCosignature(cp, witness) {
  const line = cp.signatures.find((s) => s.name === witness.name && s.id === witness.id);
  if (!line) return { ok: null, detail: `no cosignature by ${witness.name} on this checkpoint` };
  if (line.sig.length !== 72) return { ok: false, detail: `cosignature by ${witness.name} is not 8 + 64 bytes` };
  const time = new DataView(line.sig.buffer, line.sig.byteOffset, 8).getBigUint64(0);
  const msg = concat(enc.encode(`cosignature/v1\ntime ${time}\n`), enc.encode(cp.text));
  const ok = await ed25519Verify(witness.publicKey, line.sig.slice(8), msg);
  return { ok, detail: `cosignature/v1 by ${witness.name} at ${new Date(Number(time) * 1000).toISOString()}` + (ok ? "" : ": does not verify") };
}

// ---- the bundle -------------------------------------------------------------------------------

export async function keyId(publicKey) { return hex(await sha256(publicKey)).slice(0, 16); }

async function pathCheck(name, sealed) {
  const h = sealed.block.header;
  const leaf = await leafHash(enc.encode(sealed.leaf));
  let size, root, what;
  if (h.log_size !== undefined && h.log_size !== null) {
    size = h.log_size; root = h.log_root; what = "log root";
    const first = size - h.leaf_count;
    if (!(first <= sealed.leaf_index && sealed.leaf_index < size)) {
      return { name, ok: false, detail: `log index ${sealed.leaf_index} is not one of block ${h.height}'s leaves (${first}..${size - 1})` };
    }
  } else {
    size = h.leaf_count; root = h.merkle_root; what = "root";
  }
  if (sealed.tree_size !== size) {
    return { name, ok: false, detail: `tree size ${sealed.tree_size} differs from block ${h.height}'s ${what === "log root" ? "log_size" : "leaf_count"} ${size}` };
  }
  let got;
  try {
    got = await rootFromInclusionProof(sealed.leaf_index, sealed.tree_size, leaf, sealed.audit_path.map(unhex));
  } catch (e) {
    return { name, ok: false, detail: e.message };
  }
  const ok = hex(got) === root;
  return { name, ok, detail: `leaf hash ${hex(leaf).slice(0, 16)}..., leaf ${sealed.leaf_index} of ${sealed.tree_size} -> ${what} ${hex(got)}` + (ok ? "" : `, block ${h.height}'s ${what} is ${root}`), leafHash: hex(leaf) };
}

async function blockChecks(prefix, block, bundleKey, trusted) {
  const computed = await sha256(enc.encode(canonical(block.header)));
  const okHash = hex(computed) === block.hash;
  const checks = [{ name: `${prefix}block hash`, ok: okHash, detail: `block ${block.header.height} header hashes to ${hex(computed)}` + (okHash ? "" : `, the bundle says ${block.hash}`) }];
  const name = `${prefix}block signature`;
  if (trusted && !same(trusted, bundleKey)) {
    checks.push({ name, ok: false, detail: `the bundle names ledger key ${await keyId(bundleKey)} for block ${block.header.height}, you trust ${await keyId(trusted)}` });
    return checks;
  }
  const key = trusted || bundleKey;
  if (!(await ed25519Verify(key, b64decode(block.signature), unhex(block.hash)))) {
    checks.push({ name, ok: false, detail: `does not verify with ledger key ${await keyId(key)}` });
    return checks;
  }
  const ok = block.header.key_id === (await keyId(key));
  checks.push({ name, ok, detail: `Ed25519 by ledger key ${await keyId(key)}` + (trusted ? " (the key you gave)" : " (key taken from the bundle: pin it)") + (ok ? "" : `, but the header names key ${block.header.key_id}`) });
  return checks;
}

export function parseKeyRecord(text) {
  let obj;
  try { obj = JSON.parse(text); } catch { return null; }
  if (obj === null || typeof obj !== "object") return null;
  if (!["device-registered", "device-key-rotated"].includes(obj.record) || typeof obj.device_id !== "string") return null;
  if (!("public_key" in obj) || (obj.public_key !== null && !key32(obj.public_key))) return null;
  if ("valid_from_seq" in obj && !count(obj.valid_from_seq)) return null;
  if (obj.record === "device-key-rotated" && (obj.public_key === null || !("valid_from_seq" in obj))) return null;
  try { if (canonical(obj) !== text) return null; } catch { return null; }
  return { ...obj, valid_from_seq: obj.valid_from_seq ?? 0 };
}

const position = (s) => [s.block.header.height, s.leaf_index];
const before = (a, b) => a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]);

// bundle: the parsed document. opts: {askedId, ledgerKey (Uint8Array, pinned), logKeys ([parsed vkeys]),
// witnesses ([parsed cosignature vkeys])}. Never throws for a bad bundle: every problem is a check.
export async function verifyBundle(bundle, opts = {}) {
  const checks = [];
  const done = () => ({ holds: checks.every((c) => c.ok !== false), checks,
    readingId: reading ? `${reading.device_id}:${reading.seq}` : null });
  let reading = null;
  const problem = bundleProblem(bundle);
  if (problem) {
    checks.push({ name: "bundle", ok: false, detail: `the proof bundle is malformed: ${problem}` });
    return done();
  }
  // reading
  try { reading = JSON.parse(bundle.reading.leaf); } catch { reading = null; }
  const bad = reading === null ? "not JSON" : readingProblem(reading);
  if (bad) {
    reading = null;
    checks.push({ name: "reading", ok: false, detail: `the reading in the bundle is not a valid reading: ${bad}` });
  } else {
    const canon = canonical(reading) === bundle.reading.leaf;
    checks.push({ name: "reading", ok: canon, detail: canon ? `${reading.device_id}:${reading.seq} in RFC 8785 canonical form` : "the reading text is not in RFC 8785 canonical form" });
    if (opts.askedId) {
      const id = `${reading.device_id}:${reading.seq}`;
      checks.push({ name: "reading id", ok: id === opts.askedId, detail: `the proven reading is ${id}` + (id === opts.askedId ? "" : `, not ${opts.askedId} which was asked for`) });
    }
  }
  // registry record
  const reg = bundle.registry;
  const record = parseKeyRecord(reg.leaf);
  let proven = null;
  if (record === null) {
    checks.push({ name: "registry record", ok: false, detail: "the registry leaf is not a device key record (device-registered or device-key-rotated) in canonical form" });
  } else if (reading === null) {
    checks.push({ name: "registry record", ok: null, detail: "not checked: there is no valid reading to match it with" });
  } else {
    const where = `${record.record} at leaf ${reg.leaf_index} of block ${reg.block.header.height}`;
    const problems = [];
    if (record.device_id !== reading.device_id) problems.push(`is for device ${record.device_id}, the reading is from ${reading.device_id}`);
    if (record.valid_from_seq > reading.seq) problems.push(`is valid from seq ${record.valid_from_seq}, after the reading's seq ${reading.seq}`);
    if (!before(position(reg), position(bundle.reading))) problems.push(`was sealed at or after the reading (leaf ${bundle.reading.leaf_index} of block ${bundle.reading.block.header.height}), so the reading was not stored under it`);
    if (problems.length) {
      checks.push({ name: "registry record", ok: false, detail: `${where} ${problems.join("; ")}` });
    } else {
      proven = record;
      const k = record.public_key ? `key ${await keyId(b64decode(record.public_key))}` : "no key (an unsigned tracker)";
      checks.push({ name: "registry record", ok: true, detail: `${where}: device ${record.device_id} has ${k} from seq ${record.valid_from_seq}, sealed before the reading` });
    }
  }
  // device signature
  if (reading === null || proven === null) {
    checks.push({ name: "device signature", ok: null, detail: "not checked: no proven reading and device key" });
  } else if (proven.public_key === null) {
    checks.push({ name: "device signature", ok: null, detail: `device ${reading.device_id} is registered as unsigned: trust for this reading begins at the ingestor` });
  } else if (reading.sig === undefined || reading.sig === null) {
    checks.push({ name: "device signature", ok: false, detail: `device ${reading.device_id} has a key, but the reading carries no signature` });
  } else {
    const { sig, ...signed } = reading;
    const key = b64decode(proven.public_key);
    const ok = await ed25519Verify(key, b64decode(sig), enc.encode(canonical(signed)));
    checks.push({ name: "device signature", ok, detail: `Ed25519 by device ${reading.device_id} key ${await keyId(key)}` + (ok ? "" : ": signature does not verify") });
  }
  checks.push(await pathCheck("merkle path", bundle.reading));
  checks.push(await pathCheck("registry merkle path", reg));
  // blocks
  const blocks = new Map();
  for (const [prefix, sealed] of [["", bundle.reading], ["registry ", reg]]) {
    const height = sealed.block.header.height;
    if (blocks.has(height)) {
      if (canonical(blocks.get(height)) !== canonical(sealed.block)) {
        checks.push({ name: `${prefix}block`, ok: false, detail: `the bundle gives two different blocks at height ${height}` });
      }
      continue;
    }
    blocks.set(height, sealed.block);
    checks.push(...await blockChecks(prefix, sealed.block, b64decode(sealed.ledger_public_key), opts.ledgerKey || null));
  }
  checks.push({ name: "block in chain", ok: null, detail: "not checked in the browser: the log checkpoint below binds the block's log root" });
  // the log
  const log = bundle.log;
  if (log === undefined || log === null) {
    if (bundle.reading.block.header.log_size !== undefined && bundle.reading.block.header.log_size !== null) {
      checks.push({ name: "log inclusion", ok: false, detail: `the reading's block ${bundle.reading.block.header.height} records the log, but the bundle carries no log proof (removed?)` });
    } else {
      checks.push({ name: "log inclusion", ok: null, detail: "the bundle carries no log proof (its block predates the log)" });
    }
    return done();
  }
  let cp;
  try {
    let keys = opts.logKeys && opts.logKeys.length ? opts.logKeys : null;
    if (!keys) {
      const origin = parseNote(log.checkpoint).origin;
      const ledgerKeys = opts.ledgerKey ? [opts.ledgerKey] : [...new Set([bundle.reading.ledger_public_key, reg.ledger_public_key])].map(b64decode);
      keys = await Promise.all(ledgerKeys.map(async (k) => ({ name: origin, id: await noteKeyId(origin, 1, k), publicKey: k })));
    }
    cp = await openCheckpoint(log.checkpoint, keys);
  } catch (e) {
    checks.push({ name: "log checkpoint", ok: false, detail: `the bundle's checkpoint does not open with the log's keys: ${e.message}` });
    return done();
  }
  checks.push({ name: "log checkpoint", ok: true, detail: `${cp.origin} size ${cp.size} root ${b64encode(cp.root)}, signed by the log (${cp.key.name}+${cp.key.id.toString(16).padStart(8, "0")})` });
  const header = bundle.reading.block.header;
  const expected = header.log_size !== undefined && header.log_size !== null ? bundle.reading.leaf_index : null;
  if (BigInt(log.size) !== cp.size) {
    checks.push({ name: "log inclusion", ok: false, detail: `the path is for size ${log.size}, the checkpoint's is ${cp.size}` });
  } else if (expected !== null && log.index !== expected) {
    checks.push({ name: "log inclusion", ok: false, detail: `log index ${log.index} is not the reading's, ${expected}` });
  } else {
    try {
      const leaf = await leafHash(enc.encode(bundle.reading.leaf));
      const got = await rootFromInclusionProof(log.index, log.size, leaf, log.path.map(b64decode));
      const ok = same(got, cp.root);
      checks.push({ name: "log inclusion", ok, detail: `leaf ${log.index} of ${log.size} -> root ${hex(got)}` + (ok ? "" : `, the checkpoint's root is ${hex(cp.root)}`) });
    } catch (e) {
      checks.push({ name: "log inclusion", ok: false, detail: e.message });
    }
  }
  const pinned = opts.witnesses || [];
  for (const w of pinned) {
    const r = await verifyCosignature(cp, w);
    checks.push({ name: `witness ${w.name}`, ok: r.ok === null ? false : r.ok, detail: r.detail });
  }
  const unknown = cp.signatures.filter((s) => s.name !== cp.key.name && !pinned.some((w) => w.name === s.name && w.id === s.id));
  if (unknown.length) {
    checks.push({ name: "cosignatures", ok: null, detail: `not checked: ${unknown.map((s) => s.name).join(", ")} cosigned; pin a witness's key to check its cosignature` });
  }
  return done();
}
