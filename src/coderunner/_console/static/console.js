// Code Runner console: write, run, debug and promote snippets.
//
// Plain ES module, no framework.  It talks to the service's own HTTP API (relative URLs,
// so the console also works behind a path prefix) and nothing else.  The page's state —
// language, code, inputs — lives in the URL fragment
//     #language=L&code=C&inputs=J        (each value percent-encoded; J is JSON)
// so a link reproduces the page.  An API key, when the server wants one, is asked for on
// the first 401, kept in sessionStorage only and sent as `Authorization: Bearer KEY`.

import { createEditor } from "./editor.js";

const KEY_STORAGE = "coderunner.apiKey";
const NAME_PATTERN = /^[a-z][a-z0-9_-]{0,62}$/;
const SAMPLES = {
  python: `def main(name: str = "world", times: int = 1):
    greeting = " ".join([f"Hello, {name}!"] * times)
    print(greeting)
    return {"greeting": greeting, "length": len(greeting)}
`,
  javascript: `function main(name = "world", times = 1) {
  const greeting = \`Hello, \${name}! \`.repeat(times).trim();
  console.log(greeting);
  return { greeting, length: greeting.length };
}
`,
};
const DEFAULT_INPUTS = '{\n  "name": "Ada"\n}';

const $ = (selector) => document.querySelector(selector);

/** An element: h("li", {class: "x", onclick: f}, "text", child, ...). */
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "class") element.className = value;
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

/**
 * Replace a list's items, unless they are the same as before (`signature`); the item
 * that had the focus (same `data-key`) keeps it, so a refresh never loses a keyboard user.
 */
function renderList(list, signature, items) {
  if (list.dataset.signature === signature) return false;
  list.dataset.signature = signature;
  const focused = list.contains(document.activeElement) ? document.activeElement.dataset.key : undefined;
  list.replaceChildren(...items);
  if (focused !== undefined) list.querySelector(`[data-key="${CSS.escape(focused)}"]`)?.focus();
  return true;
}

function debounce(fn, ms) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

const pretty = (value) => JSON.stringify(value, null, 2);
const abbreviate = (text, n) => (text.length > n ? `${text.slice(0, n)}…` : text);
const sameJson = (a, b) => JSON.stringify(a) === JSON.stringify(b);

function formatTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso ?? "";
  const sameDay = date.toDateString() === new Date().toDateString();
  return sameDay ? date.toLocaleTimeString() : date.toLocaleString();
}

// -- the API --------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, error) {
    super(error?.message || `HTTP ${status}`);
    this.status = status;
    this.error = error || {};
  }
}

let keyPrompt = null; // the pending prompt, shared by every request that got a 401

/** Ask for the API key; resolves with it, or null when the user cancels. */
function askForKey(refused) {
  if (keyPrompt) return keyPrompt;
  const dialog = $("#key-dialog");
  const input = $("#api-key");
  $("#key-error").textContent = refused ? "The server refused that key; check it and try again." : "";
  input.value = "";
  $("#key-forget").hidden = !sessionStorage.getItem(KEY_STORAGE);
  keyPrompt = new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        keyPrompt = null;
        const key = input.value.trim();
        input.value = "";
        if (dialog.returnValue === "ok" && key) {
          sessionStorage.setItem(KEY_STORAGE, key);
          updateKeyButton();
          resolve(key);
        } else {
          resolve(null);
        }
      },
      { once: true },
    );
  });
  dialog.returnValue = "";
  dialog.showModal();
  input.focus();
  return keyPrompt;
}

function updateKeyButton() {
  $("#key-button").hidden = !sessionStorage.getItem(KEY_STORAGE) && !state.keyNeeded;
}

/** One API call: JSON in and out; a 401 asks for the key and tries again. */
async function api(method, path, body) {
  for (;;) {
    const key = sessionStorage.getItem(KEY_STORAGE);
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (key) headers.Authorization = `Bearer ${key}`;
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
      });
    } catch (exc) {
      throw new ApiError(0, { type: "network_error", message: `the service did not answer (${exc.message})` });
    }
    if (response.status === 401) {
      state.keyNeeded = true;
      updateKeyButton();
      const now = sessionStorage.getItem(KEY_STORAGE);
      if (now && now !== key) continue; // another request got a new key meanwhile
      if (now) sessionStorage.removeItem(KEY_STORAGE); // refused: never sent again
      const answer = await askForKey(Boolean(key));
      if (answer === null) {
        throw new ApiError(401, { type: "unauthorized", message: "this server needs an API key" });
      }
      continue;
    }
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!response.ok) {
      throw new ApiError(response.status, data?.error ?? { type: "http_error", message: text || response.statusText });
    }
    return data;
  }
}

