// The five dashboards in headless Chromium (Debian's /usr/bin/chromium) against a real
// `novaml demo`: every page loads without console errors, its charts contain data, and the
// feedback, promote/roll-back and tuning buttons change what the API reports. Screenshots go to
// $NOVAML_ARTIFACTS (default target/browser-artifacts).
//
// Run by scripts/test.sh after `cargo test` (which builds target/debug/novaml); NOVAML_BIN picks
// another binary.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";

const ROOT = resolve(import.meta.dirname, "..", "..");
const BIN = process.env.NOVAML_BIN || join(ROOT, "target", "debug", "novaml");
const ARTIFACTS = process.env.NOVAML_ARTIFACTS || join(ROOT, "target", "browser-artifacts");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const TOKEN = "browser-test-token";
const READY_WITHIN_MS = 240_000;

let demo, dataDir, base, browser, readyAfter;
let demoLog = "";

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

async function api(path, init) {
  const r = await fetch(base + path, init);
  const body = await r.json().catch(() => null);
  return { status: r.status, body };
}

async function post(path, body) {
  return api(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: "Bearer " + TOKEN },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

async function until(what, fn, ms) {
  const t0 = Date.now();
  let last;
  while (Date.now() - t0 < ms) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await sleep(1000);
  }
  throw new Error(`timed out waiting for ${what} (last: ${last})\n--- demo log tail ---\n${demoLog.slice(-4000)}`);
}

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  dataDir = mkdtempSync(join(tmpdir(), "novaml-browser-"));
  const t0 = Date.now();
  demo = spawn(BIN, ["demo", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--for", "15m", "--detect-every", "10"], {
    env: { ...process.env, NOVAML_TOKEN: TOKEN, RUST_LOG: "info" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  demo.stderr.on("data", (d) => (demoLog += d));
  base = await new Promise((res, rej) => {
    let out = "";
    demo.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/dashboards:\s+(http:\/\/[^/\s]+)\/dashboards\/pipeline#token=(\S+)/);
      if (m) {
        assert.equal(m[2], TOKEN, "the banner's link carries the API token");
        res(m[1]);
      }
    });
    demo.on("exit", (code) => rej(new Error(`novaml demo exited (${code}) before serving:\n${demoLog}`)));
  });
  // Useful data on every dashboard: models with predictions, incidents, a capacity plan, a
  // finished tuning run.
  await until(
    "data on every dashboard",
    async () => {
      const [m, p, i, c, t] = await Promise.all([api("/api/models"), api("/api/predictions"), api("/api/incidents?limit=1"), api("/api/capacity"), api("/api/tuning")]);
      return m.body?.length > 0 && p.body?.length > 0 && i.body?.length > 0 && c.status === 200 && t.body?.runs?.some((r) => r.status === "done");
    },
    READY_WITHIN_MS
  );
  readyAfter = (Date.now() - t0) / 1000;
  console.log(`every dashboard had data ${readyAfter.toFixed(0)} s after the demo started`);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  await browser?.close();
  demo?.kill("SIGTERM");
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

// Opens a dashboard, waits for its first complete render, returns the page and its console errors.
async function open(name) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const errors = [];
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("dialog", (d) => d.dismiss());
  await page.goto(`${base}/dashboards/${name}#token=${TOKEN}`);
  await page.waitForFunction(() => document.body.dataset.loaded, null, { timeout: 30_000 });
  return { page, errors };
}

async function chartPoints(page) {
  return page.$$eval(".chart", (els) => els.map((e) => [e.id, Number(e.dataset.points || 0), e.querySelector("canvas") != null]));
}

async function bannerText(page) {
  return page.$eval("#banner", (b) => (b.style.display === "block" ? b.textContent : ""));
}

