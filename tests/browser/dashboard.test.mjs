// dashboard.test.mjs - the web dashboard (issue 10 item 6) in a real
// headless Chromium, driven by playwright-core against Debian's
// /usr/bin/chromium, served by real branchsyncd daemons on 127.0.0.1.
//
// A hub "head" and a branch "tallinn" (daemons running, paired both ways)
// and a branch "tartu" paired at the head but never started; the head
// declares `contracts` manual, both offices write the same field, and an
// exchange leaves one open conflict.  Then, in the browser:
//   1. the URL `branchsync dashboard` prints logs in (the fragment leaves
//      the address bar), the peers are listed worst first (tartu, never
//      reached, before tallinn, in step), the exchange shows in the
//      timeline;
//   2. the conflict resolved with its "Keep tallinn" button leaves the
//      inbox, and `branchsync conflicts --json` shows it resolved;
//   3. the record browser shows `contracts`, and a record written with the
//      CLI appears in it through the change feed, without a reload;
//   3b. a duplicate of a unique key made with the CLI at the head
//      (`collection customers --unique tax_code`, a second record given
//      the same tax code with `put --force`) shows both records, the key
//      and its value; "Keep C1 (merge C2 into it)" merges them, after
//      which `branchsync conflicts --json` lists no open conflict and
//      `get customers C2` exits 1 naming C1;
//   4. without a token the page asks for one, refuses a wrong one, and
//      takes the right one;
//   5. the token is in no URL the page requested and in no daemon log,
//      the page logged no error (a Content-Security-Policy violation
//      included), and no daemon log holds a sanitizer report.
//
// Run by tests/browser/run.sh (ctest browser.dashboard).  Every wait is
// bounded.  BS_PROC_KEEP=1 keeps the nodes' directory;
// BS_BROWSER_SCREENSHOT=FILE.png saves the page as test 3 sees it.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import net from "node:net";
import os from "node:os";
import path from "node:path";

const need = (v) => {
  const x = process.env[v];
  if (!x) throw new Error(`${v} is not set (run through ctest: tests/browser/run.sh)`);
  return x;
};
const CLI = need("BS_CLI");
const DAEMON = need("BS_DAEMON");
const CHROMIUM = need("BS_CHROMIUM");
const require = createRequire(path.join(need("BS_BROWSER_MODULES"), "index.js"));
const { chromium } = require("playwright-core");

const WAIT_MS = 30000;
const base = mkdtempSync(path.join(os.tmpdir(), "bsbrowser."));
const nodes = [];
let browser = null;
let failed = false;

/* ---- processes ---- */

function cli(n, ...args) {
  return new Promise((resolve) => {
    execFile(CLI, ["-d", n.dir, ...args], { timeout: 60000 }, (err, out, errOut) =>
      resolve({ code: err ? (err.code ?? -1) : 0, out, err: errOut }),
    );
  });
}

async function cliOk(n, ...args) {
  const r = await cli(n, ...args);
  assert.equal(r.code, 0, `branchsync -d ${n.name} ${args.join(" ")} exited ${r.code}: ${r.err}${r.out}`);
  return r.out;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, fn, ms = WAIT_MS) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() >= end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

// A port that listens now, from 20000-31999: not the range the kernel
// gives outgoing connections (and port 0), where another test's daemon
// could take it before ours binds (tests/proc/proc_util.h, p_free_port).
let nextPort = 20000 + Math.floor(Math.random() * 12000);

