// The main module of each fresh isolate (isolate mode): workerd's Worker Loader builds one
// isolate per execution from this module, workerd_conventions.mjs and the snippet's module,
// with no bindings and no outbound access (see workerd_loader.mjs).  Nothing of another
// execution is in this isolate, and it is thrown away after this one.
//
// Request body (from the loader): one JSON line {code, language, offset, style,
// result_limit_bytes}, then the inputs as JSON.  Response body: lines "U<error JSON>" for
// errors thrown in callbacks (the loader needs the last one if the snippet then waits
// forever: workerd cancels a request that can never finish), then "F" and the frame of
// protocol.py (header line, encoded result).  console.* is workerd's own: it writes to
// the process's stdout and stderr at once, where the host reads it.

import {
  InputProblem,
  SNIPPET_MODULE,
  SerializationProblem,
  bindInputs,
  errorName,
  lineNaming,
  optionalParameters,
  packageName,
  snippetFrames,
  stackBody,
  thrownText,
  toJson,
} from "./workerd_conventions.mjs";

const encoder = new TextEncoder();
// Our own references, taken before the snippet runs (it may replace the globals).
const stringify = JSON.stringify;
const parse = JSON.parse;

class ExitCalled extends Error {
  constructor(how, code) {
    super(`the snippet called ${how}(${code ?? ""}) instead of returning a value`);
    this.name = "ExitCalled";
  }
}
const exitAs = (how) => (code) => { throw new ExitCalled(how, code); };

let job = null;
let writer = null;

// ---- errors ----------------------------------------------------------------------------

const MISSING_MODULE = /^(?:No such module "([^"]+)"|Cannot find module '([^']+)')/;

function missingPackage(e, code) {
  let text;
  try { text = String(e?.message ?? ""); } catch { return null; }
  const m = text.match(MISSING_MODULE);
  if (!m) return null;
  const specifier = (m[1] ?? m[2]).replace(/^\//, "");
  if (/^(node:|\.|\/|file:|data:|https?:|jsr:|blob:|cloudflare:)/.test(specifier)) return null;
  return { specifier, message: notInstalledMessage(packageName(specifier)) };
}

export function notInstalledMessage(name) {
  return `the package "${name}" is not installed on this server (snippets can import only ` +
    "the built-ins and Node's built-in modules, as node:NAME; the isolate mode has no " +
    "vetted npm packages)";
}

function runtimeError(e, offset) {
  const name = errorName(e);
  const code = job?.code ?? "";
  const missing = missingPackage(e, code);
  if (missing) {
    const { frames, line } = snippetFrames(stackBody(e), offset);
    return {
      type: "runtime_error", name, message: missing.message,
      line: line ?? lineNaming(code, missing.specifier),
      traceback: [`${name}: ${missing.message}`, ...frames].join("\n"),
    };
  }
  const message = e instanceof Error ? e.message : thrownText(e);
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

function failure(type, message, name = null) {
  return { ok: false, error: { type, name, message, line: null, traceback: null } };
}

// ---- callbacks that throw --------------------------------------------------------------

function report(reason) {
  if (writer === null) return;
  let error;
  try { error = runtimeError(reason, job.offset); } catch { return; }
  writer.write(encoder.encode("U" + stringify(error) + "\n")).catch(() => {});
}
addEventListener("unhandledrejection", (event) => { event.preventDefault(); report(event.reason); });
addEventListener("error", (event) => { event.preventDefault(); report(event.error ?? event.message); });
// workerd dispatches no "error" event for a timer callback that throws: report it here.
for (const name of ["setTimeout", "setInterval", "queueMicrotask"]) {
  const original = globalThis[name];
  globalThis[name] = function (callback, ...rest) {
    if (typeof callback !== "function") return original(callback, ...rest);
    return original(function (...args) {
      try { return callback.apply(this, args); } catch (e) { report(e); throw e; }
    }, ...rest);
  };
}

// ---- the run -----------------------------------------------------------------------------

async function prepare(code) {
  if (/\bDeno\s*\.\s*exit\b/.test(code)) globalThis.Deno = { exit: exitAs("Deno.exit") };
  if (globalThis.process !== undefined && /process/.test(code)) {
    globalThis.process.exit = exitAs("process.exit");
    try { Object.defineProperty(globalThis.process, "env", { value: {}, configurable: true }); } catch { /* keep */ }
  }
  if (/require/.test(code) && globalThis.process !== undefined) {
    const { createRequire } = await import("node:module");
    const nodeRequire = createRequire("/" + SNIPPET_MODULE);
    globalThis.require = function require(id) {
      try {
        return nodeRequire(id);
      } catch (e) {
        const missing = missingPackage(e, "");
        if (missing === null || typeof id !== "string") throw e;
        throw Object.assign(new Error(missing.message), { code: "MODULE_NOT_FOUND" });
      }
    };
  }
}

async function run(inputs) {
  const { code, offset, style } = job;
  if (style === "script") {
    for (const [name, value] of Object.entries(inputs)) {
      if (/^[A-Za-z_$][\w$]*$/.test(name)) globalThis[name] = value;
    }
  }
  let mod;
  try {
    mod = await import("./" + SNIPPET_MODULE);
  } catch (e) {
    return { ok: false, error: runtimeError(e, offset) };
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
        const optional = job.language === "typescript" ? optionalParameters(code) : undefined;
        args = bindInputs(main, inputs, optional);
      } catch (e) {
        if (e instanceof InputProblem) return failure("input_error", e.message);
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
    return { ok: true, body: stringify(toJson(value === undefined ? null : value)) };
  } catch (e) {
    if (e instanceof SerializationProblem) return failure("serialization_error", e.message, e.typeName);
    if (e instanceof RangeError) {
      return failure("serialization_error", `result cannot be encoded as JSON: ${e.message}`, "RangeError");
    }
    return { ok: false, error: runtimeError(e, offset) };
  }
}

function frame(header, limit) {
  const body = header.body;
  delete header.body;
  const head = stringify(header) + "\n";
  if (body === undefined) return encoder.encode("F" + head);
  const encoded = encoder.encode(body);
  if (encoded.length > limit) {
    return encoder.encode("F" + stringify(failure("output_limit",
      `the result is ${encoded.length} bytes of JSON, above the limit of ${limit} bytes`)) + "\n");
  }
  const start = encoder.encode("F" + head);
  const joined = new Uint8Array(start.length + encoded.length);
  joined.set(start); joined.set(encoded, start.length);
  return joined;
}

async function serve(text) {
  const newline = text.indexOf("\n");
  job = parse(text.slice(0, newline));
  const inputs = parse(text.slice(newline + 1));
  let header;
  try {
    await prepare(job.code);
    header = await run(inputs);
  } catch (e) {
    header = failure("runtime_error", `the runner failed: ${e?.message ?? e}`, errorName(e));
  }
  return frame(header, job.result_limit_bytes);
}

export default {
  async fetch(request) {
    const text = await request.text();
    const { readable, writable } = new TransformStream();
    writer = writable.getWriter();
    // The body streams, so that an error thrown in a callback reaches the loader even if
    // the snippet then waits forever and workerd cancels this request.
    serve(text).then(
      (bytes) => writer.write(bytes).then(() => writer.close()),
      (e) => writer.write(encoder.encode("F" + stringify(failure("runtime_error",
        `the runner failed: ${e?.message ?? e}`)) + "\n")).then(() => writer.close()),
    );
    return new Response(readable);
  },
};