// -- state ----------------------------------------------------------------------------

const state = {
  keyNeeded: false,
  lastRun: null, // {language, code, inputs, result}: the last run of the editor's code
  loaded: null, // the library version last loaded into the editor (a Snippet)
  prefilledFor: null, // the loaded snippet the save dialog was last filled from
  inspection: null, // the answer of /v1/inspect for the current code, or {error}
  formKeys: "", // the property names the form was built for
  running: false,
  openSnippet: null,
  openExecution: null,
};

let editor;
const languageSelect = $("#language");
const inputsArea = $("#inputs");

function currentLanguage() {
  return languageSelect.value;
}

/** The inputs as an object, or throws an Error saying what is wrong. */
function parseInputs(text = inputsArea.value) {
  if (!text.trim()) return {};
  let value;
  try {
    value = JSON.parse(text);
  } catch (exc) {
    throw new Error(`the inputs are not valid JSON: ${exc.message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new Error("the inputs must be a JSON object, e.g. {\"name\": \"Ada\"}");
  }
  return value;
}

function setInputs(value) {
  inputsArea.value = typeof value === "string" ? value : pretty(value);
  onInputsChanged();
}

function onInputsChanged() {
  let problem = "";
  try {
    parseInputs();
  } catch (exc) {
    problem = exc.message;
  }
  inputsArea.setAttribute("aria-invalid", problem ? "true" : "false");
  const note = $("#inputs-note");
  note.textContent = problem || "A JSON object: each key is an input (a parameter of main).";
  note.classList.toggle("problem", Boolean(problem));
  syncFormValues();
  scheduleFragment();
}

// -- the URL fragment -----------------------------------------------------------------

let lastFragment = "";

function fragmentOf(language, code, inputsText) {
  let inputs = inputsText;
  try {
    inputs = JSON.stringify(parseInputs(inputsText)); // compact when it parses
  } catch {
    /* keep the text as it is */
  }
  const enc = encodeURIComponent;
  return `#language=${enc(language)}&code=${enc(code)}&inputs=${enc(inputs)}`;
}

function writeFragment() {
  const fragment = fragmentOf(currentLanguage(), editor.code, inputsArea.value);
  lastFragment = fragment;
  if (location.hash !== fragment) {
    history.replaceState(history.state, "", `${location.pathname}${location.search}${fragment}`);
  }
}
const scheduleFragment = debounce(writeFragment, 150);

function readFragment() {
  const values = {};
  for (const part of location.hash.replace(/^#/, "").split("&")) {
    const at = part.indexOf("=");
    if (at < 1) continue;
    try {
      values[part.slice(0, at)] = decodeURIComponent(part.slice(at + 1));
    } catch {
      /* a value that is not percent-encoded properly is ignored */
    }
  }
  return values;
}

/** Apply a fragment's state; true if it held any. */
function applyFragment() {
  const values = readFragment();
  if (!("code" in values || "language" in values || "inputs" in values)) return false;
  const language = values.language === "javascript" ? "javascript" : "python";
  languageSelect.value = language;
  editor.setLanguage(language);
  editor.setCode(values.code ?? "");
  let inputs = values.inputs ?? "{}";
  try {
    inputs = pretty(parseInputs(inputs));
  } catch {
    /* shown as it is, with its problem */
  }
  setInputs(inputs);
  scheduleInspect();
  lastFragment = location.hash;
  return true;
}

// -- running and showing results ------------------------------------------------------

function setStatus(text, kind = "") {
  const status = $("#status");
  status.textContent = text;
  status.className = `status ${kind}`;
}

function showStream(id, text, truncated) {
  const pre = $(`#${id}`);
  pre.textContent = text || "(empty)";
  pre.classList.toggle("empty", !text);
  $(`#${id}-note`).textContent = truncated ? "(truncated at the output limit)" : "";
}

function showErrorDetail(error) {
  const region = $("#error-region");
  const box = $("#error");
  box.replaceChildren();
  region.classList.toggle("has-error", Boolean(error));
  if (!error) {
    box.append(h("p", { class: "empty" }, "No error."));
    return;
  }
  const title = [error.type, error.name].filter(Boolean).join(": ");
  box.append(
    h("p", { class: "error-title" }, title, error.line ? ` (line ${error.line})` : ""),
    h("p", { class: "error-message" }, error.message || ""),
  );
  if (error.traceback) box.append(h("pre", { class: "traceback" }, error.traceback));
  if (Array.isArray(error.failures) && error.failures.length) {
    box.append(
      h(
        "ul",
        {},
        error.failures.map((f) => h("li", {}, `example ${f.example}${f.name ? ` (${f.name})` : ""}: ${f.reason}`)),
      ),
    );
  }
}

/**
 * Show an ExecutionResult.  `origin`: "editor" (its error line is marked in the editor),
 * or a description of where it came from (history, a library run).
 */
function showResult(result, { origin = "editor", title = "", inputs = undefined } = {}) {
  const ok = Boolean(result.ok);
  const label = ok ? "✓ ok" : `✗ ${result.error?.type ?? "failed"}`;
  setStatus(title ? `${label} · ${title}` : label, ok ? "ok" : "failed");
  $("#duration").textContent =
    typeof result.duration_ms === "number" ? `${result.duration_ms.toFixed(1)} ms` : "";
  const id = $("#execution-id");
  id.textContent = result.execution_id ? `execution ${result.execution_id.slice(0, 12)}` : "";
  id.title = result.execution_id ?? "";
  const runInputs = $("#run-inputs");
  runInputs.hidden = inputs === undefined || inputs === null;
  runInputs.textContent = runInputs.hidden ? "" : `inputs: ${pretty(inputs)}`;

  const pre = $("#result");
  const hasResult = ok || (result.result !== null && result.result !== undefined);
  pre.textContent = hasResult ? pretty(result.result ?? null) : "No result.";
  pre.classList.toggle("empty", !hasResult);
  pre.classList.toggle("ok-result", ok);
  showStream("stdout", result.stdout, result.stdout_truncated);
  showStream("stderr", result.stderr, result.stderr_truncated);
  showErrorDetail(result.error);

  if (origin === "editor" && result.error?.line) {
    editor.showError(result.error.line, `${result.error.name || result.error.type}: ${result.error.message}`);
  } else if (origin === "editor") {
    editor.clearError();
  }
}

/** A request the service refused (422, 429, 503, ...): shown in the Error region. */
function showRequestError(exc, what) {
  setStatus(`✗ ${what} refused${exc.status ? ` (HTTP ${exc.status})` : ""}`, "failed");
  $("#duration").textContent = "";
  $("#execution-id").textContent = "";
  $("#run-inputs").hidden = true;
  const pre = $("#result");
  pre.textContent = "No result.";
  pre.className = "json empty";
  showStream("stdout", "", false);
  showStream("stderr", "", false);
  showErrorDetail({ type: exc.error?.type ?? "error", message: exc.message, failures: exc.error?.failures });
}

function setRunning(running) {
  state.running = running;
  const button = $("#run");
  button.classList.toggle("running", running);
  button.setAttribute("aria-busy", running ? "true" : "false");
  $(".results").setAttribute("aria-busy", running ? "true" : "false");
}

async function run() {
  if (state.running) return null;
  let inputs;
  try {
    inputs = parseInputs();
  } catch (exc) {
    showRequestError(new ApiError(0, { type: "invalid_inputs", message: exc.message }), "Run");
    inputsArea.focus();
    return null;
  }
  const request = { language: currentLanguage(), code: editor.code, inputs };
  setRunning(true);
  setStatus("Running…");
  try {
    const result = await api("POST", "v1/execute", request);
    state.lastRun = { ...request, result };
    showResult(result);
    refreshHistory();
    return result;
  } catch (exc) {
    showRequestError(exc, "Run");
    return null;
  } finally {
    setRunning(false);
  }
}

// -- the inputs form, generated from main's input schema ---------------------------------

let inspectSeq = 0;

async function inspect() {
  const seq = ++inspectSeq;
  const body = { language: currentLanguage(), code: editor.code };
  try {
    const answer = await api("POST", "v1/inspect", body);
    if (seq !== inspectSeq) return;
    state.inspection = answer;
  } catch (exc) {
    if (seq !== inspectSeq) return;
    state.inspection = { error: exc.error?.type ? exc.error : { message: exc.message } };
  }
  renderForm();
}
const scheduleInspect = debounce(inspect, 300);

function typeOf(schema) {
  if (!schema || typeof schema !== "object") return "json";
  if (Array.isArray(schema.enum)) return "enum";
  let type = schema.type;
  if (Array.isArray(type)) {
    const concrete = type.filter((t) => t !== "null");
    type = concrete.length === 1 ? concrete[0] : null;
  }
  if (!type && Array.isArray(schema.anyOf)) {
    const concrete = schema.anyOf.filter((s) => s?.type !== "null");
    if (concrete.length === 1) return typeOf(concrete[0]);
  }
  return ["string", "integer", "number", "boolean"].includes(type) ? type : "json";
}

function describeSchema(schema) {
  if (!schema || typeof schema !== "object" || !Object.keys(schema).length) return "any JSON value";
  if (schema.type) return Array.isArray(schema.type) ? schema.type.join(" | ") : schema.type;
  if (schema.enum) return `one of ${schema.enum.map((v) => JSON.stringify(v)).join(", ")}`;
  if (schema.anyOf) return schema.anyOf.map(describeSchema).join(" | ");
  return "JSON";
}

function renderForm() {
  const form = $("#inputs-form");
  const note = $("#form-note");
  const info = state.inspection;
  note.classList.remove("problem");
  if (!info) return;
  if (info.error) {
    const where = info.error.line ? `line ${info.error.line}: ` : "";
    note.textContent =
      info.error.type === "syntax_error"
        ? `The code does not parse (${where}${info.error.message}); fix it to get the form.`
        : `main's parameters cannot be read now (${info.error.message}).`;
    note.classList.add("problem");
    form.replaceChildren();
    state.formKeys = "";
    return;
  }
  const schema = info.input_schema ?? {};
  const properties = schema.properties ?? {};
  const names = Object.keys(properties);
  if (!info.has_main) {
    note.textContent = "Script style (no main): every input is a variable. Give the inputs in the JSON tab.";
  } else if (!names.length) {
    note.textContent = schema.additionalProperties === false ? "main takes no inputs." : "main's parameters cannot be read; use the JSON tab.";
  } else {
    const open = schema.additionalProperties !== false ? " Other inputs: the JSON tab." : "";
    note.textContent = `The parameters of main (* required). Empty fields use main's defaults.${open}`;
  }
  const keys = JSON.stringify([names, schema.required ?? [], names.map((n) => typeOf(properties[n]))]);
  if (keys === state.formKeys && form.children.length === names.length) {
    syncFormValues();
    return;
  }
  state.formKeys = keys;
  const required = new Set(schema.required ?? []);
  form.replaceChildren(
    ...names.map((name, index) => {
      const prop = properties[name] ?? {};
      const id = `field-${index}`;
      const kind = typeOf(prop);
      const helpParts = [describeSchema(prop)];
      if ("default" in prop) helpParts.push(`default ${JSON.stringify(prop.default)}`);
      if (prop.description) helpParts.push(prop.description);
      const common = {
        id,
        name,
        "data-input": name,
        "data-kind": kind,
        "aria-describedby": `${id}-help`,
        required: required.has(name),
        oninput: onFormInput,
        onchange: onFormInput,
      };
      let control;
      if (kind === "boolean" || kind === "enum") {
        const options = kind === "boolean" ? [true, false] : prop.enum;
        control = h(
          "select",
          common,
          h("option", { value: "" }, required.has(name) ? "(choose)" : "(default)"),
          options.map((v) => h("option", { value: JSON.stringify(v) }, JSON.stringify(v))),
        );
      } else if (kind === "json") {
        control = h("textarea", { ...common, rows: 2, spellcheck: "false", placeholder: "JSON" });
      } else {
        const number = kind === "integer" || kind === "number";
        control = h("input", {
          ...common,
          type: number ? "number" : "text",
          step: kind === "integer" ? "1" : number ? "any" : undefined,
          inputmode: kind === "integer" ? "numeric" : undefined,
          placeholder: "default" in prop ? String(JSON.stringify(prop.default)) : undefined,
          autocomplete: "off",
        });
      }
      return h(
        "div",
        { class: "field" },
        h("label", { for: id, class: required.has(name) ? "required" : undefined }, name),
        control,
        h("p", { class: "help", id: `${id}-help` }, helpParts.join(" · ")),
      );
    }),
  );
  syncFormValues();
}

/** Put the JSON inputs' values into the form (except the field being typed in). */
function syncFormValues() {
  let inputs;
  try {
    inputs = parseInputs();
  } catch {
    return;
  }
  for (const control of $("#inputs-form").querySelectorAll("[data-input]")) {
    if (control === document.activeElement) continue;
    const name = control.dataset.input;
    const has = Object.hasOwn(inputs, name);
    const value = inputs[name];
    const kind = control.dataset.kind;
    if (kind === "string") control.value = has && typeof value === "string" ? value : has ? JSON.stringify(value) : "";
    else if (kind === "integer" || kind === "number") control.value = has && value !== null ? String(value) : "";
    else if (kind === "boolean" || kind === "enum") control.value = has ? JSON.stringify(value) : "";
    else control.value = has ? JSON.stringify(value) : "";
    control.removeAttribute("aria-invalid");
  }
}

function onFormInput(event) {
  const control = event.target;
  let inputs;
  try {
    inputs = parseInputs();
  } catch {
    inputs = {}; // the form replaces JSON that does not parse
  }
  const name = control.dataset.input;
  const kind = control.dataset.kind;
  const raw = control.value;
  control.removeAttribute("aria-invalid");
  if (raw === "" && !(kind === "string" && control.required)) {
    delete inputs[name];
  } else if (kind === "string") {
    inputs[name] = raw;
  } else if (kind === "integer" || kind === "number") {
    const number = Number(raw);
    if (raw.trim() === "" || Number.isNaN(number)) {
      control.setAttribute("aria-invalid", "true");
      return;
    }
    inputs[name] = number;
  } else {
    try {
      inputs[name] = JSON.parse(raw);
    } catch {
      control.setAttribute("aria-invalid", "true");
      return;
    }
  }
  inputsArea.value = pretty(inputs);
  onInputsChanged();
}

// -- tabs -----------------------------------------------------------------------------

function setupTabs(tablist, onSelect) {
  const tabs = [...tablist.querySelectorAll('[role="tab"]')];
  const select = (tab, focus = false) => {
    for (const other of tabs) {
      const selected = other === tab;
      other.setAttribute("aria-selected", String(selected));
      other.tabIndex = selected ? 0 : -1;
      document.getElementById(other.getAttribute("aria-controls")).hidden = !selected;
    }
    if (focus) tab.focus();
    onSelect?.(tab);
  };
  for (const tab of tabs) {
    tab.addEventListener("click", () => select(tab));
    tab.addEventListener("keydown", (event) => {
      const at = tabs.indexOf(tab);
      let next = null;
      if (event.key === "ArrowRight") next = tabs[(at + 1) % tabs.length];
      else if (event.key === "ArrowLeft") next = tabs[(at - 1 + tabs.length) % tabs.length];
      else if (event.key === "Home") next = tabs[0];
      else if (event.key === "End") next = tabs[tabs.length - 1];
      if (next) {
        event.preventDefault();
        select(next, true);
      }
    });
  }
  return select;
}

// -- the library ----------------------------------------------------------------------

let librarySeq = 0;

async function refreshLibrary() {
  const seq = ++librarySeq;
  const query = $("#library-search").value.trim();
  const note = $("#library-note");
  const list = $("#library-list");
  let answer;
  try {
    answer = await api("GET", `v1/snippets${query ? `?q=${encodeURIComponent(query)}` : ""}`);
  } catch (exc) {
    if (seq !== librarySeq) return;
    renderList(list, "", []);
    note.textContent = `The library cannot be read: ${exc.message}`;
    note.classList.add("problem");
    return;
  }
  if (seq !== librarySeq) return;
  note.classList.remove("problem");
  const snippets = answer.snippets ?? [];
  note.textContent = snippets.length
    ? `${snippets.length} snippet${snippets.length === 1 ? "" : "s"}${query ? ` matching “${query}”` : ""}`
    : query
      ? `No snippet matches “${query}”.`
      : "The library is empty: save a snippet that works with “Save to library…”.";
  renderList(
    list,
    JSON.stringify([snippets, state.openSnippet]),
    snippets.map((s) =>
      h(
        "li",
        {},
        h(
          "button",
          {
            type: "button",
            "data-snippet": s.name,
            "data-key": s.name,
            "aria-current": state.openSnippet === s.name ? "true" : undefined,
            onclick: () => openSnippet(s.name),
          },
          h("span", { class: "item-title" }, s.name, h("span", { class: "badge" }, `v${s.version}`), h("span", { class: "badge" }, s.language)),
          s.description ? h("span", { class: "item-sub" }, s.description.split("\n")[0]) : null,
        ),
      ),
    ),
  );
}
const scheduleLibrary = debounce(refreshLibrary, 250);

async function openSnippet(name) {
  const detail = $("#snippet-detail");
  state.openSnippet = name;
  for (const button of $("#library-list").querySelectorAll("button[data-snippet]")) {
    button.setAttribute("aria-current", String(button.dataset.snippet === name));
  }
  detail.hidden = false;
  detail.replaceChildren(h("p", { class: "note" }, `Loading ${name}…`));
  let versions;
  try {
    versions = (await api("GET", `v1/snippets/${encodeURIComponent(name)}/versions`)).versions ?? [];
  } catch (exc) {
    detail.replaceChildren(h("p", { class: "note problem" }, `${name}: ${exc.message}`));
    return;
  }
  const latest = versions[0];
  detail.replaceChildren(
    h("h3", { id: "snippet-detail-title" }, name),
    latest?.description ? h("p", { class: "description" }, latest.description) : null,
    h(
      "div",
      { class: "actions" },
      h(
        "button",
        { type: "button", class: "small", onclick: () => runSnippet(name), "aria-describedby": "run-by-name-note" },
        "Run by name",
      ),
      h("span", { class: "note", id: "run-by-name-note" }, "the latest version, with the current inputs"),
    ),
    h(
      "ul",
      { class: "versions", "aria-label": `Versions of ${name}` },
      versions.map((v) =>
        h(
          "li",
          { "data-version": v.version },
          h(
            "div",
            { class: "version-head" },
            h("strong", {}, `Version ${v.version}`),
            h("span", { class: "badge" }, v.language),
          ),
          h("span", { class: "item-sub" }, `${formatTime(v.created_at)} · ${v.examples?.length ?? 0} example(s), ${v.examples_passed ?? 0} passed`),
          h(
            "div",
            { class: "actions" },
            h("button", { type: "button", class: "small", onclick: () => loadVersion(v), "aria-label": `Load version ${v.version} of ${name}` }, "Load into editor"),
            h("button", { type: "button", class: "small", onclick: () => runSnippet(name, v.version), "aria-label": `Run version ${v.version} of ${name}` }, "Run"),
          ),
          (v.examples ?? []).map((example, i) =>
            h(
              "details",
              {},
              h("summary", {}, `Example ${i + 1}${example.name ? `: ${example.name}` : ""}`),
              h("pre", {}, `inputs: ${pretty(example.inputs ?? {})}\nexpected: ${pretty(example.expected ?? null)}`),
            ),
          ),
        ),
      ),
    ),
  );
}

function loadVersion(snippet) {
  state.loaded = snippet;
  languageSelect.value = snippet.language;
  editor.setLanguage(snippet.language);
  editor.setCode(snippet.code);
  const example = (snippet.examples ?? [])[0];
  setInputs(example ? example.inputs ?? {} : {});
  setStatus(`Loaded ${snippet.name} version ${snippet.version} into the editor.`);
  state.lastRun = null;
  scheduleInspect();
  writeFragment();
  editor.focus();
}

async function runSnippet(name, version) {
  let inputs;
  try {
    inputs = parseInputs();
  } catch (exc) {
    showRequestError(new ApiError(0, { type: "invalid_inputs", message: exc.message }), "Run");
    return;
  }
  setRunning(true);
  setStatus(`Running ${name}…`);
  try {
    const body = version ? { inputs, version } : { inputs };
    const result = await api("POST", `v1/snippets/${encodeURIComponent(name)}/run`, body);
    const ran = result.snippet ? `${result.snippet.name} v${result.snippet.version}` : name;
    const sameCode = state.loaded?.name === name && state.loaded.code === editor.code &&
      (!result.snippet || result.snippet.version === state.loaded.version);
    showResult(result, { origin: sameCode ? "editor" : "library", title: `library run of ${ran}` });
    refreshHistory();
  } catch (exc) {
    showRequestError(exc, `Run of ${name}`);
  } finally {
    setRunning(false);
  }
}

// -- saving to the library --------------------------------------------------------------

function currentRunMatches() {
  const run = state.lastRun;
  if (!run) return false;
  try {
    return run.language === currentLanguage() && run.code === editor.code && sameJson(run.inputs, parseInputs());
  } catch {
    return false;
  }
}

function openSaveDialog() {
  const dialog = $("#save-dialog");
  $("#save-error").textContent = "";
  // A snippet loaded since the dialog was last filled: its name and description, not
  // whatever an earlier opening left in the fields.
  if (state.loaded && state.prefilledFor !== state.loaded) {
    $("#save-name").value = state.loaded.name;
    $("#save-description").value = state.loaded.description ?? "";
    state.prefilledFor = state.loaded;
  }
  const matches = currentRunMatches() && state.lastRun.result.ok;
  $("#save-summary").textContent = matches
    ? `The example: these inputs → ${abbreviate(JSON.stringify(state.lastRun.result.result), 100)}`
    : "The code runs first with the current inputs; its result becomes the example.";
  dialog.returnValue = "";
  dialog.showModal();
  $("#save-name").focus();
}

// Saving under another name than the loaded snippet's is a new snippet: the loaded one's
// description, untouched, does not go with it (and comes back with the name).
function onSaveNameChanged() {
  const loaded = state.loaded;
  if (!loaded) return;
  const description = $("#save-description");
  const theirs = loaded.description ?? "";
  if ($("#save-name").value.trim() !== loaded.name && description.value === theirs) description.value = "";
  else if ($("#save-name").value.trim() === loaded.name && description.value === "") description.value = theirs;
}

async function submitSave() {
  const errorBox = $("#save-error");
  const name = $("#save-name").value.trim();
  errorBox.textContent = "";
  if (!NAME_PATTERN.test(name)) {
    errorBox.textContent = "The name must be lowercase letters, digits, - or _, starting with a letter (at most 63).";
    $("#save-name").setAttribute("aria-invalid", "true");
    $("#save-name").focus();
    return;
  }
  $("#save-name").removeAttribute("aria-invalid");
  const submit = $("#save-submit");
  submit.disabled = true;
  try {
    const examples = [];
    if ($("#save-example").checked) {
      if (!(currentRunMatches() && state.lastRun.result.ok)) {
        errorBox.textContent = "Running the code…";
        const result = await run();
        if (!result) {
          errorBox.textContent = "The code could not run with these inputs; see the Error panel.";
          return;
        }
        if (!result.ok) {
          errorBox.textContent = `The run failed (${result.error?.type}: ${result.error?.message}); fix it first, or save without an example.`;
          return;
        }
        errorBox.textContent = "";
      }
      const fresh = { inputs: state.lastRun.inputs, expected: state.lastRun.result.result };
      // A reload of a library snippet keeps its examples (an example read back with
      // `"expected": null` is kept without `expected`: it then only has to succeed).
      if (state.loaded?.name === name) {
        for (const old of state.loaded.examples ?? []) {
          if (sameJson(old.inputs, fresh.inputs)) continue;
          const kept = { inputs: old.inputs };
          if (old.name) kept.name = old.name;
          if (old.expected !== null && old.expected !== undefined) kept.expected = old.expected;
          examples.push(kept);
        }
      }
      examples.push(fresh);
    }
    const body = {
      language: currentLanguage(),
      code: editor.code,
      description: $("#save-description").value,
      examples,
    };
    const saved = await api("PUT", `v1/snippets/${encodeURIComponent(name)}`, body);
    state.loaded = saved;
    $("#save-dialog").close("saved");
    setStatus(`Saved to the library: ${saved.name} version ${saved.version} (${saved.examples_passed} example(s) passed).`, "ok");
    $("#library-search").value = "";
    await refreshLibrary();
    openSnippet(saved.name);
  } catch (exc) {
    errorBox.textContent = exc.error?.message || exc.message;
  } finally {
    submit.disabled = false;
  }
}

// -- recent executions ------------------------------------------------------------------

let historySeq = 0;

async function refreshHistory() {
  const seq = ++historySeq;
  const note = $("#history-note");
  const list = $("#history-list");
  let answer;
  try {
    answer = await api("GET", "v1/executions?limit=20");
  } catch (exc) {
    if (seq !== historySeq) return;
    note.textContent = `The history cannot be read: ${exc.message}`;
    note.classList.add("problem");
    return;
  }
  if (seq !== historySeq) return;
  note.classList.remove("problem");
  const executions = answer.executions ?? [];
  note.textContent = executions.length ? `The last ${executions.length}, newest first` : "No executions yet.";
  renderList(
    list,
    JSON.stringify([executions, state.openExecution]),
    executions.map((e) =>
      h(
        "li",
        {},
        h(
          "button",
          {
            type: "button",
            "data-execution": e.execution_id,
            "data-key": e.execution_id,
            "aria-current": state.openExecution === e.execution_id ? "true" : undefined,
            onclick: () => openExecution(e.execution_id),
          },
          h(
            "span",
            { class: "item-title" },
            h("span", { class: `badge ${e.ok ? "ok" : "failed"}` }, e.ok ? "ok" : e.error_type ?? "failed"),
            e.snippet ? `${e.snippet} v${e.version}` : e.language,
          ),
          h(
            "span",
            { class: "item-sub" },
            `${formatTime(e.started_at)} · ${Number(e.duration_ms).toFixed(1)} ms · ${e.surface}${e.snippet ? ` · ${e.language}` : ""}`,
          ),
        ),
      ),
    ),
  );
}

async function openExecution(id) {
  state.openExecution = id;
  for (const button of $("#history-list").querySelectorAll("button[data-execution]")) {
    button.setAttribute("aria-current", String(button.dataset.execution === id));
  }
  try {
    const record = await api("GET", `v1/executions/${encodeURIComponent(id)}`);
    const what = record.snippet ? `${record.snippet} v${record.version}` : record.language;
    showResult(record.result, {
      origin: "history",
      title: `from history: ${what}, ${formatTime(record.started_at)}`,
      inputs: record.inputs,
    });
  } catch (exc) {
    showRequestError(exc, "Opening the execution");
  }
}

// -- sharing --------------------------------------------------------------------------

async function copyLink() {
  writeFragment();
  try {
    await navigator.clipboard.writeText(location.href);
    setStatus("Link copied: it opens this language, code and inputs.");
  } catch {
    setStatus("The address bar holds the link to this language, code and inputs: copy it from there.");
  }
}

// -- start ----------------------------------------------------------------------------

function start() {
  editor = createEditor($("#editor"), {
    doc: SAMPLES.python,
    language: "python",
    label: "Code",
    onRun: run,
    onChange: () => {
      scheduleFragment();
      scheduleInspect();
    },
  });

  if (!applyFragment()) {
    inputsArea.value = DEFAULT_INPUTS;
    onInputsChanged();
    scheduleInspect();
  }

  languageSelect.addEventListener("change", () => {
    const previous = editor.language;
    const language = currentLanguage();
    const code = editor.code.trim();
    editor.setLanguage(language);
    // The other language's untouched sample (or nothing) becomes this language's sample.
    if (!code || code === SAMPLES[previous]?.trim()) editor.setCode(SAMPLES[language]);
    state.lastRun = null;
    scheduleInspect();
    writeFragment();
  });
  inputsArea.addEventListener("input", onInputsChanged);
  $("#run").addEventListener("click", run);
  $("#share").addEventListener("click", copyLink);
  $("#save").addEventListener("click", openSaveDialog);
  $("#key-button").addEventListener("click", async () => {
    const key = await askForKey(false);
    if (key) {
      refreshLibrary();
      refreshHistory();
    }
  });
  $("#key-forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORAGE);
    $("#key-dialog").close("cancel");
    updateKeyButton();
    setStatus("The API key is forgotten.");
  });
  $("#key-cancel").addEventListener("click", () => $("#key-dialog").close("cancel"));
  $("#save-cancel").addEventListener("click", () => $("#save-dialog").close("cancel"));
  $("#save-form").addEventListener("submit", (event) => {
    event.preventDefault(); // the dialog closes once the save succeeds
    submitSave();
  });
  $("#library-search").addEventListener("input", scheduleLibrary);
  $("#save-name").addEventListener("input", onSaveNameChanged);
  $("#history-refresh").addEventListener("click", refreshHistory);
  $(".skip-link").addEventListener("click", (event) => {
    event.preventDefault();
    editor.focus();
  });

  setupTabs($(".inputs-panel .tabs"), (tab) => {
    if (tab.id === "tab-form") renderForm();
  });
  setupTabs($(".side-tabs"), (tab) => {
    if (tab.id === "tab-history") refreshHistory();
  });

  // Ctrl/Cmd+Enter runs from anywhere on the page (the editor handles its own).
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey) || event.defaultPrevented) return;
    if (document.querySelector("dialog[open]")) return;
    event.preventDefault();
    run();
  });
  window.addEventListener("hashchange", () => {
    if (location.hash !== lastFragment) applyFragment();
  });

  updateKeyButton();
  refreshLibrary();
  refreshHistory();
  document.body.dataset.ready = "true";
}

start();