function tryListen(port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.on("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

async function freePort() {
  for (let tries = 0; tries < 12000; tries++) {
    const port = 20000 + (nextPort++ % 12000);
    if (await tryListen(port)) return port;
  }
  throw new Error("no free port in 20000-31999");
}

async function makeNode(name, hub) {
  const n = { name, dir: path.join(base, name), log: path.join(base, `${name}.log`), proc: null };
  n.port = await freePort();
  n.http = await freePort();
  n.endpoint = `tcp://127.0.0.1:${n.port}`;
  await cliOk(n, "init", "--name", name, "--role", hub ? "hub" : "branch", "--listen", n.endpoint, "--http", `127.0.0.1:${n.http}`);
  n.id = JSON.parse(await cliOk(n, "id", "--json")).id;
  nodes.push(n);
  return n;
}

const logOf = (n) => (existsSync(n.log) ? readFileSync(n.log, "utf8") : "");

async function startDaemon(n) {
  const fd = openSync(n.log, "a");
  n.proc = spawn(DAEMON, ["-d", n.dir], { stdio: ["ignore", fd, fd] });
  closeSync(fd);
  n.exited = null;
  n.proc.on("exit", (code, sig) => (n.exited = sig ?? code));
  await waitFor(`${n.name}'s daemon to listen`, () => {
    if (n.exited !== null) throw new Error(`${n.name}'s daemon exited (${n.exited}):\n${logOf(n)}`);
    return existsSync(path.join(n.dir, "control.sock")) && logOf(n).includes("listening on");
  });
  await waitFor(`${n.name}'s HTTP API`, () =>
    fetch(`http://127.0.0.1:${n.http}/health`).then(
      () => true,
      () => false,
    ),
  );
}

async function stopDaemon(n) {
  if (n.proc === null || n.exited !== null) return;
  n.proc.kill("SIGTERM");
  const end = Date.now() + 15000;
  while (n.exited === null && Date.now() < end) await sleep(50);
  if (n.exited === null) n.proc.kill("SIGKILL");
}

process.on("exit", () => nodes.forEach((n) => n.proc && n.exited === null && n.proc.kill("SIGKILL")));

/* ---- the scene: two offices, one open conflict ---- */

let head, tallinn, tartu, conflictId, page, requested = [], pageErrors = [];

before(async () => {
  head = await makeNode("head", true);
  tallinn = await makeNode("tallinn", false);
  tartu = await makeNode("tartu", false); /* paired, never started */
  await cliOk(head, "peer", "add", "tallinn", tallinn.endpoint, tallinn.id, "--schedule", "manual");
  await cliOk(head, "peer", "add", "tartu", tartu.endpoint, tartu.id, "--schedule", "manual");
  await cliOk(tallinn, "peer", "add", "head", head.endpoint, head.id, "--schedule", "manual", "--hub");
  await startDaemon(head);
  await startDaemon(tallinn);
  await cliOk(head, "collection", "contracts", "--policy", "manual");
  await cliOk(tallinn, "sync", "head"); /* joins; the rules arrive */
  await cliOk(head, "put", "contracts", "k1", '{"city":"Tartu","owner":"head"}');
  await cliOk(tallinn, "put", "contracts", "k1", '{"city":"Tallinn"}');
  await cliOk(tallinn, "sync", "head");
  const open = JSON.parse(await cliOk(head, "conflicts", "--json"));
  assert.equal(open.length, 1, `one open conflict at head: ${JSON.stringify(open)}`);
  assert.equal(open[0].field, "city");
  conflictId = open[0].conflict;

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60000,
    /* root in a container: no user namespaces for the sandbox */
    args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
  });
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  for (const n of nodes) await stopDaemon(n);
  if (failed || process.env.BS_PROC_KEEP) {
    for (const n of nodes) {
      const l = logOf(n);
      if (l) console.log(`---- daemon log of ${n.name} (last 4000 bytes) ----\n${l.slice(-4000)}`);
    }
    console.log(`---- test directory kept: ${base} ----`);
  } else {
    rmSync(base, { recursive: true, force: true });
  }
});

/* Each test marks the run failed first, and clears the mark at its end. */
function step(name, fn) {
  test(name, async () => {
    failed = true;
    await fn();
    failed = false;
  });
}

function watch(p) {
  p.on("request", (r) => requested.push(r.url()));
  p.on("pageerror", (e) => pageErrors.push(String(e)));
  p.on("console", (m) => m.type() === "error" && pageErrors.push(m.text()));
}

/* ---- 1 ---- */

step("the dashboard URL logs in and lists the peers worst first", async () => {
  const url = (await cliOk(head, "dashboard")).trim();
  assert.match(url, new RegExp(`^http://127\\.0\\.0\\.1:${head.http}/#token=[0-9a-f]{64}$`));
  page = await browser.newPage();
  watch(page);
  await page.goto(url, { timeout: WAIT_MS });
  await page.locator('tr[data-peer="tallinn"]').waitFor({ timeout: WAIT_MS });
  assert.ok(!page.url().includes("token"), `the fragment left the address bar: ${page.url()}`);
  const order = await page.locator("tr[data-peer]").evaluateAll((rs) =>
    rs.map((r) => `${r.getAttribute("data-peer")}:${r.getAttribute("data-health")}`),
  );
  /* tartu, never reached, is amber (or red, should /health name it) */
  assert.equal(order.length, 2, order.join());
  assert.match(order[0], /^tartu:(warn|bad)$/, `worst first: ${order}`);
  assert.equal(order[1], "tallinn:ok", `worst first: ${order}`);
  await page.locator('.timeline li[data-peer="tallinn"]').first().waitFor({ timeout: WAIT_MS });
  await waitFor("the feed to be live", () => page.locator("#feed-state.live.live").count());
});

/* ---- 2 ---- */

step("a conflict resolved through the page shows as resolved in branchsync conflicts", async () => {
  const card = page.locator(`[data-conflict="${conflictId}"]`);
  await card.waitFor({ timeout: WAIT_MS });
  assert.match(await card.innerText(), /Tallinn/);
  await card.locator(`button[data-take="${tallinn.id}"]`).click();
  await card.waitFor({ state: "detached", timeout: WAIT_MS });
  await page.locator("#no-conflicts").waitFor({ timeout: WAIT_MS });
  const open = JSON.parse(await cliOk(head, "conflicts", "--json"));
  assert.equal(open.length, 0, `no open conflict: ${JSON.stringify(open)}`);
  const all = JSON.parse(await cliOk(head, "conflicts", "--all", "--json"));
  const c = all.find((x) => x.conflict === conflictId);
  assert.ok(c && c.resolved === true, `resolved: ${JSON.stringify(all)}`);
  assert.match(c.resolution, /tallinn/);
  assert.equal(JSON.parse(await cliOk(head, "get", "contracts", "k1")).city, "Tallinn");
});

