// The snippet conventions of the isolate mode (workerd), ported from js_runner.mjs (the
// process mode's runner, under Deno) with the runtime-specific parts left out: how main()
// is found and bound to the inputs, the script style, the result's JSON rules and the
// error shapes.  Used twice: by the loader (workerd_loader.mjs, to build the snippet's
// module before the isolate exists) and inside each fresh isolate (workerd_runner.mjs).
// Keep it in step with js_runner.mjs: the conformance tests run both modes.

export const MAX_DEPTH = 500;
// ---- snippet conventions ---------------------------------------------------------------

// (TypeScript: `function main<T>(...)` and `const main: Type = ...` too.)
export const MAIN_DECL = /(^|[^.\w$])(async\s+)?function\s*\*?\s*main\s*(<[^(]*>\s*)?\(|(^|[^.\w$])(const|let|var)\s+main\s*[=:]/m;
export const IMPORT_DECL = /^[ \t]*import\s*(?:[\w$*{}\s,]+?\s*from\s*)?["'][^"'\n]+["'][ \t]*;?/gm;

export function buildModule(code) {
  if (MAIN_DECL.test(code)) {
    return { source: code + "\n;export { main as __coderunner_main };\n", offset: 0, style: "function" };
  }
  const imports = [];
  const body = code.replace(IMPORT_DECL, (text) => {
    imports.push(text.trim().replace(/;?$/, ";"));
    return text.replace(/[^\n]/g, " "); // keep every line and column where it was
  });
  const header = imports.join(" ") + " export default async function __coderunner_script(inputs) {";
  return { source: header + "\n" + body + "\n}\n", offset: 1, style: "script" };
}

export function stripComments(text) {
  return text.replace(/\/\*[\s\S]*?\*\//g, " ").replace(/\/\/[^\n]*/g, " ");
}

// Parameter list of a function from its source: names, defaults, destructuring, rest.
export function parameters(fn) {
  const src = stripComments(Function.prototype.toString.call(fn));
  let start = src.indexOf("(");
  const arrow = src.indexOf("=>");
  if (arrow !== -1 && (start === -1 || arrow < start)) {
    const name = src.slice(0, arrow).replace(/^\s*async\s+/, "").trim();
    return [{ name, hasDefault: false, destructured: false, rest: false }];
  }
  let depth = 0, current = "", parts = [], quote = null;
  for (let i = start + 1; i < src.length; i++) {
    const ch = src[i];
    if (quote) { current += ch; if (ch === quote && src[i - 1] !== "\\") quote = null; continue; }
    if (ch === '"' || ch === "'" || ch === "`") { quote = ch; current += ch; continue; }
    if ("([{".includes(ch)) depth++;
    if (")]}".includes(ch)) { if (depth === 0) break; depth--; }
    if (ch === "," && depth === 0) { parts.push(current); current = ""; continue; }
    current += ch;
  }
  if (current.trim()) parts.push(current);
  return parts.map((raw) => {
    const text = raw.trim();
    let eq = -1; depth = 0;
    for (let i = 0; i < text.length; i++) {
      const ch = text[i];
      if ("([{".includes(ch)) depth++;
      else if (")]}".includes(ch)) depth--;
      else if (ch === "=" && depth === 0 && text[i + 1] !== ">") { eq = i; break; }
    }
    const target = (eq === -1 ? text : text.slice(0, eq)).trim();
    return {
      name: target.replace(/^\.\.\./, ""),
      hasDefault: eq !== -1,
      destructured: target.startsWith("{") || target.startsWith("["),
      rest: target.startsWith("..."),
    };
  });
}

// TypeScript: the names of main's parameters declared optional (`name?: Type`), which
// the stripped code Deno runs no longer shows; read from main's declaration in the
// snippet's own source (its first parameter list, top-level commas only).
export function optionalParameters(code) {
  const m = MAIN_DECL.exec(code);
  const open = m ? code.indexOf("(", m.index) : -1;
  const names = new Set();
  if (open === -1) return names;
  let depth = 0, quote = null, segment = "";
  const segments = [];
  for (let i = open + 1; i < code.length; i++) {
    const ch = code[i];
    if (quote) { if (ch === quote && code[i - 1] !== "\\") quote = null; continue; }
    if (ch === '"' || ch === "'" || ch === "`") { quote = ch; continue; }
    if ("([{".includes(ch)) depth++;
    if (")]}".includes(ch)) { if (depth === 0) break; depth--; }
    if (ch === "," && depth === 0) { segments.push(segment); segment = ""; continue; }
    if (depth === 0) segment += ch;
  }
  segments.push(segment);
  for (const text of segments) {
    const name = stripComments(text).match(/^\s*(?:\.\.\.)?([A-Za-z_$][\w$]*)\s*\?/);
    if (name) names.add(name[1]);
  }
  return names;
}

export class InputProblem extends Error {}

export function bindInputs(fn, inputs, optional = new Set()) {
  const params = parameters(fn);
  if (params.length === 1 && params[0].destructured) return [inputs];
  const args = [];
  const missing = [];
  for (const p of params) {
    if (p.rest) break;
    if (p.destructured) { args.push(inputs); continue; }
    if (Object.hasOwn(inputs, p.name)) args.push(inputs[p.name]);
    else if (p.hasDefault || optional.has(p.name)) args.push(undefined);
    else { missing.push(p.name); args.push(undefined); }
  }
  if (missing.length) {
    const given = Object.keys(inputs).sort().join(", ") || "none";
    throw new InputProblem(
      `main() needs input${missing.length > 1 ? "s" : ""} ${missing.map((m) => `'${m}'`).join(", ")} ` +
      `that the request does not provide (inputs given: ${given})`);
  }
  return args;
}

// ---- results ---------------------------------------------------------------------------

export class SerializationProblem extends Error {
  constructor(path, typeName, hint) {
    super(`${path} is ${typeName}, which is not JSON: ${hint}`);
    this.typeName = typeName;
  }
}

export const REFUSED = [
  [Map, "convert it, e.g. Object.fromEntries(map)"],
  [Set, "convert it to an array, e.g. [...set]"],
  [WeakMap, "return plain data"],
  [WeakSet, "return plain data"],
  [RegExp, "return its source as a string"],
  [Error, "return its message as a string"],
  [Promise, "await it"],
  [ArrayBuffer, "convert it, e.g. Array.from(new Uint8Array(buffer))"],
  [DataView, "convert it to an array of numbers"],
];

// The same message as protocol.lone_surrogate_error.
export function loneSurrogate(where) {
  const e = new SerializationProblem(where, "str", "");
  e.message = `${where} is a string with a lone surrogate, which is not Unicode text and cannot ` +
    "be sent as JSON: remove it, or return the text encoded (e.g. as base64)";
  return e;
}

export function childPath(path, key) {
  if (typeof key === "number") return `${path}[${key}]`;
  return /^[A-Za-z_$][\w$]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

export function typeName(value) {
  if (value === null) return "null";
  if (typeof value !== "object") return typeof value;
  return value.constructor?.name ?? "Object";
}

// What JSON.stringify would make of value, refusing whatever it would drop or alter.
export function toJson(value, path = "result", depth = 0, seen = new Set()) {
  if (typeof value === "string") {
    if (!value.isWellFormed()) throw loneSurrogate(path);
    return value;
  }
  if (value === null || typeof value === "boolean") return value;
  if (typeof value === "number") {
    if (Number.isFinite(value)) return value;
    throw new SerializationProblem(path, String(value), "NaN and Infinity become null in JSON; return null or a string");
  }
  if (typeof value === "undefined") {
    throw new SerializationProblem(path, "undefined", "JSON.stringify would drop it; use null");
  }
  if (typeof value === "bigint") throw new SerializationProblem(path, "BigInt", "convert it with String(value) or Number(value)");
  if (typeof value === "function") throw new SerializationProblem(path, "a function", "call it, or return data");
  if (typeof value === "symbol") throw new SerializationProblem(path, "a symbol", "return its description as a string");
  if (depth >= MAX_DEPTH) throw new SerializationProblem(path, typeName(value), `the value is nested deeper than ${MAX_DEPTH} levels`);
  if (seen.has(value)) throw new SerializationProblem(path, typeName(value), "the value contains itself (a cycle)");
  if (typeof value.toJSON === "function") {
    return toJson(value.toJSON(), path, depth + 1, seen);
  }
  for (const [cls, hint] of REFUSED) {
    if (value instanceof cls) throw new SerializationProblem(path, typeName(value), hint);
  }
  if (ArrayBuffer.isView(value)) {
    throw new SerializationProblem(path, typeName(value), "convert it to an array, e.g. Array.from(value)");
  }
  seen.add(value);
  let out;
  if (Array.isArray(value)) {
    out = value.map((item, i) => toJson(item, childPath(path, i), depth + 1, seen));
  } else {
    out = {};
    for (const key of Object.keys(value)) {
      if (!key.isWellFormed()) throw loneSurrogate(`${childPath(path, key)} (a key)`);
      out[key] = toJson(value[key], childPath(path, key), depth + 1, seen);
    }
  }
  seen.delete(value);
  return out;
}

// ---- errors ----------------------------------------------------------------------------

// The snippet's module in the isolate: workerd names frames by module name.
export const SNIPPET_MODULE = "coderunner-snippet.js";
export const SNIPPET_LOCATION = /\bcoderunner-snippet\.js:(\d+):(\d+)/;

// The stack below the "Name: message" head: a message may itself quote a location.
export function stackBody(e) {
  const stack = String(e?.stack ?? "");
  if (!(e instanceof Error)) return stack;
  const head = `${e.name}: ${e.message}`;
  return stack.startsWith(head) ? stack.slice(head.length) : stack.split("\n").slice(1).join("\n");
}

export function snippetFrames(text, offset) {
  const frames = [];
  let line = null;
  for (const raw of String(text ?? "").split("\n")) {
    const m = raw.match(SNIPPET_LOCATION);
    if (!m) continue;
    const l = Number(m[1]) - offset;
    if (line === null) line = l;
    frames.push(
      raw.replace(m[0], `<snippet>:${l}:${m[2]}`)
        .replace(/Module\.|Object\./, "")
        // the script-style wrapper is the snippet's top level, as in a module
        .replace(/at (async )?__coderunner_script \((<snippet>:\d+:\d+)\)/, "at $1$2"),
    );
  }
  return { frames, line };
}

export function errorName(e) {
  if (!(e instanceof Error)) return typeof e === "object" && e !== null ? typeName(e) : "Error";
  return e.name && e.name !== "Error" ? e.name : (e.constructor?.name ?? "Error");
}

// A thrown non-Error value ("throw {code: 1}") as readable text.
export function thrownText(value) {
  if (typeof value === "string") return value;
  try { return JSON.stringify(value) ?? String(value); } catch { return String(value); }
}
// ---- imports of packages this server does not have ------------------------------------

// The package a bare specifier names: "lodash/fp" → "lodash", "@a/b/c" → "@a/b".
export function packageName(specifier) {
  const spec = specifier.replace(/^npm:/, "");
  const parts = spec.split("/");
  const name = spec.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
  return name.replace(/(.)@.*$/, "$1"); // a version in an npm: specifier
}

// The snippet's line that names `specifier` (an import hoisted out of place has no frame).
export function lineNaming(code, specifier) {
  const quoted = [`"${specifier}"`, `'${specifier}'`, `\`${specifier}\``];
  const index = code.split("\n").findIndex((l) => quoted.some((q) => l.includes(q)));
  return index === -1 ? null : index + 1;
}
