// build.mjs - npm run build: web/src -> web/dist (minified), which is
// committed and embedded into branchsyncd at build time (node/CMakeLists.txt),
// so building the daemon needs no npm.
import * as esbuild from "esbuild";
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";

mkdirSync("dist", { recursive: true });
await esbuild.build({
  entryPoints: ["src/main.ts"],
  bundle: true,
  minify: true,
  format: "iife",
  target: "es2020",
  legalComments: "none",
  outfile: "dist/app.js",
});
await esbuild.build({
  entryPoints: ["src/style.css"],
  bundle: true,
  minify: true,
  outfile: "dist/app.css",
});
const html = readFileSync("index.html", "utf8")
  .replace(/\n\s*/g, "")
  .trim();
writeFileSync("dist/index.html", html + "\n");
