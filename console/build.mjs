// Builds the console's editor bundle: editor.mjs and the CodeMirror packages it imports
// (exact versions in package.json / package-lock.json) into one minified ES module,
// src/coderunner/_console/static/editor.js, which is committed so that the service
// needs no Node.  Rebuild:  cd console && npm ci && npm run build
//
// The output is deterministic (same lock file → same bytes) and starts with a comment
// naming every bundled package with its version and licence.

import { readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const outfile = join(here, "..", "src", "coderunner", "_console", "static", "editor.js");

const options = {
  entryPoints: [join(here, "editor.mjs")],
  bundle: true,
  format: "esm",
  target: ["es2020"],
  minify: true,
  legalComments: "none",
  charset: "utf8",
  logLevel: "warning",
};

// First pass: which packages end up in the bundle (for the licence banner).
const probe = await esbuild.build({ ...options, write: false, metafile: true });
const packages = new Map();
for (const input of Object.keys(probe.metafile.inputs)) {
  const match = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\//);
  if (!match || packages.has(match[1])) continue;
  const meta = JSON.parse(readFileSync(join(here, "node_modules", match[1], "package.json"), "utf8"));
  packages.set(match[1], `${meta.name}@${meta.version} (${meta.license})`);
}
const banner = [
  "/* Code Runner console: the code editor (CodeMirror 6), built by console/build.mjs.",
  " * Bundled packages and their licences:",
  ...[...packages.keys()].sort().map((name) => ` *   ${packages.get(name)}`),
  " */",
].join("\n");

await esbuild.build({ ...options, outfile, banner: { js: banner } });
console.log(`${outfile}: ${statSync(outfile).size} bytes, ${packages.size} packages`);
