// The live page in headless Chromium (Debian's `chromium`, driven by playwright-core):
// a user teaches edge-tl two labels from a "camera" and sees the answer change, then picks
// the run's second camera (a folder of dog photos, sharing the head) on the page.
//
//   node tests/browser/page.test.mjs path/to/edge-tl
//
// The camera is an MJPEG server in this script whose picture the test switches between cat
// photos and dog photos from $EDGE_TL_SHARED/data (default ../shared). Screenshots of each
// step go to $EDGE_TL_SCREENSHOTS (default: a temporary folder, printed).

import { spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const bin = path.resolve(process.argv[2] ?? "target/debug/edge-tl");
const shared = path.resolve(process.env.EDGE_TL_SHARED ?? "../shared");
const work = fs.mkdtempSync(path.join(os.tmpdir(), "edge-tl-page-"));
const shots = process.env.EDGE_TL_SCREENSHOTS ?? path.join(work, "screenshots");
fs.mkdirSync(shots, { recursive: true });

function photos(label, n) {
  const dir = path.join(shared, "data/catsdogs/test", label);
  return fs.readdirSync(dir).sort().filter((f) => f.endsWith(".jpg")).slice(0, n)
    .map((f) => fs.readFileSync(path.join(dir, f)));
}
const cats = photos("cat", 8);
const dogs = photos("dog", 8);
let scene = cats;

const BOUNDARY = "edgetlframe";
const camera = http.createServer((req, res) => {
  res.writeHead(200, { "Content-Type": `multipart/x-mixed-replace; boundary=${BOUNDARY}` });
  let i = 0;
  const timer = setInterval(() => {
    const jpeg = scene[i++ % scene.length];
    res.write(`--${BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: ${jpeg.length}\r\n\r\n`);
    res.write(jpeg);
    res.write("\r\n");
  }, 100);
  req.on("close", () => clearInterval(timer));
});
await new Promise((ok) => camera.listen(0, "127.0.0.1", ok));
const cameraUrl = `http://127.0.0.1:${camera.address().port}/stream.mjpg`;

const port = await new Promise((ok) => {
  const s = http.createServer().listen(0, "127.0.0.1", () => {
    const p = s.address().port;
    s.close(() => ok(p));
  });
});
const base = `http://127.0.0.1:${port}/`;
let log = "";
const service = spawn(bin, [
  "run", "--camera", `door=${cameraUrl}`,
  "--camera", `hall=dir:${path.join(shared, "data/catsdogs/test/dog")}`, "--loop", "--replay-fps", "4",
  "--http", `127.0.0.1:${port}`,
  "--data", path.join(work, "dataset"), "--head", path.join(work, "home.head"),
], {
  env: { ...process.env, EDGE_TL_MODELS: path.join(shared, "models"), RUST_LOG: "warn" },
  stdio: ["ignore", "ignore", "pipe"],
});
service.stderr.on("data", (d) => { log += d; });

let browser;
let step = 0;
async function shot(page, name) {
  await new Promise((ok) => setTimeout(ok, 400)); // let the preview catch up with the label
  await page.screenshot({ path: path.join(shots, `${String(++step).padStart(2, "0")}-${name}.png`) });
}

async function healthy() {
  for (let i = 0; i < 600; i++) {
    try {
      const r = await fetch(`${base}healthz`);
      if (r.ok) return;
    } catch { /* not listening yet */ }
    await new Promise((ok) => setTimeout(ok, 100));
  }
  throw new Error("the service did not become healthy in 60 s");
}

async function labelIs(page, want) {
  await page.waitForFunction((w) => document.querySelector("#label").textContent === w, want,
    { timeout: 60_000 });
}

async function capture(page, label) {
  await page.fill("#new-label", label);
  await page.click("#add-label");
  await page.fill("#count", "6");
  await page.click(`button[data-capture="${label}"]`);
  await page.waitForFunction((l) => document.querySelector("#message").textContent
    .startsWith(`saved 6 pictures of ${l}`), label, { timeout: 60_000 });
  // The table is refreshed from the device after each capture.
  await page.waitForFunction((l) => [...document.querySelectorAll("#labels tr")]
    .some((r) => r.textContent.startsWith(`${l}6 pictures`)), label, { timeout: 10_000 });
}

try {
  await healthy();
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = await browser.newPage({ viewport: { width: 720, height: 1100 } });
  page.on("pageerror", (e) => { throw new Error(`page error: ${e.message}`); });
  await page.goto(base);

  // Before training: a live picture and ImageNet's names for it.
  await page.waitForFunction(() => {
    const img = document.querySelector("#preview");
    return img.naturalWidth > 0 && document.querySelector("#label").textContent !== "…"
      && document.querySelectorAll("#bars .bar").length === 3;
  }, null, { timeout: 60_000 });
  const before = await page.textContent("#label");
  if (before === "cat" || before === "dog") throw new Error(`an untrained label: ${before}`);
  await shot(page, "imagenet");

  await capture(page, "cat");
  scene = dogs;
  await new Promise((ok) => setTimeout(ok, 700));
  await capture(page, "dog");
  const counts = await page.$$eval("#labels tr", (rows) => rows.map((r) => r.textContent));
  if (counts.join("|") !== "cat6 picturesCapture cat|dog6 picturesCapture dog") {
    throw new Error(`label table: ${counts.join("|")}`);
  }
  await shot(page, "captured");

  await page.click("#train");
  await page.waitForFunction(() => ["done", "failed"].includes(
    document.querySelector("#train-status").dataset.state), null, { timeout: 120_000 });
  const status = await page.textContent("#train-status");
  const accuracy = Number(/accuracy ([\d.]+)%/.exec(status)?.[1]);
  if (!(accuracy >= 80)) throw new Error(`training: ${status}`);
  const perClass = await page.$$eval("#per-class tr", (rows) => rows.map((r) => r.textContent));
  if (perClass.length !== 2 || !perClass[0].startsWith("catprecision")) {
    throw new Error(`per-label table: ${perClass.join("|")}`);
  }

  await labelIs(page, "dog");
  await shot(page, "dog");
  scene = cats;
  await labelIs(page, "cat");
  await shot(page, "cat");

  // The other camera: a link per camera, the current one marked; the link opens its page.
  await page.waitForFunction(() => document.querySelectorAll("#cameras a").length === 2
    && document.querySelector("#cameras a.current")?.dataset.camera === "door", null,
    { timeout: 10_000 });
  await page.click(`#cameras a[data-camera="hall"]`);
  await page.waitForURL(/\?camera=hall$/);
  await labelIs(page, "dog");
  await page.waitForFunction(() => document.querySelector("#preview").naturalWidth > 0
    && document.querySelector("#cameras a.current")?.dataset.camera === "hall", null,
    { timeout: 10_000 });
  await shot(page, "hall");
  console.log(`browser test passed: ImageNet said "${before}"; after teaching, ${status}; ` +
    `the page followed the camera from dog to cat, and showed the second camera's dogs. ` +
    `Screenshots: ${shots}`);
} catch (e) {
  console.error(`browser test FAILED: ${e.stack ?? e}\n--- edge-tl stderr ---\n${log}`);
  process.exitCode = 1;
} finally {
  await browser?.close();
  service.kill("SIGTERM");
  camera.closeAllConnections?.();
  camera.close();
}
