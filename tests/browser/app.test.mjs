// The console as an installed app, in a real browser: its manifest and icons, the service
// worker that keeps the shell for when the network is gone, and a Web Push note shown as a
// notification while no console window is open (delivered through the DevTools protocol, as
// the browser's push service would: the server's side of Web Push is tested in tests/api/push.rs
// against a push service the test runs). Embedded state: none of this depends on the backend.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { mkdirSync } from "node:fs";
import path from "node:path";

import { ROOT, WAIT, agentToken, launchBrowser, startServer, until } from "./harness.mjs";

const ARTIFACTS = path.join(ROOT, "tests/browser/artifacts");
mkdirSync(ARTIFACTS, { recursive: true });

describe("the console as an app", () => {
  let server, browser;

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
  });
  after(async () => {
    if (browser) await browser.close();
    if (server) await server.stop();
  });

  test("installable, works offline, and shows a pushed note while no console is open", async () => {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    await context.grantPermissions(["notifications"], { origin: server.api });
    const page = await context.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(e));
    await page.goto(server.api + "/console/");
    await page.fill("#token", agentToken("alice"));
    await page.click("#signin-agent");
    await page.locator("#push-toggle").waitFor({ state: "visible", timeout: WAIT });
    assert.equal(await page.locator("#push-toggle").getAttribute("aria-pressed"), "false");

    // The manifest: a standalone app with 192 and 512 px icons that are what they say.
    const manifest = await page.evaluate(async () => {
      const href = document.querySelector("link[rel=manifest]").href;
      const r = await fetch(href);
      const m = await r.json();
      const icons = [];
      for (const icon of m.icons) {
        const ir = await fetch(new URL(icon.src, href));
        const bytes = new Uint8Array(await ir.arrayBuffer());
        // A PNG's width and height: big-endian at bytes 16 and 20 of its IHDR.
        const dv = new DataView(bytes.buffer);
        icons.push({ sizes: icon.sizes, type: ir.headers.get("content-type"), status: ir.status,
          png: icon.type === "image/png" ? `${dv.getUint32(16)}x${dv.getUint32(20)}` : null });
      }
      return { type: r.headers.get("content-type"), name: m.name, display: m.display, start: m.start_url, icons };
    });
    assert.equal(manifest.type, "application/manifest+json");
    assert.equal(manifest.display, "standalone");
    assert.equal(manifest.name, "Switchboard console");
    for (const size of ["192x192", "512x512"]) {
      const icon = manifest.icons.find((i) => i.sizes === size);
      assert.ok(icon, `a ${size} icon`);
      assert.deepEqual([icon.status, icon.type, icon.png], [200, "image/png", size]);
    }

    // The service worker controls the console.
    const script = await page.evaluate(() => navigator.serviceWorker.ready.then((r) => r.active.scriptURL));
    assert.equal(new URL(script).pathname, "/console/sw.js");
    await page.reload();
    await until("the service worker controls the page", () => page.evaluate(() => !!navigator.serviceWorker.controller));

    // The network gone: the console still opens (its shell from the cache) and says it cannot connect.
    await context.setOffline(true);
    await page.reload();
    await page.locator("#auth").waitFor({ state: "visible", timeout: WAIT });
    assert.match(await page.title(), /Switchboard/);
    // Its modules came from the cache too (nothing else could answer).
    assert.equal(await page.evaluate(() => import("./state.js").then((m) => typeof m.S)), "object");
    await page.screenshot({ path: path.join(ARTIFACTS, "app-offline-phone.png") });
    await context.setOffline(false);

    // The console closed; a note arrives from the push service: a notification in the
    // agent's language, one per chat.
    const cdp = await context.newCDPSession(page);
    const registrations = [];
    cdp.on("ServiceWorker.workerRegistrationUpdated", (e) => registrations.push(...e.registrations));
    await cdp.send("ServiceWorker.enable");
    await until("the worker's registration", () => registrations.some((r) => r.scopeURL.endsWith("/console/")));
    const reg = registrations.find((r) => r.scopeURL.endsWith("/console/"));
    const blank = await context.newPage();
    await page.close();
    const other = await context.newCDPSession(blank);
    await other.send("ServiceWorker.enable");
    await other.send("ServiceWorker.deliverPushMessage", {
      origin: server.api, registrationId: reg.registrationId,
      data: JSON.stringify({ kind: "offline", ticket: "t1", name: "Nina", department: "Support", text: "Do you ship to Norway?" }),
    });
    await blank.goto(server.api + "/console/");
    let shown = [];
    await until("the notification", async () => {
      shown = await blank.evaluate(() => navigator.serviceWorker.ready
        .then((r) => r.getNotifications())
        .then((ns) => ns.map((n) => ({ title: n.title, body: n.body, tag: n.tag }))));
      return shown.length > 0;
    });
    assert.deepEqual(shown, [{ title: "New offline message", body: "Nina · in Support · Do you ship to Norway?", tag: "t1" }]);
    assert.deepEqual(errors, []);
    await context.close();
  });
});
