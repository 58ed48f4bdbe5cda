// The console at real screen sizes, in English and Russian: laptops (1280×800, 1366×768), a
// small laptop or tablet (1024×768) and a phone (390×844, touch). At each, an agent signs in,
// receives chats from visitors, replies, attaches a file, transfers one chat and closes another;
// every control of the composer and of the transfer form must lie inside the viewport and be
// the element a tap there reaches (`elementFromPoint`). Screenshots of each size go to
// tests/browser/artifacts/. Layout does not depend on the state backend: embedded state.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { mkdirSync } from "node:fs";
import path from "node:path";

import WebSocket from "ws";

import { ADMIN, ROOT, WAIT, agentToken, launchBrowser, startServer, until } from "./harness.mjs";

const ARTIFACTS = path.join(ROOT, "tests/browser/artifacts");
mkdirSync(ARTIFACTS, { recursive: true });
const PNG = Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAGAAAABACAIAAABqVuVZAAAAhklEQVR42u3asQ0AIAgEQDawck1Lp3QiK2agFC/5+hOu/BD3zFLGXqW83h+AAAECBAgQIECAAAECBAgQIEDNgH47uNoPCBAgQIAAAQIECBAgQIAAAQLUDchgZlEEBAgQIECAAAECBAgQIECAAPkPMphZFAEBAgQIECBAgAABAgQIECBAbYES0j6p8ELo1OoAAAAASUVORK5CYII=", "base64");

const SIZES = [
  { name: "laptop-1280x800", width: 1280, height: 800 },
  { name: "laptop-1366x768", width: 1366, height: 768 },
  { name: "small-1024x768", width: 1024, height: 768 },
  { name: "phone-390x844", width: 390, height: 844, phone: true },
];

const IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";

/** A visitor on a raw socket who says `text` in `department`; their frames are collected. */
async function visitor(server, name, text) {
  // An iPhone's Safari, as the server reads its User-Agent (the device row of the details).
  const ws = new WebSocket(server.ws + "/v1/visitor?site=demo", { origin: server.origin, headers: { "User-Agent": IPHONE } });
  const got = [];
  ws.on("message", (d) => got.push(JSON.parse(d.toString())));
  await new Promise((resolve, reject) => { ws.once("open", resolve); ws.once("error", reject); });
  ws.send(JSON.stringify({ type: "hello", name, department: "sales", timezone: "Europe/Berlin" }));
  await until("welcome", () => got.some((m) => m.type === "welcome"));
  ws.send(JSON.stringify({ type: "message", client_id: "first", text }));
  return { ws, got, sees: (what, pred) => until(what, () => got.some(pred)) };
}

/**
 * Every one of `selectors` is inside the viewport, and a tap at its centre reaches it (or
 * something inside it): nothing covers it and nothing clips it.
 */
async function reachable(page, selectors, where) {
  const result = await page.evaluate((sels) => sels.map((sel) => {
    const e = document.querySelector(sel);
    if (!e) return `${sel}: missing`;
    const r = e.getBoundingClientRect();
    const vw = document.documentElement.clientWidth, vh = document.documentElement.clientHeight;
    if (r.width === 0 || r.height === 0) return `${sel}: not shown`;
    if (r.left < 0 || r.top < 0 || r.right > vw + 0.5 || r.bottom > vh + 0.5) {
      return `${sel}: at ${Math.round(r.left)},${Math.round(r.top)}–${Math.round(r.right)},${Math.round(r.bottom)} outside ${vw}×${vh}`;
    }
    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    const label = e.closest("label");
    if (!hit || !(e === hit || e.contains(hit) || (label && label.contains(hit)))) {
      return `${sel}: covered by ${hit ? hit.tagName + "#" + hit.id + "." + hit.className : "nothing"}`;
    }
    return null;
  }).filter(Boolean), selectors);
  assert.deepEqual(result, [], `${where}: ${result.join("; ")}`);
}

/** On a phone the list, the chat and the details are stacked views: a chat opens from the
 * list (the console opens a new chat by itself when none is open). */
async function openChat(page, name) {
  const item = page.locator(".chat-item", { hasText: name });
  await item.waitFor({ state: "attached", timeout: WAIT });
  const title = page.locator("#chat-title", { hasText: name });
  if (!(await title.isVisible())) {
    if (!(await item.isVisible())) await page.click("#back-to-list");
    await item.click();
  }
  await title.waitFor({ timeout: WAIT });
}

