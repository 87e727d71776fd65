// Validates AsyncAPI documents with the AsyncAPI initiative's own parser (@asyncapi/parser).
// Run by tests/deploy.rs: node tests/asyncapi/validate.mjs FILE...
// Prints one JSON object: per file, the diagnostics of severity error or warning; exits 1 on
// any error. NODE_PATH must reach an installed @asyncapi/parser (.ci/run installs it).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { Parser } = require("@asyncapi/parser");

const parser = new Parser();
const report = {};
let failed = false;
for (const file of process.argv.slice(2)) {
  const { document, diagnostics } = await parser.parse(readFileSync(file, "utf8"));
  // Severity 0 is an error, 1 a warning (Spectral's scale).
  const found = diagnostics
    .filter((diagnostic) => diagnostic.severity <= 1)
    .map((diagnostic) => ({
      severity: diagnostic.severity === 0 ? "error" : "warning",
      code: diagnostic.code,
      message: diagnostic.message,
      path: diagnostic.path.join("."),
    }));
  if (!document || found.some((diagnostic) => diagnostic.severity === "error")) {
    failed = true;
  }
  report[file] = {
    parsed: Boolean(document),
    channels: document ? document.channels().all().map((channel) => channel.address()) : [],
    diagnostics: found,
  };
}
console.log(JSON.stringify(report));
process.exit(failed ? 1 : 0);
