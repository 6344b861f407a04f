#!/usr/bin/env node
// `npm run gen:check`: lints the schema and proves that the committed generated code in
// libs/rpc/src/gen is exactly what `npm run gen` produces from proto/ today.
//
// It regenerates into a temporary directory (never touching the working tree) with the same
// template `npm run gen` uses, then compares file lists and bytes. Exit 0 = up to date,
// 1 = lint errors or stale/missing/extra generated files, 2 = the tools themselves failed.

import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const protoDir = "proto";
const template = join(protoDir, "buf.gen.yaml");
const genDir = join("libs", "rpc", "src", "gen");
// The installed CLI, run through this node so no shell or PATH lookup is involved.
const bufBin = join(root, "node_modules", "@bufbuild", "buf", "bin", "buf");

function buf(args) {
  return spawnSync(process.execPath, [bufBin, ...args], { cwd: root, encoding: "utf8" });
}

function report(lines) {
  for (const line of lines) console.error(line);
}

function fail(code, lines) {
  report(lines);
  process.exit(code);
}

/** Relative paths (with "/") of every file under dir; empty when dir doesn't exist. */
function listFiles(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) =>
      relative(dir, join(entry.parentPath ?? entry.path, entry.name))
        .split(sep)
        .join("/"),
    )
    .sort();
}

if (!existsSync(bufBin)) {
  fail(2, [`gen:check: ${bufBin} is missing; install the workspace dependencies first.`]);
}

const lint = buf(["lint", protoDir]);
if (lint.error || lint.status !== 0) {
  const output = `${lint.stdout ?? ""}${lint.stderr ?? ""}`.trim();
  // buf exits 100 for lint findings; anything else means buf itself could not run.
  fail(lint.status === 100 ? 1 : 2, [
    `gen:check: buf lint ${protoDir} failed:`,
    output || String(lint.error),
    "Fix the schema (or, for names frozen by the v1 contract, proto/buf.yaml) and rerun.",
  ]);
}

/** Regenerates into tmp and compares; returns the exit code after printing the outcome. */
function compareWithFresh(tmp) {
  const gen = buf(["generate", protoDir, "--template", template, "-o", tmp]);
  if (gen.error || gen.status !== 0) {
    report([
      "gen:check: buf generate failed:",
      `${gen.stdout ?? ""}${gen.stderr ?? ""}`.trim() || String(gen.error),
    ]);
    return 2;
  }

  const committedDir = join(root, genDir);
  const freshDir = join(tmp, genDir);
  const committed = listFiles(committedDir);
  const fresh = listFiles(freshDir);
  if (fresh.length === 0) {
    report([`gen:check: generation produced no files under ${genDir}; check ${template}.`]);
    return 2;
  }

  const committedSet = new Set(committed);
  const freshSet = new Set(fresh);
  const missing = fresh.filter((file) => !committedSet.has(file));
  const extra = committed.filter((file) => !freshSet.has(file));
  const changed = fresh.filter(
    (file) =>
      committedSet.has(file) &&
      !readFileSync(join(committedDir, file)).equals(readFileSync(join(freshDir, file))),
  );

  if (missing.length + extra.length + changed.length > 0) {
    const show = (label, files) => files.map((file) => `  ${label} ${genDir}/${file}`);
    report([
      `gen:check: ${genDir} is out of date with ${protoDir}/:`,
      ...show("differs:", changed),
      ...show("missing:", missing),
      ...show("not generated:", extra),
      "Run `npm run gen` and commit the result.",
    ]);
    return 1;
  }

  console.log(`gen:check: buf lint clean; ${fresh.length} generated files in ${genDir} are up to date.`);
  return 0;
}

const tmp = mkdtempSync(join(tmpdir(), "pm-gen-check-"));
let code;
try {
  code = compareWithFresh(tmp);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
process.exit(code);
