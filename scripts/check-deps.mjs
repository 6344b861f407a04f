#!/usr/bin/env node
// Dependency-direction rules of STYLE.md, checked on import specifiers:
//   - libs/domain imports nothing runtime-specific (no node:*, no packages) — only relative files;
//   - libs never import apps; an app never imports another app;
//   - only apps/tier-agent and libs/client import the native addon (@pm/native);
//   - nobody reaches into another package's src/ by a relative path.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, resolve } from "node:path";

const root = resolve(import.meta.dirname, "..");
const IMPORT =
  /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g;
const APPS = {
  "@pm/api": "apps/api",
  "@pm/worker": "apps/worker",
  "@pm/tier-agent": "apps/tier-agent",
  "@pm/cli": "apps/cli",
};

function* files(dir) {
  for (const name of readdirSync(dir)) {
    if (name === "node_modules" || name === ".tsbuild" || name === "gen" || name === "build") continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) yield* files(p);
    else if (/\.(ts|mts|mjs)$/.test(name)) yield p;
  }
}

const problems = [];
const packageOf = (rel) => /^(libs\/[^/]+|apps\/[^/]+|native)/.exec(rel)?.[1];

for (const top of ["libs", "apps", "native/lib"]) {
  for (const file of files(join(root, top))) {
    const rel = relative(root, file);
    const pkg = packageOf(rel);
    const isTest = /\.test\.ts$|\/testing\//.test(rel);
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(IMPORT)) {
      const spec = m[1] ?? m[2];
      if (pkg === "libs/domain" && !isTest && !spec.startsWith(".")) {
        problems.push(
          `${rel}: libs/domain must stay runtime-neutral and self-contained, but imports "${spec}"`,
        );
      }
      if (pkg?.startsWith("libs/") && (spec in APPS || spec.includes("apps/"))) {
        problems.push(`${rel}: a lib imports the app "${spec}"`);
      }
      if (pkg?.startsWith("apps/")) {
        for (const [name, dir] of Object.entries(APPS)) {
          if (dir !== pkg && (spec === name || spec.startsWith(`${name}/`)))
            problems.push(`${rel}: app ${pkg} imports another app "${spec}"`);
        }
      }
      if (
        (spec === "@pm/native" || spec.startsWith("@pm/native/")) &&
        !["apps/tier-agent", "libs/client", "native"].includes(pkg) &&
        !isTest
      ) {
        problems.push(`${rel}: only apps/tier-agent and libs/client may import the native addon, not ${pkg}`);
      }
      if (spec.startsWith(".")) {
        const target = relative(root, resolve(file, "..", spec));
        const targetPkg = packageOf(target);
        if (targetPkg && targetPkg !== pkg)
          problems.push(`${rel}: reaches into ${targetPkg} by path ("${spec}"); import its package name`);
      }
    }
  }
}

if (problems.length > 0) {
  console.error(
    `dependency rules violated (${problems.length}):\n${problems.map((p) => `  - ${p}`).join("\n")}`,
  );
  process.exit(1);
}
console.log("dependency rules: ok");