test("pipeline: sources, rates and buffer charts with data", async () => {
  const { page, errors } = await open("pipeline");
  await page.waitForFunction(() => Number(document.getElementById("rate-chart").dataset.points) > 0, null, { timeout: 30_000 });
  for (const [id, n, canvas] of await chartPoints(page)) {
    assert.ok(n > 0 && canvas, `chart ${id} has ${n} points`);
  }
  const rows = await page.$$eval("#sources tbody tr", (r) => r.map((x) => x.textContent));
  assert.ok(rows.some((r) => r.includes("simulator") && r.includes("simulated")), rows.join("\n"));
  assert.ok(rows.some((r) => r.startsWith("host")), rows.join("\n"));
  await page.screenshot({ path: join(ARTIFACTS, "pipeline.png"), fullPage: true });
  assert.equal(await bannerText(page), "");
  assert.deepEqual(errors, []);
  await page.close();
});

test("anomalies: timeline with data, feedback and ack buttons update the incident", async () => {
  const { page, errors } = await open("anomalies");
  const [[id, n]] = await chartPoints(page);
  assert.equal(id, "timeline");
  assert.ok(n > 0, `timeline has ${n} incidents`);
  // Every listed incident is on the timeline, whatever its severity (same fetch as the tile).
  const listed = Number(await page.$eval("#kpis .kpi .v", (e) => e.textContent));
  assert.equal(n, listed, "timeline points = incidents listed");
  const button = page.locator("button[data-fb=fp]").first();
  const incident = Number(await button.getAttribute("data-id"));
  await button.click();
  await until("the fp label", async () => (await api(`/api/incidents/${incident}`)).body?.label === "fp", 15_000);
  await page.waitForFunction((id) => {
    const b = document.querySelector(`button[data-fb=fp][data-id="${id}"]`);
    return b && b.closest("tr").textContent.includes("false positive");
  }, incident, { timeout: 15_000 });
  const ack = page.locator("button[data-ack]").first();
  const acked = Number(await ack.getAttribute("data-ack"));
  await ack.click();
  await until("the acknowledgement", async () => (await api(`/api/incidents/${acked}`)).body?.acknowledged === true, 15_000);
  const stats = await api("/api/incidents/stats");
  assert.equal(stats.status, 200);
  await page.screenshot({ path: join(ARTIFACTS, "anomalies.png"), fullPage: true });
  assert.deepEqual(errors, []);
  await page.close();
});

test("models: prediction, accuracy and training charts with data; roll back and promote", async () => {
  const { page, errors } = await open("models");
  await page.waitForFunction(() => Number(document.getElementById("train-chart").dataset.points) > 0, null, { timeout: 30_000 });
  for (const [id, n, canvas] of await chartPoints(page)) {
    assert.ok(n > 0 && canvas, `chart ${id} has ${n} points`);
  }
  const name = await page.$eval("#ver-name", (e) => e.textContent);
  const before = (await api(`/api/models/${encodeURIComponent(name)}`)).body;
  assert.ok(before.versions.length >= 2, "ridge and ensemble versions");
  const other = before.versions.find((v) => v.version !== before.champion).version;
  await page.locator(`button[data-rollback="${other}"]`).click();
  await until(`${name} serving v${other}`, async () => (await api(`/api/models/${encodeURIComponent(name)}`)).body.champion === other, 15_000);
  const log = (await api(`/api/models/${encodeURIComponent(name)}`)).body.log;
  assert.equal(log[log.length - 1].action, "rollback");
  await page.waitForSelector(`button[data-promote="${before.champion}"]`, { timeout: 15_000 });
  await page.locator(`button[data-promote="${before.champion}"]`).click();
  await until(`${name} serving v${before.champion} again`, async () => (await api(`/api/models/${encodeURIComponent(name)}`)).body.champion === before.champion, 15_000);
  await page.screenshot({ path: join(ARTIFACTS, "models.png"), fullPage: true });
  assert.deepEqual(errors, []);
  await page.close();
});

