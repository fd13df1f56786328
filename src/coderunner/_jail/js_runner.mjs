// Runs inside the jail under Deno with no permissions but /tmp and the result FIFO.
// Protocol: protocol.py beside this file, whose literals are copied here (and pinned by
// tests/jail/test_protocol.py): READY and STARTED as lines on RESULT_FIFO, the Job as
// JSON on stdin, then one frame (header line, encoded result) on RESULT_FIFO.  One
// snippet, then exit.
// Node's compatibility layer costs a runtime start ~20 ms, so it is loaded only for a
// snippet that mentions it (see prepareNode); the jail and Deno's permissions refuse
// what it reaches either way, this only makes the messages clear.

// protocol.py: RESULT_FIFO, JS_MODULE, TS_MODULE, READY, STARTED, RUNNER_ERROR_TYPES
const RESULT_PATH = "/run/result";
const MODULE_PATH = "/tmp/.coderunner-snippet.mjs";
const TS_MODULE_PATH = "/tmp/.coderunner-snippet.ts"; // Deno strips the types, checks none
const READY = "ready\n";
const STARTED = "started\n";
// The vetted npm packages mounted at protocol.JS_NODE_MODULES (`name@version`, comma-
// separated): the runner's one argument (_runtimes/javascript.py deno_command).
const PACKAGES = (Deno.args[0] ?? "").split(",").filter(Boolean);
const MAX_DEPTH = 500;

const realExit = Deno.exit.bind(Deno);
const encoder = new TextEncoder();
const resultFile = Deno.openSync(RESULT_PATH, { write: true });

function writeAll(bytes) {
  let offset = 0;
  while (offset < bytes.length) offset += resultFile.writeSync(bytes.subarray(offset));
}

// Plain reads, not Deno.stdin.readable: the first use of web streams costs ~7 ms.
async function readStdin() {
  const chunks = [];
  let size = 0;
  const buffer = new Uint8Array(1 << 16);
  for (;;) {
    const n = await Deno.stdin.read(buffer);
    if (n === null) break;
    chunks.push(buffer.slice(0, n));
    size += n;
  }
  const all = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) { all.set(chunk, offset); offset += chunk.length; }
  return new TextDecoder().decode(all);
}

class ExitCalled extends Error {
  constructor(how, code) {
    super(`the snippet called ${how}(${code ?? ""}) instead of returning a value`);
    this.name = "ExitCalled";
  }
}

// ---- snippet conventions ---------------------------------------------------------------