describe("the console at laptop and phone sizes", () => {
  let server, browser;

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test("links in messages are clickable and safe, in the console and in the widget", async () => {
    const hostile = "See https://example.com/track?a=1&b=2, write to mailto:help@example.com. " +
      "Not these: javascript:alert(1) data:text/html,<script>alert(2)</script> <img src=x onerror=alert(3)> " +
      "(and https://example.org/x)";
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    await page.goto(server.api + "/console/");
    await page.fill("#token", agentToken("alice"));
    await page.click("#signin-agent");
    await page.locator("#me-name").filter({ hasText: /\w/ }).waitFor({ timeout: WAIT });
    const vera = await visitor(server, "Link Vera", hostile);
    await openChat(page, "Link Vera");
    const bubble = page.locator("#transcript .ev.visitor .text").last();
    await bubble.waitFor({ timeout: WAIT });
    const seen = await bubble.evaluate((b) => ({
      text: b.textContent,
      links: [...b.querySelectorAll("a")].map((a) => ({ href: a.getAttribute("href"), rel: a.rel, target: a.target, text: a.textContent })),
      other: b.querySelectorAll("*:not(a)").length,
    }));
    assert.equal(seen.text, hostile, "the text is shown as written");
    assert.equal(seen.other, 0, "nothing of the text became markup");
    assert.deepEqual(seen.links, [
      { href: "https://example.com/track?a=1&b=2", rel: "noopener noreferrer", target: "_blank", text: "https://example.com/track?a=1&b=2" },
      { href: "mailto:help@example.com", rel: "noopener noreferrer", target: "_blank", text: "mailto:help@example.com" },
      { href: "https://example.org/x", rel: "noopener noreferrer", target: "_blank", text: "https://example.org/x" },
    ]);

    // The agent's answer with a link, as the widget shows it.
    const visitorContext = await browser.newContext();
    const widgetPage = await visitorContext.newPage();
    await widgetPage.goto(server.origin + "/demo/");
    const W = widgetPage.locator("#switchboard-widget");
    await W.locator(".launch").click();
    const pre = W.locator(".prechat");
    await pre.waitFor({ timeout: WAIT });
    await pre.getByLabel("Name").fill("Link Wanda");
    await pre.locator("button[type=submit]").click();
    const box = W.locator("form.compose textarea");
    await box.waitFor({ state: "visible", timeout: WAIT });
    await box.fill("Where do I track it?");
    await box.press("Enter");
    await openChat(page, "Link Wanda");
    await page.fill("#text", "Here: https://example.com/t/42. javascript:alert(1)");
    await page.click("#send");
    const link = W.locator(".msg:not(.me) .b a");
    await link.waitFor({ timeout: WAIT });
    assert.deepEqual(await link.evaluateAll((as) => as.map((a) => [a.getAttribute("href"), a.rel, a.target])),
      [["https://example.com/t/42", "noopener noreferrer", "_blank"]]);
    // Both chats end, so the sizes below start with a free agent.
    await page.click("#close-btn");
    await W.locator(".rating").waitFor({ timeout: WAIT });
    vera.ws.send(JSON.stringify({ type: "close" }));
    await vera.sees("the close", (m) => m.type === "event" && m.event.kind === "closed");
    vera.ws.close();
    await visitorContext.close();
    await context.close();
  });

  test("on a phone the admin's lists are cards: a department's Edit and Delete are in view", async () => {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
    const page = await context.newPage();
    page.on("pageerror", (e) => { throw e; });
    await page.goto(server.api + "/console/");
    await page.fill("#token", ADMIN);
    await page.click("#signin-supervisor");
    await page.click("#go-admin");
    await page.click("#admin-tabs button[data-pane=departments]");
    const row = "#ad-depts tr[data-department=support]";
    await page.locator(row).waitFor({ timeout: WAIT });
    const wide = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(wide <= 390, `the page is ${wide} px wide`);
    await reachable(page, [`${row} button:first-of-type`, `${row} button:last-of-type`], "phone departments");
    await page.screenshot({ path: path.join(ARTIFACTS, "layout-phone-admin-departments.png") });
    await page.locator(`${row} button`, { hasText: "Edit" }).click();
    for (const field of ["#dp-mode", "#dp-accept", "#dp-overflow", "#dp-save"]) {
      await page.locator(field).scrollIntoViewIfNeeded();
      await reachable(page, [field], "phone department form");
    }
    // One column: labels above their fields (a heading spanning "two" columns once made a
    // second one, and the hints pushed labels into the fields' column).
    const columns = await page.evaluate(() => getComputedStyle(document.querySelector("#dept-form")).gridTemplateColumns.split(" ").length);
    assert.equal(columns, 1, "the department form on a phone");
    await page.screenshot({ path: path.join(ARTIFACTS, "layout-phone-admin-department-form.png") });
    await context.close();
  });

  for (const size of SIZES) {
    for (const lang of ["en", "ru"]) {
      test(`${size.name} in ${lang}: sign in, reply, attach, transfer, close`, async () => {
        const context = await browser.newContext({
          viewport: { width: size.width, height: size.height },
          isMobile: !!size.phone, hasTouch: !!size.phone, deviceScaleFactor: size.phone ? 2 : 1,
          locale: lang === "ru" ? "ru-RU" : "en-US",
        });
        await context.addInitScript((l) => localStorage.setItem("switchboard:console-lang", l), lang);
        const page = await context.newPage();
        page.on("pageerror", (e) => { throw e; });
        await page.goto(server.api + "/console/");
        await page.fill("#token", agentToken("alice"));
        await page.click("#signin-agent");
        // (The agent's name is in the header on wider screens; a phone's header leaves it out.)
        await page.locator("#me-name").filter({ hasText: /\w/ }).waitFor({ state: "attached", timeout: WAIT });
        const tag = `${size.name}-${lang}`;
        // The page never scrolls sideways.
        const wide = await page.evaluate(() => document.documentElement.scrollWidth);
        assert.ok(wide <= size.width, `${tag}: the page is ${wide} px wide`);

        // A chat arrives; the agent replies and sends a picture.
        const vera = await visitor(server, `Vera ${tag}`, "Where is my order?");
        await openChat(page, `Vera ${tag}`);
        const composer = ["#text", "#note-mode", "#attach", "#send", "#transfer-btn", "#close-btn"];
        await reachable(page, composer, `${tag} composer`);
        await page.screenshot({ path: path.join(ARTIFACTS, `layout-${tag}-chat.png`) });
        // On a phone the reply box takes a tap (it once sat under another column).
        if (size.phone) await page.tap("#text", { timeout: WAIT });
        await page.fill("#text", "It left the warehouse today.");
        await page.click("#send");
        await vera.sees("the reply", (m) => m.type === "event" && m.event.text === "It left the warehouse today.");
        await page.setInputFiles("#attach-file", { name: "receipt.png", mimeType: "image/png", buffer: PNG });
        await vera.sees("the picture", (m) => m.type === "event" && m.event.attachment && m.event.attachment.name === "receipt.png");
        await reachable(page, composer, `${tag} composer after sending`);

        // The visitor's details are reachable (a view of their own on a phone).
        if (size.phone) {
          await page.click("#show-details");
          await page.locator("#profile").waitFor({ timeout: WAIT });
          await reachable(page, ["#back-to-chat"], `${tag} details`);
          // The visitor's local time, from their browser's zone, and their device.
          await page.locator("#profile-fields dd", { hasText: "(Europe/Berlin)" }).waitFor({ timeout: WAIT });
          await page.locator("#profile-fields dd", { hasText: /^Safari 18 · iOS · (phone|телефон)$/ }).waitFor({ timeout: WAIT });
          await page.screenshot({ path: path.join(ARTIFACTS, `layout-${tag}-details.png`) });
          await page.click("#back-to-chat");
        } else {
          await reachable(page, ["#profile-fields"], `${tag} details`);
          await page.locator("#profile-fields dd", { hasText: "(Europe/Berlin)" }).waitFor({ timeout: WAIT });
          await page.locator("#profile-fields dd", { hasText: /^Safari 18 · iOS · (phone|телефон)$/ }).waitFor({ timeout: WAIT });
        }

        // Closed by the agent.
        await page.click("#close-btn");
        await vera.sees("the close", (m) => m.type === "event" && m.event.kind === "closed");

        // Another chat is transferred to the support queue, with a reason.
        const tom = await visitor(server, `Tom ${tag}`, "Can I change my address?");
        await openChat(page, `Tom ${tag}`);
        await page.click("#transfer-btn");
        await page.locator("#transfer").waitFor({ timeout: WAIT });
        await reachable(page, ["#transfer-to", "#transfer-reason", "#transfer-note", "#transfer button[type=submit]"], `${tag} transfer`);
        await page.screenshot({ path: path.join(ARTIFACTS, `layout-${tag}-transfer.png`) });
        await page.selectOption("#transfer-to", "department:support");
        await page.fill("#transfer-reason", "Address changes are Support's");
        await page.click("#transfer button[type=submit]");
        await tom.sees("the transfer", (m) => m.type === "event" && m.event.kind === "notice" && m.event.notice === "transferring");

        // Tom leaves the support queue, so the next size starts with nobody waiting.
        tom.ws.send(JSON.stringify({ type: "close" }));
        await tom.sees("Tom's close", (m) => m.type === "event" && m.event.kind === "closed");
        vera.ws.close();
        tom.ws.close();
        await context.close();
      });
    }
  }
});