test("optimizer: trials chart with data; apply under guardrails, then roll back", async () => {
  const { page, errors } = await open("optimizer");
  for (const [id, n, canvas] of await chartPoints(page)) {
    assert.ok(n > 0 && canvas, `chart ${id} has ${n} points`);
  }
  const changes0 = (await api("/api/tuning/changes")).body.length;
  await page.locator("button[data-apply]").first().click();
  const decided = await until(
    "the guarded apply's decision",
    async () => {
      const c = (await api("/api/tuning/changes")).body;
      return c.length > changes0 && c[c.length - 1];
    },
    180_000
  );
  assert.ok(["apply", "rollback", "refuse"].includes(decided.action), JSON.stringify(decided));
  // A refused change leaves nothing to revert; make sure there is a change in effect to undo.
  if (decided.action === "refuse") {
    assert.fail(`the demo's best configuration was refused: ${decided.reason}`);
  }
  await until("the change log on the page", async () => (await page.$$("#changes tbody tr")).length > changes0, 20_000);
  const n1 = (await api("/api/tuning/changes")).body.length;
  await page.locator("#rollback").click();
  const reverted = await until(
    "the revert",
    async () => {
      const c = (await api("/api/tuning/changes")).body;
      return c.length > n1 && c[c.length - 1];
    },
    120_000
  );
  assert.equal(reverted.action, "revert");
  assert.deepEqual(reverted.in_effect, decided.from, "the roll back restores the configuration before the change");
  await page.waitForFunction(() => document.querySelector("#changes tbody tr")?.textContent.includes("revert"), null, { timeout: 20_000 });
  await page.screenshot({ path: join(ARTIFACTS, "optimizer.png"), fullPage: true });
  assert.deepEqual(errors, []);
  await page.close();
});

test("capacity: forecast charts with intervals and thresholds, runway table", async () => {
  const { page, errors } = await open("capacity");
  const charts = await chartPoints(page);
  assert.ok(charts.length >= 2, "cluster and host charts");
  for (const [id, n, canvas] of charts) {
    assert.ok(n > 0 && canvas, `chart ${id} has ${n} points`);
  }
  const rows = await page.$$eval("#runway tbody tr", (r) => r.map((x) => x.textContent));
  assert.ok(rows.some((r) => r.startsWith("cluster")), rows.join("\n"));
  await page.screenshot({ path: join(ARTIFACTS, "capacity.png"), fullPage: true });
  assert.deepEqual(errors, []);
  await page.close();
});

test("dashboards answer 404 as JSON for an unknown page", async () => {
  const r = await api("/dashboards/nope");
  assert.equal(r.status, 404);
  assert.equal(r.body.kind, "not_found");
});

test("Grafana dashboards and alert rules name only exported metrics", async () => {
  // After the tests above every family has samples (tuning changes included).
  const text = await (await fetch(base + "/metrics")).text();
  const exported = new Set(
    text
      .split("\n")
      .filter((l) => l && !l.startsWith("#"))
      .map((l) => l.split(/[{ ]/)[0])
  );
  const dir = join(ROOT, "dashboards", "grafana");
  const files = readdirSync(dir).filter((f) => f.endsWith(".json") || f.endsWith(".yml"));
  assert.deepEqual(files.filter((f) => f.endsWith(".json")).sort(), ["anomalies.json", "capacity.json", "models.json", "optimizer.json", "pipeline.json"]);
  const missing = [];
  let referenced = 0;
  for (const f of files) {
    const body = readFileSync(join(dir, f), "utf8");
    const exprs = f.endsWith(".json")
      ? JSON.parse(body).panels.flatMap((p) => p.targets.map((t) => t.expr))
      : body.split("\n").filter((l) => l.trim().startsWith("expr:"));
    assert.ok(exprs.length > 0, `${f} has expressions`);
    for (const e of exprs)
      for (const m of e.match(/novaml_[a-z0-9_]+/g) || []) {
        referenced++;
        if (!exported.has(m)) missing.push(`${f}: ${m}`);
      }
  }
  assert.ok(referenced > 30, `${referenced} references`);
  assert.deepEqual(missing, [], "metrics named by dashboards or rules but not exported");
  const check = spawnSync("promtool", ["check", "rules", join(dir, "alerts.yml")], { encoding: "utf8" });
  assert.equal(check.status, 0, check.stdout + check.stderr);
});
