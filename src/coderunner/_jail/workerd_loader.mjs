// The one long-lived worker of a jailed workerd process (isolate mode).  It runs no user
// code: for each request it has workerd's Worker Loader build a FRESH isolate holding
// workerd_runner.mjs, workerd_conventions.mjs and the snippet's module, with no bindings
// (env is empty), no outbound access (globalOutbound: null: fetch() and connect() throw)
// and Node's compatibility layer only for a snippet that uses it.  The host sends one
// request at a time (_runtimes/workerd.py) over the Unix socket it handed workerd.
//
// Request: header x-coderunner-marks "<begin> <end>" (two random markers), body: one JSON
// line {code, language, result_limit_bytes}, then the inputs as JSON (passed through).
// The loader prints the begin marker to stdout and stderr before the isolate exists and
// the end marker after it is done: the snippet's console output, which workerd writes to
// the process's stdout and stderr, is what the host reads between them.
// Response: the frame of protocol.py (header line, encoded result).

import { SNIPPET_LOCATION, SNIPPET_MODULE, buildModule } from "./workerd_conventions.mjs";
import RUNNER from "runner-source";
import CONVENTIONS from "conventions-source";

const COMPATIBILITY_DATE = "2025-06-01";
// Node's compatibility layer (node:* modules, require, process, Buffer) costs each
// isolate its start-up: only for a snippet that mentions it.
const NEEDS_NODE = /\bnode:|\brequire\b|\bprocess\b|\bBuffer\b/;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function header(error) {
  return JSON.stringify({ ok: false, error: { line: null, traceback: null, name: null, ...error } }) + "\n";
}

// workerd refused to start the isolate: the snippet's module does not parse, or imports a
// module that does not exist.  "Failed to start Worker:\nUncaught SyntaxError: ...\n  at
// coderunner-snippet.js:2:13"
function startFailure(e, offset, code) {
  const text = String(e?.message ?? e);
  const syntax = text.match(/Uncaught SyntaxError: ([^\n]*)/);
  if (syntax) {
    const m = text.match(SNIPPET_LOCATION);
    const line = m ? Math.max(1, Number(m[1]) - offset) : null;
    const message = syntax[1];
    return header({
      type: "syntax_error", name: "SyntaxError", message, line,
      traceback: `SyntaxError: ${message}` + (line === null ? "" : `\n    at <snippet>:${line}:${m[2]}`),
    });
  }
  const missing = text.match(/No such module "([^"]+)"/);
  if (missing) {
    const specifier = missing[1].replace(/^\//, "");
    const name = specifier.startsWith("@") ? specifier.split("/").slice(0, 2).join("/") : specifier.split("/")[0];
    const builtin = specifier.startsWith("node:");
    const message = builtin
      ? `"${specifier}" is not one of the Node built-in modules this runtime has`
      : `the package "${name}" is not installed on this server (snippets can import only ` +
        "the built-ins and Node's built-in modules, as node:NAME; the isolate mode has no " +
        "vetted npm packages)";
    const index = code.split("\n").findIndex((l) => l.includes(`"${specifier}"`) || l.includes(`'${specifier}'`));
    return header({ type: "runtime_error", name: "Error", message, line: index === -1 ? null : index + 1,
      traceback: `Error: ${message}` });
  }
  return header({ type: "runtime_error", name: "Error", message: text.replace(/^Failed to start Worker:\s*/, "") });
}

async function execute(text) {
  const newline = text.indexOf("\n");
  const meta = JSON.parse(text.slice(0, newline));
  const { source, offset, style } = buildModule(meta.code);
  const runnerJob = JSON.stringify({
    code: meta.code, language: meta.language, offset, style,
    result_limit_bytes: meta.result_limit_bytes,
  });
  const worker = env_.LOADER.load({
    compatibilityDate: COMPATIBILITY_DATE,
    compatibilityFlags: NEEDS_NODE.test(meta.code) ? ["nodejs_compat"] : [],
    mainModule: "workerd_runner.mjs",
    modules: {
      "workerd_runner.mjs": { js: RUNNER },
      "workerd_conventions.mjs": { js: CONVENTIONS },
      [SNIPPET_MODULE]: { js: source },
    },
    env: {},
    globalOutbound: null,
  });
  let response;
  try {
    response = await worker.getEntrypoint().fetch("http://isolate/", {
      method: "POST", body: runnerJob + "\n" + text.slice(newline + 1),
    });
  } catch (e) {
    return startFailure(e, offset, meta.code);
  }
  // Read the stream to its end; workerd cancels it if the snippet waits forever.
  const chunks = [];
  const reader = response.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
    }
  } catch (e) {
    const seen = decoder.decode(concat(chunks));
    const uncaught = [...seen.matchAll(/^U(.*)$/gm)].pop();
    if (uncaught) {
      const error = JSON.parse(uncaught[1]);
      error.message += " (thrown in a callback; the snippet then waited forever)";
      return header(error);
    }
    if (/hung and would never generate a response/.test(String(e?.message))) {
      return header({ type: "runtime_error", name: "PendingPromise",
        message: "the snippet waited on a promise that can never settle: nothing was left to run " +
          "that could resolve it (e.g. a callback that is never called)" });
    }
    return header({ type: "runtime_error", name: errorName(e), message: `the isolate failed: ${e?.message ?? e}` });
  }
  const all = concat(chunks);
  // Skip the "U" lines: the frame follows "F".
  let at = 0;
  while (at < all.length && all[at] === 0x55) {
    const end = all.indexOf(0x0a, at);
    at = end === -1 ? all.length : end + 1;
  }
  if (all[at] !== 0x46) return header({ type: "runtime_error", name: "Error", message: "the isolate returned no result" });
  return all.subarray(at + 1);
}

function errorName(e) {
  return e instanceof Error ? e.name : "Error";
}

function concat(chunks) {
  let size = 0;
  for (const c of chunks) size += c.length;
  const all = new Uint8Array(size);
  let offset = 0;
  for (const c of chunks) { all.set(c, offset); offset += c.length; }
  return all;
}

let env_ = null;

export default {
  async fetch(request, env) {
    env_ = env;
    const [begin, end] = (request.headers.get("x-coderunner-marks") ?? "").split(" ");
    const text = await request.text();
    console.log(begin);
    console.error(begin);
    let body;
    try {
      body = await execute(text);
    } catch (e) {
      body = header({ type: "runtime_error", name: errorName(e), message: `the loader failed: ${e?.message ?? e}` });
    }
    console.log(end);
    console.error(end);
    return new Response(typeof body === "string" ? encoder.encode(body) : body);
  },
};