/* ---- 3 ---- */

step("the record browser follows the change feed", async () => {
  await page.locator("#collection").selectOption("contracts");
  await page.locator('tr[data-id="k1"]').waitFor({ timeout: WAIT_MS });
  await cliOk(head, "put", "contracts", "k-live", '{"note":"written by the CLI"}');
  const row = page.locator('tr[data-id="k-live"]');
  await row.waitFor({ timeout: 10000 });
  assert.match(await row.innerText(), /written by the CLI/);
  if (process.env.BS_BROWSER_SCREENSHOT) /* a PNG of the page, to look at */
    await page.screenshot({ path: process.env.BS_BROWSER_SCREENSHOT, fullPage: true });
  await page.locator("#search").fill("written by");
  await waitFor("the search to keep one row", async () => (await page.locator("tr[data-id]").count()) === 1);
  await cliOk(head, "del", "contracts", "k-live");
  await row.waitFor({ state: "detached", timeout: 10000 });
});

/* ---- 3b ---- */

step("a duplicate is merged through the page", async () => {
  await cliOk(head, "collection", "customers", "--unique", "tax_code");
  await cliOk(head, "put", "customers", "C1", '{"name":"Acme","tax_code":"7701"}');
  const refused = await cli(head, "put", "customers", "C2", '{"name":"ACME Ltd","tax_code":"7701"}');
  assert.equal(refused.code, 2, `a repeated key is refused without --force: ${refused.err}`);
  await cliOk(head, "put", "customers", "C2", '{"name":"ACME Ltd","tax_code":"7701"}', "--force");
  const open = JSON.parse(await cliOk(head, "conflicts", "--json"));
  assert.equal(open.length, 1, `one open duplicate: ${JSON.stringify(open)}`);
  assert.equal(open[0].kind, "duplicate");
  const card = page.locator(`[data-conflict="${open[0].conflict}"]`);
  await card.waitFor({ timeout: WAIT_MS });
  const text = await card.innerText();
  for (const want of ["C1", "C2", "tax_code", "7701"]) assert.ok(text.includes(want), `the card shows ${want}: ${text}`);
  assert.equal(await card.locator("button.take").count(), 0, "no Keep-an-office button for a duplicate");
  const keep = card.locator('button[data-keep="C1"]');
  assert.equal((await keep.innerText()).trim(), "Keep C1 (merge C2 into it)");
  assert.equal((await card.locator('button[data-keep="C2"]').innerText()).trim(), "Keep C2 (merge C1 into it)");
  await keep.click();
  await card.waitFor({ state: "detached", timeout: WAIT_MS });
  await page.locator("#no-conflicts").waitFor({ timeout: WAIT_MS });
  const after = JSON.parse(await cliOk(head, "conflicts", "--json"));
  assert.equal(after.length, 0, `no open conflict: ${JSON.stringify(after)}`);
  const gone = await cli(head, "get", "customers", "C2");
  assert.equal(gone.code, 1, `get of the merged record exits 1: ${gone.out}${gone.err}`);
  assert.match(gone.err, /merged into customers\/C1/);
  assert.equal(JSON.parse(await cliOk(head, "get", "customers", "C1")).name, "Acme");
});

/* ---- 4 ---- */

step("without a token the page asks for one and refuses a wrong one", async () => {
  const ctx = await browser.newContext();
  const p = await ctx.newPage();
  watch(p);
  await p.goto(`http://127.0.0.1:${head.http}/`, { timeout: WAIT_MS });
  const input = p.locator("#token");
  await input.waitFor({ timeout: WAIT_MS });
  await input.fill("0".repeat(64));
  await p.locator("form.login button").click();
  await p.locator("#login-error").waitFor({ timeout: WAIT_MS });
  const token = (await cliOk(head, "api-token")).trim();
  await p.locator("#token").fill(token);
  await p.locator("form.login button").click();
  await p.locator('tr[data-peer="tallinn"]').waitFor({ timeout: WAIT_MS });
  await ctx.close();
  /* the wrong token's 401s are the only errors expected: drop them */
  pageErrors = pageErrors.filter((e) => !/401/.test(e));
});

/* ---- 5 ---- */

step("the token is in no URL and no log; no page error; no sanitizer report", async () => {
  const token = (await cliOk(head, "api-token")).trim();
  const leaked = requested.filter((u) => u.includes(token));
  assert.deepEqual(leaked, [], "requests carrying the token in their URL");
  assert.ok(requested.some((u) => u.includes("/v1/changes?feed=sse")), "the page opened the event stream");
  assert.deepEqual(pageErrors, [], "errors in the page");
  for (const n of nodes) {
    const l = logOf(n);
    assert.ok(!l.includes(token), `${n.name}'s log holds the token`);
    assert.ok(!/ERROR: (Address|Leak)Sanitizer|runtime error:/.test(l), `${n.name}'s log has a sanitizer report`);
    if (n.proc) assert.equal(n.exited, null, `${n.name}'s daemon died`);
  }
});
