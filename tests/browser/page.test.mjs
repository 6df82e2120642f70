// The live page in headless Chromium (Debian's `chromium`, driven by playwright-core):
// a user files frames from the review grid under a label and discards others, captures two
// labels from a "camera", moves and deletes samples in the dataset view, trains (per-label
// numbers, the confusion matrix picture, the picture filed under the wrong label), sees the
// answer change and frames of neither label join the review grid, then picks the run's
// second camera (a folder of dog photos, sharing the head) on the page.
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
// 20 of each: captures 200 ms apart from a 10 frames/s scene take every other one, 10 distinct.
const cats = photos("cat", 20);
const dogs = photos("dog", 20);
// A dog no head mistakes (100% dog even for a head of 20 pictures per label): the one a test
// files under cat by mistake, so that cross-validation surely flags it.
const plainDog = fs.readFileSync(path.join(shared, "data/catsdogs/test/dog/dog.102.jpg"));
// Neither a cat nor a dog.
const roses = fs.readdirSync(path.join(shared, "data/newdomain/test/roses")).sort().slice(0, 6)
  .map((f) => fs.readFileSync(path.join(shared, "data/newdomain/test/roses", f)));
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
const data = path.join(work, "dataset");
const files = (label) => {
  try {
    return fs.readdirSync(path.join(data, label)).filter((f) => !f.startsWith(".")).sort();
  } catch { return []; }
};
const same = (a, b) => JSON.stringify([...a].sort()) === JSON.stringify([...b].sort());
const service = spawn(bin, [
  "run", "--camera", `door=${cameraUrl}`,
  "--camera", `hall=dir:${path.join(shared, "data/catsdogs/test/dog")}`, "--loop", "--replay-fps", "4",
  "--http", `127.0.0.1:${port}`,
  "--data", data, "--head", path.join(work, "home.head"),
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
  await page.fill("#count", "10");
  await page.click(`button[data-capture="${label}"]`);
  await page.waitForFunction((l) => document.querySelector("#message").textContent
    .startsWith(`saved 10 pictures of ${l}`), label, { timeout: 60_000 });
}

async function reviewGridHas(page, n) {
  await page.click("#review-refresh");
  await page.waitForFunction((k) => document.querySelectorAll("#review-grid figure").length >= k
    && [...document.querySelectorAll("#review-grid img")].every((i) => i.complete && i.naturalWidth > 0),
  n, { timeout: 60_000 });
}

const keys = (page, selector) => page.$$eval(selector, (fs) => fs.map((f) => f.dataset.key));

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

  // The review grid fills with the camera's cats while ImageNet's classes answer, unsure.
  await reviewGridHas(page, 4);
  await shot(page, "review-grid");
  // Select the first three (click, shift-click) and file them under a new label.
  await page.fill("#new-label", "cat");
  await page.click("#add-label");
  const figures = await page.$$("#review-grid figure");
  await figures[0].click();
  await figures[2].click({ modifiers: ["Shift"] });
  const chosen = await keys(page, "#review-grid figure.selected");
  if (chosen.length !== 3) throw new Error(`selected ${chosen.length} frames, not 3`);
  await page.selectOption("#review-label", "cat");
  await page.click("#review-assign");
  await page.waitForFunction(() => document.querySelector("#message").textContent
    .startsWith("filed 3 frames under cat"), null, { timeout: 10_000 });
  if (!same(files("cat"), chosen.map((id) => `${id}.jpg`))) {
    throw new Error(`cat/ holds ${files("cat")}, not the chosen ${chosen}`);
  }
  await shot(page, "review-labelled");
  // Discard the rest: gone from the grid and from the queue's folder.
  await page.click("#review-all"); // a selection also holds the grid still
  const rest = await keys(page, "#review-grid figure.selected");
  if (rest.some((id) => chosen.includes(id))) throw new Error("filed frames still in the grid");
  await page.click("#review-discard");
  await page.waitForFunction((n) => document.querySelector("#message").textContent
    === `discarded ${n} frames`, rest.length, { timeout: 10_000 });
  const queued = fs.readdirSync(path.join(data, ".review"));
  const left = rest.filter((id) => queued.includes(`${id}.jpg`) || queued.includes(`${id}.json`));
  if (left.length) throw new Error(`discarded frames still stored: ${left}`);

  await capture(page, "cat");
  scene = dogs;
  // Frames already on their way (socket buffers) still show cats for a moment.
  await new Promise((ok) => setTimeout(ok, 2000));
  await capture(page, "dog");
  scene = [plainDog];
  await new Promise((ok) => setTimeout(ok, 2000));
  await page.fill("#count", "1");
  await page.click(`button[data-capture="dog"]`);
  await page.waitForFunction(() => document.querySelector("#message").textContent
    .startsWith("saved 1 pictures of dog"), null, { timeout: 60_000 });
  scene = dogs;
  await page.waitForFunction(() => [...document.querySelectorAll("#labels tr")].map((r) => r.textContent)
    .join("|") === "cat13 picturesCapture cat|dog11 picturesCapture dog", null, { timeout: 10_000 });
  await shot(page, "captured");

  // The dataset view: one dog picture moved under cat by mistake, one cat picture deleted.
  await page.click(`#dataset-labels button[data-label="dog"]`);
  await page.waitForFunction(() => document.querySelectorAll("#samples-grid figure").length === 11,
    null, { timeout: 10_000 });
  // The last one captured (names are capture times): the plain dog.
  const misfiled = (await keys(page, "#samples-grid figure")).at(-1);
  await page.click(`#samples-grid figure[data-key="${misfiled}"]`);
  await page.selectOption("#samples-to", "cat");
  await page.click("#samples-move");
  await page.waitForFunction(() => document.querySelector("#message").textContent
    .startsWith("moved 1 pictures from dog to cat"), null, { timeout: 10_000 });
  if (!files("cat").includes(misfiled) || files("dog").includes(misfiled)) {
    throw new Error(`${misfiled} did not move from dog/ to cat/`);
  }
  await page.click(`#dataset-labels button[data-label="cat"]`);
  await page.waitForFunction(() => document.querySelectorAll("#samples-grid figure").length === 14,
    null, { timeout: 10_000 });
  const doomed = chosen[1] + ".jpg";
  page.once("dialog", (d) => d.accept());
  await page.click(`#samples-grid figure[data-key="${doomed}"]`);
  await page.click("#samples-delete");
  await page.waitForFunction(() => document.querySelector("#message").textContent
    .startsWith("deleted 1 pictures of cat (13 left)"), null, { timeout: 10_000 });
  if (files("cat").includes(doomed) || files("cat").length !== 13) {
    throw new Error(`cat/ after the delete: ${files("cat")}`);
  }
  await shot(page, "samples");

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
  // "Enough?": the curve up to the smallest label's pictures, and what it says.
  const curve = await page.$$eval("#curve svg circle", (c) => c.length);
  const enough = await page.textContent("#curve p");
  if (curve < 2 || !/^Enough\? (still rising|levelling off) \(/.test(enough)) {
    throw new Error(`learning curve: ${curve} points, ${enough}`);
  }
  // The confusion matrix as a picture: 2x2 cells.
  const cells = await page.$$eval("#confusion svg rect", (r) => r.length);
  if (cells !== 4) throw new Error(`confusion matrix with ${cells} cells`);
  // The pictures cross-validation got wrong are shown, each as the picture of its folder with
  // what it was taken for, the dog filed under cat among them.
  await page.waitForFunction(() => {
    const shown = [...document.querySelectorAll("#mistakes figure")];
    return shown.length > 0 && shown.every((f) => f.querySelector("img").naturalWidth > 0);
  }, null, { timeout: 10_000 }).catch(async (e) => {
    throw new Error(`${e.message}: ${await page.textContent("#train-status")}, ${await page.textContent("#mistakes")}`);
  });
  const mistakes = await page.$$eval("#mistakes figure", (fs) => fs.map((f) => [f.dataset.key, f.textContent]));
  for (const [key, caption] of mistakes) {
    const folder = key.split("/").slice(-2)[0];
    const other = folder === "cat" ? "dog" : "cat";
    if (caption !== `${folder} taken for ${other}`) throw new Error(`mistake ${key}: ${caption}`);
  }
  if (!mistakes.some(([key]) => key.endsWith(`/cat/${misfiled}`))) {
    throw new Error(`the plain dog filed under cat is not among the mistakes: ${JSON.stringify(mistakes)}`);
  }
  await shot(page, "trained");

  await labelIs(page, "dog");
  await shot(page, "dog");
  scene = cats;
  await labelIs(page, "cat");
  await shot(page, "cat");

  // Frames of neither label: the trained head is unsure of some, and they join the grid.
  const beforeRoses = await keys(page, "#review-grid figure");
  scene = roses;
  for (let i = 0; ; i++) {
    if (i === 60) throw new Error("no frame of roses joined the review grid in 60 s");
    await page.click("#review-refresh");
    await new Promise((ok) => setTimeout(ok, 1000));
    const now = await keys(page, "#review-grid figure");
    if (now.some((id) => !beforeRoses.includes(id))) break;
  }
  await shot(page, "review-neither");
  scene = cats;

  // A region drawn on the preview: the next Train learns from it, the head file keeps it, and
  // the head, now looking at that part of the frame, still tells the camera's cats.
  // One photo while drawing: the scene's photos differ in size, and so would the preview's.
  scene = [cats[0]];
  await new Promise((ok) => setTimeout(ok, 700));
  await page.click("#draw-region");
  const box = await page.$eval("#preview", (img) => {
    img.scrollIntoView();
    const r = img.getBoundingClientRect();
    const scale = Math.min(r.width / img.naturalWidth, r.height / img.naturalHeight);
    const w = img.naturalWidth * scale, h = img.naturalHeight * scale;
    return { x: r.left + (r.width - w) / 2, y: r.top + (r.height - h) / 2, w, h };
  });
  await page.mouse.move(box.x + 0.1 * box.w, box.y + 0.2 * box.h);
  await page.mouse.down();
  await page.mouse.move(box.x + 0.5 * box.w, box.y + 0.5 * box.h, { steps: 5 });
  await page.mouse.move(box.x + 0.9 * box.w, box.y + 0.8 * box.h, { steps: 5 });
  await page.mouse.up();
  await page.waitForFunction(() => document.querySelector("#message").textContent
    .startsWith("region set to 0.10, 0.20, 0.80, 0.60"), null, { timeout: 10_000 })
    .catch(async (e) => { throw new Error(`${e.message}; the page says: ${await page.textContent("#message")}`); });
  const asked = await (await fetch(`${base}api/region`)).json();
  const near = (r, want) => r && Object.entries(want).every(([k, v]) => Math.abs(r[k] - v) < 0.01);
  const drawn = { x: 0.1, y: 0.2, w: 0.8, h: 0.6 };
  if (!near(asked.region, drawn)) throw new Error(`region asked: ${JSON.stringify(asked)}`);
  await shot(page, "region-drawn");
  scene = cats;
  await page.click("#train");
  await page.waitForFunction(() => document.querySelector("#train-status").textContent
    .includes("on the region 0.10, 0.20, 0.80, 0.60"), null, { timeout: 120_000 });
  const file = JSON.parse(fs.readFileSync(path.join(work, "home.head"), "utf8"));
  if (file.version !== 2 || !near(file.head.region, drawn)) {
    throw new Error(`head file: version ${file.version}, region ${JSON.stringify(file.head.region)}`);
  }
  await page.waitForFunction(() => document.querySelector("#region-text").textContent
    .includes("the head looks at 0.10, 0.20, 0.80, 0.60"), null, { timeout: 10_000 });
  scene = dogs;
  await labelIs(page, "dog");
  scene = cats;
  await labelIs(page, "cat");
  await shot(page, "region-trained");

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
  console.log(`browser test passed: ImageNet said "${before}"; 3 frames filed from the review ` +
    `grid, the rest discarded, a sample moved and one deleted; after teaching, ${status}, the ` +
    `${mistakes.length} mistakes shown, the misfiled dog among them; the page followed the camera from dog to cat, roses joined the review ` +
    `grid, a region drawn on the preview was trained on, and the page showed the second camera's dogs. ` +
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