// (TypeScript: `function main<T>(...)` and `const main: Type = ...` too.)
const MAIN_DECL = /(^|[^.\w$])(async\s+)?function\s*\*?\s*main\s*(<[^(]*>\s*)?\(|(^|[^.\w$])(const|let|var)\s+main\s*[=:]/m;
const IMPORT_DECL = /^[ \t]*import\s*(?:[\w$*{}\s,]+?\s*from\s*)?["'][^"'\n]+["'][ \t]*;?/gm;

function buildModule(code) {
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

function stripComments(text) {
  return text.replace(/\/\*[\s\S]*?\*\//g, " ").replace(/\/\/[^\n]*/g, " ");
}

// Parameter list of a function from its source: names, defaults, destructuring, rest.
function parameters(fn) {
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
function optionalParameters(code) {
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

class InputProblem extends Error {}

function bindInputs(fn, inputs, optional = new Set()) {
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

class SerializationProblem extends Error {
  constructor(path, typeName, hint) {
    super(`${path} is ${typeName}, which is not JSON: ${hint}`);
    this.typeName = typeName;
  }
}

const REFUSED = [
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
function loneSurrogate(where) {
  const e = new SerializationProblem(where, "str", "");
  e.message = `${where} is a string with a lone surrogate, which is not Unicode text and cannot ` +
    "be sent as JSON: remove it, or return the text encoded (e.g. as base64)";
  return e;
}

function childPath(path, key) {
  if (typeof key === "number") return `${path}[${key}]`;
  return /^[A-Za-z_$][\w$]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

function typeName(value) {
  if (value === null) return "null";
  if (typeof value !== "object") return typeof value;
  return value.constructor?.name ?? "Object";
}

// The path of a value, written as the Python runner writes it: built only for an error
// message.  `parent` is null (the result itself) or its container's {parent, key} node.
function pathOf(parent, key) {
  const keys = key === undefined ? [] : [key];
  for (let node = parent; node !== null; node = node.parent) keys.push(node.key);
  let path = "result";
  for (let i = keys.length - 1; i >= 0; i--) path = childPath(path, keys[i]);
  return path;
}

// What JSON.stringify would make of value, refusing whatever it would drop or alter.
// The value sits at `key` of the container `parent` (see pathOf); no path string is
// built unless it is refused, so a large result costs one quick walk.
function toJson(value, parent = null, key = undefined, depth = 0, seen = new Set()) {
  if (typeof value === "string") {
    if (!value.isWellFormed()) throw loneSurrogate(pathOf(parent, key));
    return value;
  }
  if (value === null || typeof value === "boolean") return value;
  if (typeof value === "number") {
    if (Number.isFinite(value)) return value;
    throw new SerializationProblem(pathOf(parent, key), String(value), "NaN and Infinity become null in JSON; return null or a string");
  }
  const problem = (type, hint) => new SerializationProblem(pathOf(parent, key), type, hint);
  if (typeof value === "undefined") {
    throw problem("undefined", "JSON.stringify would drop it; use null");
  }
  if (typeof value === "bigint") throw problem("BigInt", "convert it with String(value) or Number(value)");
  if (typeof value === "function") throw problem("a function", "call it, or return data");
  if (typeof value === "symbol") throw problem("a symbol", "return its description as a string");
  if (depth >= MAX_DEPTH) throw problem(typeName(value), `the value is nested deeper than ${MAX_DEPTH} levels`);
  if (seen.has(value)) throw problem(typeName(value), "the value contains itself (a cycle)");
  if (typeof value.toJSON === "function") {
    return toJson(value.toJSON(), parent, key, depth + 1, seen);
  }
  for (const [cls, hint] of REFUSED) {
    if (value instanceof cls) throw problem(typeName(value), hint);
  }
  if (ArrayBuffer.isView(value)) {
    throw problem(typeName(value), "convert it to an array, e.g. Array.from(value)");
  }
  seen.add(value);
  const here = key === undefined ? parent : { parent, key };
  let out;
  if (Array.isArray(value)) {
    out = value.map((item, i) => toJson(item, here, i, depth + 1, seen));
  } else {
    out = {};
    for (const name of Object.keys(value)) {
      if (!name.isWellFormed()) throw loneSurrogate(`${pathOf(here, name)} (a key)`);
      out[name] = toJson(value[name], here, name, depth + 1, seen);
    }
  }
  seen.delete(value);
  return out;
}

// ---- errors ----------------------------------------------------------------------------

const SNIPPET_LOCATION = /file:\/\/\/tmp\/\.coderunner-snippet\.(?:mjs|ts):(\d+):(\d+)/;

// The stack below the "Name: message" head: a message may itself quote a location.
function stackBody(e) {
  const stack = String(e?.stack ?? "");
  if (!(e instanceof Error)) return stack;
  const head = `${e.name}: ${e.message}`;
  return stack.startsWith(head) ? stack.slice(head.length) : stack.split("\n").slice(1).join("\n");
}

function snippetFrames(text, offset) {
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

function errorName(e) {
  if (!(e instanceof Error)) return typeof e === "object" && e !== null ? typeName(e) : "Error";
  return e.name && e.name !== "Error" ? e.name : (e.constructor?.name ?? "Error");
}

// Deno's permission errors suggest "--allow-*" flags nobody can pass here: say what holds.
const NOT_CAPABLE = {
  read: "the sandbox allows no file access outside /tmp",
  write: "the sandbox allows no file writes outside /tmp",
  net: "the sandbox has no network access",
  env: "the sandbox has no environment variables",
  run: "starting programs or signalling processes is not allowed in the sandbox",
  ffi: "native libraries (FFI) are not allowed in the sandbox",
  sys: "system information is not available in the sandbox",
  import: "the sandbox has no network access to import modules from",
};

function explain(e, message) {
  const m = message.match(/^Requires (\w+) access(.*?)(?:, run again with the --allow-\w+ flag)?$/s);
  if (errorName(e) !== "NotCapable" || !m) return message;
  const what = NOT_CAPABLE[m[1]] ?? `${m[1]} access is not allowed in the sandbox`;
  return `${what} (requires ${m[1]} access${m[2]})`;
}

// A thrown non-Error value ("throw {code: 1}") as readable text.
function thrownText(value) {
  if (typeof value === "string") return value;
  try { return JSON.stringify(value) ?? String(value); } catch { return String(value); }
}

// ---- imports of packages this server does not have ------------------------------------

const MISSING_MODULE = new RegExp(
  '^(?:Import "([^"]+)" not a dependency|Cannot find module \'([^\']+)\'|' +
  "Could not find a matching package for 'npm:([^']+)'|" +
  "(npm specifiers were requested; but --no-npm is specified))");

// The package a bare specifier names: "lodash/fp" → "lodash", "@a/b/c" → "@a/b".
function packageName(specifier) {
  const spec = specifier.replace(/^npm:/, "");
  const parts = spec.split("/");
  const name = spec.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
  return name.replace(/(.)@.*$/, "$1"); // a version in an npm: specifier
}

const installedNames = () => PACKAGES.map((p) => p.replace(/(.)@[^@]*$/, "$1"));

function notInstalledMessage(name) {
  const offered = PACKAGES.length
    ? `besides the built-ins, snippets can import only these vetted packages: ${PACKAGES.join(", ")}`
    : "snippets can import only the built-ins and Node's built-in modules, as node:NAME";
  return `the package "${name}" is not installed on this server (${offered}). An operator ` +
    "adds vetted packages with the setting javascript_packages (CODERUNNER_JAVASCRIPT_PACKAGES).";
}

// An import (or require) of a package this server does not have: { specifier, message },
// else null.
function missingPackage(e, code) {
  let text;
  try { text = String(e?.message ?? ""); } catch { return null; } // a thrown odd value
  const m = text.match(MISSING_MODULE);
  if (!m) return null;
  let specifier = m[1] ?? m[2] ?? m[3];
  if (specifier === undefined) specifier = code.match(/["'](npm:[^"']+)["']/)?.[1] ?? "npm:";
  if (/^(node:|\.|\/|file:|data:|https?:|jsr:|blob:)/.test(specifier)) return null;
  if (/built-in Node module/.test(text)) {
    return { specifier, message: `"${specifier}" is one of Node's built-in modules: import it as "node:${specifier}"` };
  }
  const name = packageName(specifier);
  if (installedNames().includes(name)) return null; // the package's own business
  return { specifier, message: notInstalledMessage(name) };
}

// The snippet's line that names `specifier` (an import hoisted out of place has no frame).
function lineNaming(code, specifier) {
  const quoted = [`"${specifier}"`, `'${specifier}'`, `\`${specifier}\``];
  const index = code.split("\n").findIndex((l) => quoted.some((q) => l.includes(q)));
  return index === -1 ? null : index + 1;
}

let codeOfJob = "";

function runtimeError(e, offset) {
  const name = errorName(e);
  const missing = missingPackage(e, codeOfJob);
  if (missing) {
    const { frames, line } = snippetFrames(stackBody(e), offset);
    return {
      type: "runtime_error",
      name,
      message: missing.message,
      line: line ?? lineNaming(codeOfJob, missing.specifier),
      traceback: [`${name}: ${missing.message}`, ...frames].join("\n"),
    };
  }
  const message = explain(e, e instanceof Error ? e.message : thrownText(e));
  const { frames, line } = snippetFrames(stackBody(e), offset);
  const memory = e instanceof RangeError && /allocation failed|out of memory/i.test(message);
  return {
    type: memory ? "memory_limit" : "runtime_error",
    name,
    message: memory ? `the snippet went over its memory limit (${message})` : message,
    line,
    traceback: [`${name}: ${message}`, ...frames].join("\n"),
  };
}

function syntaxError(e, offset) {
  const text = String(e?.message ?? e);
  const m = text.match(SNIPPET_LOCATION) ?? String(e?.stack ?? "").match(SNIPPET_LOCATION);
  const firstLine = text.split("\n")[0].replace(/^(SyntaxError|TypeError): /, "");
  const message = firstLine.replace(/ at file:\S+$/, "");
  const line = m ? Math.max(1, Number(m[1]) - offset) : null;
  return {
    type: "syntax_error",
    name: "SyntaxError",
    message,
    line,
    traceback: `SyntaxError: ${message}` + (line === null ? "" : `\n    at <snippet>:${line}:${m[2]}`),
  };
}

// A parse error of the snippet module (Deno wraps some in a TypeError whose message
// starts with "SyntaxError:"), as opposed to a SyntaxError the snippet's code threw
// while running (JSON.parse), which has frames of the snippet below its message.
function isSyntaxError(e, offset) {
  const parseLike = e instanceof SyntaxError ||
    /^(SyntaxError|The module's source code could not be parsed)/.test(String(e?.message ?? ""));
  return parseLike && !snippetFrames(stackBody(e), offset).frames.length;
}

// ---- the run -----------------------------------------------------------------------------

async function run(job) {
  const { source, offset, style } = buildModule(job.code);
  // A TypeScript module: Deno strips its types (and maps its errors' lines back to it).
  const modulePath = job.language === "typescript" ? TS_MODULE_PATH : MODULE_PATH;
  Deno.writeTextFileSync(modulePath, source);
  const inputs = job.inputs;
  if (style === "script") {
    for (const [name, value] of Object.entries(inputs)) {
      if (/^[A-Za-z_$][\w$]*$/.test(name)) globalThis[name] = value;
    }
  }
  let mod;
  try {
    mod = await import("file://" + modulePath);
  } catch (e) {
    if (isSyntaxError(e, offset)) {
      return { ok: false, error: syntaxError(e, offset) };
    }
    return { ok: false, error: runtimeError(e, offset) };
  } finally {
    try { Deno.removeSync(modulePath); } catch { /* the snippet may have removed it */ }
  }
  let value;
  try {
    if (style === "function") {
      const main = mod.__coderunner_main;
      if (typeof main !== "function") {
        return { ok: false, error: { type: "runtime_error", name: "TypeError", message: "main is not a function", line: null, traceback: null } };
      }
      let args;
      try {
        const optional = job.language === "typescript" ? optionalParameters(job.code) : undefined;
        args = bindInputs(main, inputs, optional);
      } catch (e) {
        if (e instanceof InputProblem) return { ok: false, error: { type: "input_error", name: null, message: e.message, line: null, traceback: null } };
        throw e;
      }
      value = await main(...args);
    } else {
      value = await mod.default(inputs);
    }
  } catch (e) {
    return { ok: false, error: runtimeError(e, offset) };
  }
  try {
    return { ok: true, body: JSON.stringify(toJson(value === undefined ? null : value)) };
  } catch (e) {
    if (e instanceof SerializationProblem) {
      return { ok: false, error: { type: "serialization_error", name: e.typeName, message: e.message, line: null, traceback: null } };
    }
    if (e instanceof RangeError) {
      return { ok: false, error: { type: "serialization_error", name: "RangeError", message: `result cannot be encoded as JSON: ${e.message}`, line: null, traceback: null } };
    }
    return { ok: false, error: runtimeError(e, offset) };
  }
}

// Exits become errors.
const exitAs = (how) => (code) => { throw new ExitCalled(how, code); };
Deno.exit = exitAs("Deno.exit");

// Where the jail refuses something anyway, refuse it up front with a clear message
// (a Worker isolate does not fit the runtime's memory limits and would abort it).
class Unavailable extends Error {
  constructor(what) {
    super(`${what} is not available in the sandbox`);
    this.name = "NotSupportedError";
  }
}
const refuse = (what) => function () { throw new Unavailable(what); };
class SandboxWorker { constructor() { throw new Unavailable("Worker (threads)"); } }
globalThis.Worker = SandboxWorker;

// CommonJS require for Node built-ins, and clear refusals in the Node modules that
// start programs or threads, for a snippet that mentions them.
async function prepareNode(code) {
  // A vetted package may read process.env at its import (isexe reads OSTYPE): it sees
  // the jail's empty environment, as under Node with none, not a permission error.
  const usesPackages = PACKAGES.length > 0 && /require|import/.test(code);
  if (/process/.test(code) || usesPackages) {
    // (An exit that dodges this still ends as a runtime_error: the host sees no result.)
    globalThis.process.exit = exitAs("process.exit");
    try { Object.defineProperty(globalThis.process, "env", { value: {}, configurable: true }); } catch { /* keep Deno's */ }
  }
  if (!usesPackages && !/require|child_process|worker_threads/.test(code)) return;
  const { createRequire } = await import("node:module");
  // Resolved from the snippet's folder (/tmp, then /node_modules: the vetted packages).
  const nodeRequire = createRequire("file://" + MODULE_PATH);
  globalThis.require = Object.assign(function require(id) {
    try {
      return nodeRequire(id);
    } catch (e) {
      // Without packages, resolution stops at /node_modules, which Deno may not read.
      const unreadable = errorName(e) === "NotCapable" && /node_modules/.test(String(e?.message));
      const missing = missingPackage(unreadable ? { message: `Cannot find module '${id}'` } : e, "");
      if (missing === null || typeof id !== "string") throw e;
      throw Object.assign(new Error(missing.message), { code: "MODULE_NOT_FOUND" });
    }
  }, nodeRequire);
  if (/worker_threads/.test(code)) {
    try { (await import("node:worker_threads")).default.Worker = SandboxWorker; } catch { /* absent */ }
  }
  if (/child_process/.test(code) || usesPackages) {  // (a package may start programs)
    try {
      const childProcess = (await import("node:child_process")).default;
      for (const name of ["spawn", "spawnSync", "exec", "execSync", "execFile", "execFileSync", "fork"]) {
        childProcess[name] = refuse(`starting programs (child_process.${name})`);
      }
    } catch { /* module absent */ }
  }
}

// Errors thrown in callbacks and unhandled rejections must not end the runtime; the
// last one is kept to explain a snippet that then waits forever.
let lastUncaught = null;
globalThis.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  lastUncaught = event.reason;
});
globalThis.addEventListener("error", (event) => {
  event.preventDefault();
  lastUncaught = event.error ?? event.message;
});

let offsetOfJob = 0;
let finished = false;

function frameFor(header, limit) {
  const body = header.body;
  delete header.body;
  const data = encoder.encode(JSON.stringify(header) + "\n");
  if (body === undefined) return data;
  const encoded = encoder.encode(body);
  if (encoded.length > limit) {
    return encoder.encode(JSON.stringify({ ok: false, error: {
      type: "output_limit", name: null, line: null, traceback: null,
      message: `the result is ${encoded.length} bytes of JSON, above the limit of ${limit} bytes`,
    } }) + "\n");
  }
  const joined = new Uint8Array(data.length + encoded.length);
  joined.set(data); joined.set(encoded, data.length);
  return joined;
}

function finish(header, limit) {
  if (finished) return;
  finished = true;
  writeAll(frameFor(header, limit));
  resultFile.close();
  realExit(0);
}

// The event loop ran dry while the snippet still waited on a promise nothing can
// settle any more (a callback never called, an error thrown inside a callback).
globalThis.addEventListener("beforeunload", () => {
  if (finished) return;
  const error = lastUncaught !== null ? runtimeError(lastUncaught, offsetOfJob) : {
    type: "runtime_error",
    name: "PendingPromise",
    message: "the snippet waited on a promise that can never settle: nothing was left to run " +
      "that could resolve it (e.g. a callback that is never called)",
    line: null,
    traceback: null,
  };
  if (lastUncaught !== null) error.message += " (thrown in a callback; the snippet then waited forever)";
  finish({ ok: false, error }, 0);
});

// The vetted npm packages are not imported ahead of READY, as Python's are: a Deno
// runtime serves one execution, so every runtime would pay for them (lodash costs ~80 ms
// of CPU, with Node's compatibility layer), and the pool's throughput fell 3x.
// No top-level await below: with one, Deno would end on a pending promise before the
// "beforeunload" event that reports it.
async function serve() {
  writeAll(encoder.encode(READY));
  const job = JSON.parse(await readStdin());
  writeAll(encoder.encode(STARTED)); // the host now knows the job reached a live runtime
  offsetOfJob = buildModule(job.code).offset;
  codeOfJob = job.code;
  await prepareNode(job.code);
  const header = await run(job);
  finish(header, job.result_limit_bytes);
}

serve().catch((e) => {
  finish({ ok: false, error: { type: "runtime_error", name: errorName(e), line: null, traceback: null,
    message: `the runner failed: ${e?.message ?? e}` } }, 0);
});
