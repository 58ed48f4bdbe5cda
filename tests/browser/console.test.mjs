// The agent console and the sales tools in a real browser (Debian's chromium via playwright-core)
// against a real Switchboard, on the embedded backend and on Redis: an agent in /console/, and
// visitors in other browser contexts using the widget.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { mkdirSync, readFileSync } from "node:fs";
import path from "node:path";

import WebSocket from "ws";

import { ADMIN, Agent, ROOT, TRIGGER_SECS, WAIT, admin, agentToken, axeViolations, launchBrowser, startRedis, startServer, startSmtpSink, until } from "./harness.mjs";

const ARTIFACTS = path.join(ROOT, "tests/browser/artifacts");
mkdirSync(ARTIFACTS, { recursive: true });

const W = (page) => page.locator("#switchboard-widget");
// A 96×64 picture, and a PDF (its bytes are what the server checks: the header).
const PNG = "iVBORw0KGgoAAAANSUhEUgAAAGAAAABACAIAAABqVuVZAAAAhklEQVR42u3asQ0AIAgEQDawck1Lp3QiK2agFC/5+hOu/BD3zFLGXqW83h+AAAECBAgQIECAAAECBAgQIEDNgH47uNoPCBAgQIAAAQIECBAgQIAAAQLUDchgZlEEBAgQIECAAAECBAgQIECAAPkPMphZFAEBAgQIECBAgAABAgQIECBAbYES0j6p8ELo1OoAAAAASUVORK5CYII=";
const PDF = "%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n";
const waitText = (locator, text) => locator.filter({ hasText: text }).first().waitFor({ timeout: WAIT });

/** A visitor page in a fresh browser context, recording every frame its widget receives. */
async function visitorPage(browser, url) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const frames = [];
  page.on("websocket", (ws) => ws.on("framereceived", (f) => frames.push(String(f.payload))));
  await page.goto(url);
  await W(page).locator(".launch").waitFor({ timeout: WAIT });
  return { context, page, frames };
}

/** Opens the widget and answers the pre-chat form; returns the message box. */
async function startChat(page, name) {
  await W(page).locator(".launch").click();
  const pre = W(page).locator(".prechat");
  await pre.waitFor({ timeout: WAIT });
  await pre.getByLabel("Name").fill(name);
  if (await pre.getByLabel("Email").count()) await pre.getByLabel("Email").fill("vera@example.com");
  await pre.locator("button[type=submit]").click();
  const box = W(page).locator("form.compose textarea");
  await box.waitFor({ state: "visible", timeout: WAIT });
  return box;
}

/** axe-core finds no serious or critical accessibility violation on the page as it is now. */
async function accessible(page, what) {
  const found = await axeViolations(page);
  assert.deepEqual(found, [], `${what}:\n${found.join("\n")}`);
}

async function visitorSays(page, box, text) {
  await box.fill(text);
  await box.press("Enter");
  await waitText(W(page).locator(".msg.me .b"), text);
}

/** The console signed in as an agent. */
async function consolePage(browser, server, id) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on("pageerror", (e) => { throw e; });
  await page.goto(server.api + "/console/");
  await page.fill("#token", agentToken(id));
  await page.click("#signin-agent");
  await page.locator("#me-name").filter({ hasText: /\w/ }).waitFor({ timeout: WAIT });
  return { context, page };
}

for (const backend of ["embedded", "redis"]) {
  describe(`console on ${backend} state`, () => {
    let redis, server, browser, agentUi, boris, smtp;

    before(async () => {
      if (backend === "redis") redis = await startRedis();
      smtp = await startSmtpSink();
      server = await startServer({ redisUrl: redis && redis.url, smtpUrl: smtp.url });
      browser = await launchBrowser();
    });
    after(async () => {
      if (boris) boris.close();
      if (browser) await browser.close();
      if (server) await server.stop();
      if (redis) redis.stop();
      if (smtp) smtp.stop();
    });

    test("a wrong token is refused at sign-in", async () => {
      const context = await browser.newContext();
      const page = await context.newPage();
      await page.goto(server.api + "/console/");
      await page.fill("#token", "not-a-token");
      await page.click("#signin-agent");
      await waitText(page.locator("#signin-error"), "not valid");
      assert.equal(await page.locator("#app").isHidden(), true);
      await context.close();
    });

    test("an agent signs in, takes a chat, replies with a canned response, notes privately, transfers", async () => {
      agentUi = await consolePage(browser, server, "alice");
      const ui = agentUi.page;
      assert.equal(await ui.locator("#me-name").textContent(), "Alice Moreau");
      await ui.locator("#queues [data-department=support]").waitFor({ timeout: WAIT });

      const v = await visitorPage(browser, server.origin + "/demo/");
      const box = await startChat(v.page, "Vera");
      await visitorSays(v.page, box, "My order has not arrived");

      // The assignment: in the list, in view, with the visitor's profile and the transcript.
      const item = ui.locator(".chat-item", { hasText: "Vera" });
      await item.waitFor({ timeout: WAIT });
      await waitText(ui.locator("#transcript .ev.visitor .text"), "My order has not arrived");
      await waitText(ui.locator("#profile-fields dd"), "Vera");
      await waitText(ui.locator("#profile-fields dd"), "new");
      await waitText(ui.locator("#history"), "No earlier chats.");
      await waitText(item.locator(".wait"), "waiting");

      // The demo site shows agents the visitor's draft (typing preview).
      await box.type("Is it lost");
      await waitText(ui.locator("#typing"), "Visitor is typing: Is it lost");
      await box.fill("");
      // Typing reaches the visitor under the agent's full name.
      await ui.locator("#text").type("Let me");
      await waitText(W(v.page).locator(".typing"), "Alice Moreau is typing");

      // "/hi" expands with the visitor's and the agent's names.
      await ui.locator("#text").fill("");
      await ui.locator("#text").type("/h");
      await waitText(ui.locator("#canned li"), "/hi");
      await ui.locator("#text").press("Tab");
      assert.equal(await ui.locator("#text").inputValue(), "Hello Vera! I'm Alice, how can I help?");
      await ui.locator("#text").press("Enter");
      await waitText(W(v.page).locator(".msg:not(.me) .b"), "Hello Vera! I'm Alice, how can I help?");
      // A bare shortcut sent as is expands too.
      await ui.locator("#text").fill("/bye");
      await ui.click("#send");
      await waitText(W(v.page).locator(".msg:not(.me) .b"), "Thanks for chatting with Demo shop!");

      // A private note shows to agents only.
      await ui.check("#note-mode");
      assert.equal(await ui.locator("#attach").isHidden(), true, "a file would reach the visitor");
      await ui.locator("#text").fill("VIP customer, refund approved");
      await ui.locator("#text").press("Enter");
      await waitText(ui.locator("#transcript .ev.note .text"), "VIP customer");
      await ui.uncheck("#note-mode");
      assert.equal(await ui.locator("#attach").isVisible(), true);
      await ui.locator("#text").fill("Checking with billing now.");
      await ui.locator("#text").press("Enter");
      // The message after the note arrived, so the note would have come first: it never did.
      await waitText(W(v.page).locator(".msg:not(.me) .b"), "Checking with billing now.");
      assert.ok(!v.frames.some((f) => f.includes("VIP customer")), "the note reached the visitor's socket");
      assert.ok(!(await W(v.page).locator(".log").textContent()).includes("VIP customer"));
      // Files both ways: the visitor's picture shows in the console, the agent's PDF
      // downloads from the widget (each fetched with its side's own credentials, cross-origin
      // for the widget).
      await W(v.page).locator(".clip").waitFor({ timeout: WAIT });
      await W(v.page).locator("input.pick").setInputFiles({ name: "parcel.png", mimeType: "image/png", buffer: Buffer.from(PNG, "base64") });
      const shown = ui.locator("#transcript .ev.visitor .file-img img[alt='parcel.png']");
      await shown.waitFor({ timeout: WAIT });
      await until("the picture loaded in the console", () => shown.evaluate((img) => img.complete && img.naturalWidth === 96));
      await until("the picture shown in the widget", () => W(v.page).locator(".msg.me img[alt='parcel.png']")
        .evaluate((img) => img.complete && img.naturalWidth === 96));
      assert.equal(await W(v.page).locator(".msg.me.sending").count(), 0);
      await ui.locator("#attach-file").setInputFiles({ name: "label.pdf", mimeType: "application/pdf", buffer: Buffer.from(PDF) });
      const pdfButton = W(v.page).locator(".msg:not(.me) button.file", { hasText: "label.pdf" });
      await pdfButton.waitFor({ timeout: WAIT });
      const [download] = await Promise.all([v.page.waitForEvent("download", { timeout: WAIT }), pdfButton.click()]);
      assert.equal(download.suggestedFilename(), "label.pdf");
      assert.equal(readFileSync(await download.path(), "latin1"), PDF);
      // Markup is refused and the agent is told why; nothing reaches the visitor.
      await ui.locator("#attach-file").setInputFiles({ name: "x.svg", mimeType: "image/svg+xml", buffer: Buffer.from("<svg xmlns='http://www.w3.org/2000/svg'/>") });
      await waitText(ui.locator("#toast"), "Not sent");
      // Read receipts both ways: the widget is open on a visible page and the chat is in view
      // in the console, so each side's last message shows "Seen" on the other.
      await until("the agent's last message seen", async () =>
        (await ui.locator("#transcript .ev.agent").last().locator(".seen").count()) === 1);
      await until("the visitor's last message seen", async () =>
        (await W(v.page).locator(".msg.me").last().locator(".seen").count()) === 1);
      assert.equal(await ui.locator("#transcript .seen").count(), 1);
      await v.page.screenshot({ path: path.join(ARTIFACTS, `widget-${backend}-attachment.png`) });
      await ui.screenshot({ path: path.join(ARTIFACTS, `console-${backend}-attachment.png`) });
      await accessible(ui, "the agent's view with a chat open");
      await accessible(v.page, "the widget with files in the chat");

      // Transfer to Boris with a note: he gets the whole transcript, the visitor meets him.
      boris = await Agent.connect(server, "boris", "online");
      await ui.click("#transfer-btn");
      // The dialog says who is there and how busy.
      await until("Boris's status and load in the dialog", async () =>
        (await ui.locator("#transfer-to option[value='agent:boris']").textContent()) === "Boris Ivanov — online, 0/2");
      await ui.selectOption("#transfer-to", "agent:boris");
      await ui.fill("#transfer-reason", "billing question");
      await ui.fill("#transfer-note", "refund pending");
      await ui.click("#transfer button[type=submit]");
      const taken = await boris.next("assigned", (m) => m.type === "assigned");
      const kinds = taken.events.map((e) => e.kind);
      assert.ok(kinds.includes("note") && kinds.includes("transferred"), kinds.join(","));
      const moved = taken.events.find((e) => e.kind === "transferred");
      assert.equal(moved.reason, "billing question");
      assert.equal(moved.note, "refund pending");
      assert.equal(taken.events[0].text, "My order has not arrived");
      await waitText(W(v.page).locator(".sys"), "Boris Ivanov");
      await ui.screenshot({ path: path.join(ARTIFACTS, `console-${backend}.png`) });
      await waitText(item.locator(".last"), "transferred");
      assert.equal(await ui.locator("#compose").isHidden(), true);
      await v.context.close();
    });

    test("a new chat opens when no live chat is in view, another counts unread; the keyboard does the rest", async () => {
      const ui = agentUi.page;
      const before = Number((await ui.evaluate(() => document.body.dataset.notified)) || 0);
      const v = await visitorPage(browser, server.origin + "/demo/");
      const box = await startChat(v.page, "Oleg");
      await visitorSays(v.page, box, "Do you ship to Riga?");
      const oleg = ui.locator(".chat-item", { hasText: "Oleg" });
      await oleg.waitFor({ timeout: WAIT });
      await until("a notification", async () => Number(await ui.evaluate(() => document.body.dataset.notified)) > before);
      // The chat in view had ended (transferred away): the new one opens by itself.
      await waitText(ui.locator("#chat-title"), "Oleg");

      // With a live chat in view, the next one counts as unread.
      const w = await visitorPage(browser, server.origin + "/demo/");
      const box2 = await startChat(w.page, "Pia Lindqvist");
      await visitorSays(w.page, box2, "Hello?");
      await visitorSays(w.page, box2, "Anyone there?");
      const pia = ui.locator(".chat-item", { hasText: "Pia Lindqvist" });
      await waitText(pia.locator(".unread"), "2");
      assert.equal(await ui.locator("#chat-title").textContent(), "Oleg");
      // Name on the first row, last message on the second, with or without a badge.
      for (const item of [pia, oleg]) {
        const [who, last] = await item.evaluate((li) => [".who", ".last"].map((c) => li.querySelector(c).getBoundingClientRect()));
        assert.ok(last.top >= who.bottom - 1 && who.width > 40, JSON.stringify({ who, last }));
      }
      await accessible(ui, "the chat list with an unread chat");

      // The list from the keyboard: focus, arrow down, Enter.
      await oleg.focus();
      await ui.keyboard.press("ArrowDown");
      assert.equal(await pia.evaluate((li) => li === document.activeElement), true);
      await ui.keyboard.press("Enter");
      await waitText(ui.locator("#chat-title"), "Pia Lindqvist");
      assert.equal(await pia.locator(".unread").isHidden(), true);
      await waitText(ui.locator("#transcript .ev.visitor .text"), "Anyone there?");
      // Shortcuts: previous chat, the composer, transfer, the list of shortcuts, close.
      await ui.keyboard.press("Alt+ArrowUp");
      await waitText(ui.locator("#chat-title"), "Oleg");
      await ui.locator("#chat-title").click();
      await ui.keyboard.press("Alt+KeyR");
      assert.equal(await ui.evaluate(() => document.activeElement.id), "text");
      await ui.keyboard.press("Alt+KeyT");
      await ui.locator("#transfer").waitFor({ state: "visible", timeout: WAIT });
      await ui.click("#transfer-cancel");
      await ui.locator("#chat-title").click();
      await ui.keyboard.press("?");
      await ui.locator("#shortcuts").waitFor({ state: "visible", timeout: WAIT });
      await waitText(ui.locator("#shortcuts"), "Next / previous chat");
      await accessible(ui, "the shortcuts list");
      await ui.keyboard.press("Escape");
      await ui.locator("#shortcuts").waitFor({ state: "hidden", timeout: WAIT });
      await ui.keyboard.press("Alt+KeyW");
      await W(v.page).locator(".rating").waitFor({ timeout: WAIT });
      await waitText(oleg.locator(".last"), "closed");
      // The ticket is stored, and the visitor's next chat shows it as an earlier one.
      const tickets = await admin(server, "/v1/tickets");
      assert.ok(tickets.body.tickets.some((t) => t.visitor.name === "Oleg"));
      await pia.click();
      await ui.click("#close-btn");
      await waitText(pia.locator(".last"), "closed");
      await v.context.close();
      await w.context.close();
    });

    test("live visitors show a landing-page visitor; a proactive chat reaches their widget", async () => {
      const ui = agentUi.page;
      const v = await visitorPage(browser, server.origin + "/demo/?utm_source=news&utm_campaign=spring");
      await ui.click("#tab-visitors");
      const row = ui.locator("#visitors tr", { hasText: "utm_campaign=spring" });
      await row.waitFor({ timeout: WAIT });
      await waitText(row, "source=news");
      await waitText(row, "new");
      await accessible(ui, "the visitors tab");
      await row.locator("input").fill("Hi! The spring sale ends today. Questions?");
      await row.locator("button").click();
      // The widget opens by itself with Alice's introduction and message.
      await waitText(W(v.page).locator(".msg:not(.me) .b"), "The spring sale ends today");
      assert.equal(await W(v.page).locator(".panel").isVisible(), true);
      // No live chat was in view: the new one opens; the visitors tab shows them in chat.
      await ui.locator("#chat-view").waitFor({ state: "visible", timeout: WAIT });
      await waitText(ui.locator("#transcript"), "The spring sale ends today");
      await ui.click("#tab-visitors");
      await waitText(row, "in chat");
      await waitText(ui.locator(".chat-item"), "The spring sale ends today");
      await v.context.close();
    });

    test("a trigger fires after N seconds on a matching URL, not on another, and only once", async () => {
      const other = await visitorPage(browser, server.origin + "/demo/?from=elsewhere");
      const started = Date.now();
      const v = await visitorPage(browser, server.origin + "/demo/?landing=tea");
      await waitText(W(v.page).locator(".teaser .tt"), "Want a hand choosing a tea?");
      assert.ok(Date.now() - started >= TRIGGER_SECS * 1000, `fired after ${Date.now() - started} ms`);
      // A small bubble beside the launcher; the panel opens when the visitor wants it.
      assert.equal(await W(v.page).locator(".panel").isVisible(), false);
      // The other page started timing first: had it matched, its message would have come first.
      assert.ok(!other.frames.some((f) => f.includes('"proactive"')), "fired on another URL");
      assert.equal(await W(other.page).locator(".msg.offer").count(), 0);

      // Only once: the same visitor reloads; a later visitor's trigger fires, theirs does not.
      v.frames.length = 0;
      await v.page.reload();
      await W(v.page).locator(".launch").waitFor({ timeout: WAIT });
      await until("the reloaded widget to connect", () => v.frames.some((f) => f.includes('"welcome"')));
      const witness = await visitorPage(browser, server.origin + "/demo/?landing=tea");
      await waitText(W(witness.page).locator(".teaser .tt"), "Want a hand choosing a tea?");
      assert.ok(!v.frames.some((f) => f.includes('"proactive"')), "fired twice for one visitor");

      // The answer opens a sales chat that starts with the proactive message.
      const sales = await Agent.connect(server, "alice", "online");
      await v.page.evaluate(() => Switchboard.open());
      const box = W(v.page).locator("form.compose textarea");
      await box.fill("Which green tea is the mildest?");
      await box.press("Enter");
      const taken = await sales.next("assigned", (m) => m.type === "assigned" && m.events.some((e) => e.text === "Which green tea is the mildest?"));
      assert.equal(taken.conversation.department, "sales");
      assert.equal(taken.events[0].text, "Hi! Want a hand choosing a tea?");
      assert.equal(taken.events[0].author_name, "Alice Moreau");
      // The widget shows the proactive message once, now as part of the conversation.
      await waitText(W(v.page).locator(".sys"), "Alice Moreau");
      assert.equal(await W(v.page).locator(".msg .b", { hasText: "Want a hand choosing a tea?" }).count(), 1);
      sales.close();
      for (const p of [other, v, witness]) await p.context.close();
    });

    test("a long chat opens with its latest page; earlier messages load on request", async () => {
      // A visitor (a raw socket) writes 15 messages of 4,000 characters: more than one page.
      const v = new WebSocket(server.ws + "/v1/visitor?site=demo", { origin: server.origin });
      const got = [];
      v.on("message", (d) => got.push(JSON.parse(d.toString())));
      await new Promise((resolve, reject) => { v.once("open", resolve); v.once("error", reject); });
      v.send(JSON.stringify({ type: "hello", name: "Long Story", department: "sales" }));
      await until("welcome", () => got.some((m) => m.type === "welcome"));
      for (let i = 0; i < 15; i++) {
        v.send(JSON.stringify({ type: "message", client_id: "l" + i, text: `line ${i} ` + "z".repeat(3990) }));
      }
      await until("the last ack", () => got.some((m) => m.type === "ack" && m.client_id === "l14"));

      const { context, page } = await consolePage(browser, server, "alice");
      const item = page.locator(".chat-item", { hasText: "Long Story" });
      await item.waitFor({ timeout: WAIT });
      await item.click();
      await waitText(page.locator("#transcript .ev.visitor .text"), "line 14 ");
      const earlier = page.locator("#earlier");
      await earlier.waitFor({ timeout: WAIT });
      assert.equal(await page.locator("#transcript .ev.visitor .text", { hasText: "line 0 " }).count(), 0);
      await earlier.click();
      await waitText(page.locator("#transcript .ev.visitor .text"), "line 0 ");
      assert.equal(await page.locator("#earlier").count(), 0);
      assert.equal(await page.locator("#transcript .ev.visitor").count(), 15);
      v.close();
      await context.close();
    });

    test("the supervisor view shows agents, queues and today's figures; a live chat is watched by name and joined with a note", async () => {
      // A live chat to watch: a visitor (a raw socket) writes; an agent takes it.
      const vs = new WebSocket(server.ws + "/v1/visitor?site=demo", { origin: server.origin });
      const frames = [];
      vs.on("message", (d) => frames.push(JSON.parse(d.toString())));
      await new Promise((resolve, reject) => { vs.once("open", resolve); vs.once("error", reject); });
      vs.send(JSON.stringify({ type: "hello", name: "Walter Watched", page: { url: server.origin + "/demo/" } }));
      await until("welcome", () => frames.some((m) => m.type === "welcome"));
      vs.send(JSON.stringify({ type: "message", client_id: "w1", text: "Is my order packed?" }));
      await until("assigned", () => frames.some((m) => m.type === "event" && m.event.kind === "assigned"));
      const context = await browser.newContext();
      const page = await context.newPage();
      await page.goto(server.api + "/console/");
      await page.fill("#token", ADMIN);
      await page.click("#signin-supervisor");
      const alice = page.locator("#sv-agents tr[data-agent=alice]");
      await alice.waitFor({ timeout: WAIT });
      await waitText(alice, "Alice Moreau");
      await waitText(alice, "online");
      await page.locator("#sv-queues tr[data-department=support]").waitFor({ timeout: WAIT });
      // Departments by name, not id.
      await page.locator("#sv-queues tr[data-department=support] td").filter({ hasText: /^Support$/ }).waitFor({ timeout: WAIT });
      const stats = await admin(server, "/v1/stats");
      await waitText(page.locator("#figures .figure"), "Chats today");
      await waitText(page.locator("#figures .figure"), String(stats.body.chats));
      // Chats by the visitor's name; watch one read-only and leave the agent a note.
      const chip = page.locator(".sv-chat", { hasText: "Walter Watched" });
      await chip.waitFor({ timeout: WAIT });
      await chip.locator("button", { hasText: "Watch" }).click();
      await waitText(page.locator("#sv-watch-events .ev.visitor .text"), "Is my order packed?");
      await waitText(page.locator("#sv-watch-title"), "Walter Watched");
      await accessible(page, "the supervisor view watching a chat");
      await page.fill("#sv-note-text", "Check the warehouse first");
      await page.click("#sv-note button[type=submit]");
      await waitText(page.locator("#sv-watch-events .ev.note .text"), "Check the warehouse first");
      // The visitor never gets the note.
      assert.ok(!frames.some((m) => JSON.stringify(m).includes("Check the warehouse")), "the note reached the visitor");
      vs.close();
      await context.close();
    });

    test("the Conversations view searches past chats, opens one, and sets its follow-up and tags", async () => {
      const context = await browser.newContext();
      const page = await context.newPage();
      page.on("pageerror", (e) => { throw e; });
      await page.goto(server.api + "/console/");
      await page.fill("#token", ADMIN);
      await page.click("#signin-supervisor");
      await page.locator("#go-inbox").waitFor({ state: "visible", timeout: WAIT });
      await page.click("#go-inbox");
      // Full-text search finds the chat by a word the visitor wrote.
      await page.fill("#ib-q", "Riga");
      await page.click("#ib-search");
      // The unfiltered list may still be on screen until the search answers: wait for the one row.
      const row = page.locator("#ib-rows tr", { hasText: "Oleg" });
      await until("the search shows one conversation", async () => (await page.locator("#ib-rows tr").count()) === 1
        && (await row.count()) === 1);
      await row.click();
      await waitText(page.locator("#ib-transcript .ev.visitor .text"), "Do you ship to Riga?");
      await waitText(page.locator("#ib-title"), "Oleg");
      // Follow-up and tags, stored on the ticket.
      await page.selectOption("#ib-set-follow", "pending");
      await page.fill("#ib-set-tags", "shipping, Baltics");
      await page.click("#ib-save");
      await waitText(page.locator("#ib-rows tr", { hasText: "Oleg" }), "shipping, baltics");
      const id = await page.locator("#ib-rows tr", { hasText: "Oleg" }).getAttribute("data-ticket");
      const t = await admin(server, `/v1/tickets/${id}`);
      assert.equal(t.body.follow_up, "pending");
      assert.deepEqual(t.body.tags, ["shipping", "baltics"]);
      // Filters: pending follow-ups with that tag are this one; resolved chats of support include others.
      await page.fill("#ib-q", "");
      await page.selectOption("#ib-follow", "pending");
      await page.fill("#ib-tag", "baltics");
      await page.click("#ib-search");
      await until("one pending, tagged conversation", async () => (await page.locator("#ib-rows tr").count()) === 1
        && (await page.locator("#ib-rows tr").getAttribute("data-ticket")) === id);
      await page.selectOption("#ib-follow", "");
      await page.fill("#ib-tag", "");
      await page.selectOption("#ib-status", "resolved");
      await page.click("#ib-search");
      await until("several resolved conversations", async () => (await page.locator("#ib-rows tr").count()) >= 2);
      await page.selectOption("#ib-dept", "support");
      await page.click("#ib-search");
      await page.locator("#ib-rows tr", { hasText: "Oleg" }).click();
      await waitText(page.locator("#ib-transcript .ev.visitor .text"), "Do you ship to Riga?");
      await page.screenshot({ path: path.join(ARTIFACTS, `console-${backend}-inbox.png`) });
      await accessible(page, "the Conversations view");

      // An offline message, answered by email from here. Nobody on duty in sales: Alice leaves.
      await agentUi.page.selectOption("#status", "offline");
      const v = new WebSocket(server.ws + "/v1/visitor?site=demo", { origin: server.origin });
      const got = [];
      v.on("message", (d) => got.push(JSON.parse(d.toString())));
      await new Promise((resolve, reject) => { v.once("open", resolve); v.once("error", reject); });
      v.send(JSON.stringify({ type: "hello", name: "Nina", department: "sales" }));
      await until("welcome", () => got.some((m) => m.type === "welcome"));
      v.send(JSON.stringify({ type: "offline_message", email: "nina@example.com", text: "Do you ship to Norway?" }));
      await until("offline_received", () => got.some((m) => m.type === "offline_received"));
      v.close();
      // Alice's console (offline, but open) hears of it: a notice, a desktop notification, and a
      // count on Conversations (for those whose role opens it).
      await waitText(agentUi.page.locator("#toast"), "Offline message from Nina: Do you ship to Norway?");
      assert.equal(await agentUi.page.locator("#go-inbox").textContent(), "Conversations (1 new)");
      await page.selectOption("#ib-status", "offline");
      await page.selectOption("#ib-dept", "");
      await page.click("#ib-search");
      const offline = page.locator("#ib-rows tr", { hasText: "Nina" });
      await offline.click();
      await waitText(page.locator("#ib-offline"), "Do you ship to Norway?");
      await waitText(page.locator("#ib-reply-label"), "nina@example.com");
      await page.fill("#ib-reply-text", "Yes: 5 days to Oslo.");
      await page.click("#ib-reply-send");
      await waitText(page.locator("#ib-replies .ev.email"), "Yes: 5 days to Oslo.");
      await until("the email at the sink", () => smtp.mails.some((m) => m.to.includes("nina@example.com") && m.data.includes("Yes: 5 days to Oslo.")));
      await accessible(page, "the Conversations view with an offline message");
      await agentUi.page.selectOption("#status", "online");
      await context.close();
    });

    test("an admin signs in with a password, invites an agent, edits hours and recolours the widget", async () => {
      // An admin account, invited over REST with the admin token; the link sets the password.
      const email = `ada-${backend}@shop.test`;
      const made = await admin(server, "/v1/sites/demo/agents", "POST",
        { id: "ada", name: "Ada Lovelace", email, role: "admin", departments: ["support"], max_concurrent: 2 });
      assert.equal(made.status, 201, JSON.stringify(made.body));
      const context = await browser.newContext();
      const page = await context.newPage();
      page.on("pageerror", (e) => { throw e; });
      // The page logs no error (an id field's pattern once failed to compile in the `v` mode).
      const logged = [];
      page.on("console", (m) => { if (m.type() === "error" && !/Failed to load resource/.test(m.text())) logged.push(m.text()); });
      await page.goto(server.api + made.body.invite.url);
      await accessible(page, "the invite page");
      await page.fill("#new-password", "correct horse battery staple");
      await page.click("#set-password");
      await waitText(page.locator("#me-name"), "Ada Lovelace");
      await page.click("#signout");
      await page.locator("#login").waitFor({ timeout: WAIT });
      await accessible(page, "the sign-in page");
      await page.fill("#email", email);
      await page.fill("#password", "not the password");
      await page.click("#signin-password");
      await waitText(page.locator("#signin-error"), "Wrong email or password");
      await page.fill("#password", "correct horse battery staple");
      await page.click("#signin-password");
      await waitText(page.locator("#me-name"), "Ada Lovelace");

      // Invite an agent: the link is shown once.
      await page.click("#go-admin");
      await page.locator("#ad-agents tr[data-agent=alice]").waitFor({ timeout: WAIT });
      await page.fill("#ag-id", "zoe");
      await page.fill("#ag-name", "Zoe Park");
      await page.fill("#ag-email", `zoe-${backend}@shop.test`);
      await page.fill("#ag-depts", "support");
      await page.click("#ag-save");
      await page.locator("#ad-agents tr[data-agent=zoe]").waitFor({ timeout: WAIT });
      assert.match(await page.inputValue("#invite-link"), /\/console\/#invite=\S{20,}/);

      // Opening hours of a department.
      await page.click("#admin-tabs button[data-pane=departments]");
      await page.locator("#ad-depts tr[data-department=support] button", { hasText: "Edit" }).click();
      await page.fill("#dp-tz", "Europe/Berlin");
      await page.fill("#dp-monday", "09:00-12:00, 13:00-17:00");
      // Its routing: offers, a longest wait and where chats go after it.
      await page.selectOption("#dp-mode", "offer");
      await page.fill("#dp-accept", "45");
      await page.fill("#dp-max-wait", "120");
      await page.fill("#dp-overflow", "sales");
      await page.click("#dp-save");
      await waitText(page.locator("#ad-depts tr[data-department=support]"), "Europe/Berlin");
      await waitText(page.locator("#ad-depts tr[data-department=support]"), "waits at most 120 s → sales");
      const dept = await admin(server, "/v1/sites/demo/departments/support");
      assert.deepEqual(dept.body.hours.monday, ["09:00-12:00", "13:00-17:00"]);
      assert.deepEqual(dept.body.routing, { mode: "offer", accept_secs: 45, max_wait_secs: 120, overflow_to: "sales" });
      await admin(server, "/v1/sites/demo/departments/support", "PUT", { name: "Support" });

      // The widget colour, previewed live, then on the demo page.
      await page.click("#admin-tabs button[data-pane=site]");
      await page.locator("#st-color").fill("#e11d48");
      assert.equal(await page.locator("#pv-head").evaluate((e) => getComputedStyle(e).backgroundColor), "rgb(225, 29, 72)");
      await page.click("#st-save");
      await until("the colour saved", async () => (await admin(server, "/v1/widget/demo")).body.color === "#e11d48");
      // Saving the site's look keeps its mail server (the form shows it, the password stays
      // write-only).
      const saved = await admin(server, "/v1/sites/demo");
      assert.equal(saved.body.smtp_url, smtp.url);
      assert.equal(saved.body.email_from, "Demo shop <support@demo.test>");
      assert.equal(await page.locator("#st-smtp").inputValue(), smtp.url);
      assert.equal(await page.locator("#st-smtp-password").inputValue(), "");
      // The audit log, in the console: the change just made, with a readable time.
      await page.click("#admin-tabs button[data-pane=audit]");
      const entry = page.locator("#ad-audit tr", { hasText: "directory.site.update" }).first();
      await entry.waitFor({ timeout: WAIT });
      assert.doesNotMatch(await entry.locator("td").first().textContent(), /^\d{12,}$/, "a time, not Unix milliseconds");
      const v = await visitorPage(browser, server.origin + "/demo/");
      const colour = await W(v.page).locator(".launch").evaluate((e) => getComputedStyle(e).backgroundColor);
      assert.equal(colour, "rgb(225, 29, 72)");
      await admin(server, "/v1/sites/demo", "PUT", { allowed_origins: [server.origin], default_department: "support",
        name: "Demo shop", widget: { color: "#0f766e", title: "Demo shop", prechat: { name: true, fields: [{ id: "order", label: "Order number" }] } } });
      // Every admin pane, as an admin sees it.
      for (const pane of ["agents", "departments", "canned", "triggers", "site", "webhooks", "audit"]) {
        await page.click(`#admin-tabs button[data-pane=${pane}]`);
        await page.locator(`#admin-tabs button[data-pane=${pane}][aria-selected=true]`).waitFor({ timeout: WAIT });
        await accessible(page, `the admin pane ${pane}`);
      }
      assert.deepEqual(logged, [], "errors in the browser's console");
      await admin(server, "/v1/sites/demo/agents/zoe", "DELETE");
      await admin(server, "/v1/sites/demo/agents/ada", "DELETE");
      await v.context.close();
      await context.close();
    });

    test("the console speaks Russian to a Russian browser, and English when chosen", async () => {
      const context = await browser.newContext({ locale: "ru-RU" });
      const page = await context.newPage();
      page.on("pageerror", (e) => { throw e; });
      await page.goto(server.api + "/console/");
      assert.equal(await page.evaluate(() => document.documentElement.lang), "ru");
      assert.equal(await page.locator("#signin-password").textContent(), "Войти");
      assert.equal(await page.locator("label[for=password]").textContent(), "Пароль");
      await accessible(page, "the sign-in page in Russian");
      // An agent's view: the list, the status, the composer.
      await page.fill("#token", agentToken("boris"));
      await page.click("#signin-agent");
      await waitText(page.locator("#me-name"), "Boris Ivanov");
      await waitText(page.locator("h2"), "Мои чаты");
      assert.equal(await page.locator("#status option[value=online]").textContent(), "В сети");
      assert.equal(await page.locator("#signout").textContent(), "Выйти");
      // Agents have an inbox too (their departments' tickets).
      assert.equal(await page.locator("#go-inbox").textContent(), "Разговоры");
      assert.equal(await page.locator("#go-inbox").isVisible(), true);
      await accessible(page, "the agent's view in Russian");
      await page.screenshot({ path: path.join(ARTIFACTS, `console-${backend}-ru.png`) });
      // English, chosen in the corner, stays chosen.
      await page.locator("#bar select.lang").selectOption("en");
      await waitText(page.locator("#signout"), "Sign out");
      assert.equal(await page.evaluate(() => document.documentElement.lang), "en");
      await page.selectOption("#status", "offline");
      await context.close();
    });

    test("an offered chat shows Accept and Decline with a countdown; Alt+A accepts and the visitor meets the agent", async () => {
      const ui = agentUi.page;
      await ui.selectOption("#status", "online");
      // Sales (Alice only) offers its chats, two minutes to accept.
      const depts = await admin(server, "/v1/sites/demo/departments");
      const sales = depts.body.departments.find((d) => d.id === "sales");
      const put = await admin(server, "/v1/sites/demo/departments/sales", "PUT", { ...sales, routing: { mode: "offer", accept_secs: 120 } });
      assert.equal(put.status, 200, JSON.stringify(put.body));
      const vs = new WebSocket(server.ws + "/v1/visitor?site=demo", { origin: server.origin });
      const frames = [];
      vs.on("message", (d) => frames.push(JSON.parse(d.toString())));
      await new Promise((resolve, reject) => { vs.once("open", resolve); vs.once("error", reject); });
      vs.send(JSON.stringify({ type: "hello", name: "Olga Offered", department: "sales", page: { url: server.origin + "/demo/" } }));
      await until("welcome", () => frames.some((m) => m.type === "welcome"));
      vs.send(JSON.stringify({ type: "message", client_id: "o1", text: "Do you sell gift cards?" }));

      const item = ui.locator(".chat-item", { hasText: "Olga Offered" });
      await waitText(item.locator(".offer"), "s to accept");
      await item.click();
      await ui.locator("#offer").waitFor({ state: "visible", timeout: WAIT });
      assert.match(await ui.locator("#offer-left").textContent(), /Offered to you: (\d+) s to accept/);
      const left = Number((await ui.locator("#offer-left").textContent()).match(/(\d+) s/)[1]);
      assert.ok(left > 100 && left <= 120, `time left: ${left}`);
      assert.equal(await ui.locator("#compose").isHidden(), true, "no reply before accepting");
      assert.equal(await ui.locator("#close-btn").isDisabled(), true);
      await waitText(ui.locator("#transcript .ev.visitor .text"), "Do you sell gift cards?");
      assert.ok(!frames.some((m) => m.type === "event" && m.event.kind === "assigned"), "introduced before accepting");
      await accessible(ui, "an offered chat");
      await ui.screenshot({ path: path.join(ARTIFACTS, `console-${backend}-offer.png`) });

      await ui.locator("#chat-title").click();
      await ui.keyboard.press("Alt+KeyA");
      await until("the introduction", () => frames.some((m) => m.type === "event" && m.event.kind === "assigned" && m.event.agent.name === "Alice Moreau"));
      await ui.locator("#compose").waitFor({ state: "visible", timeout: WAIT });
      assert.equal(await ui.locator("#offer").isHidden(), true);
      assert.equal(await item.locator(".offer").count(), 0);
      await ui.click("#close-btn");
      await waitText(item.locator(".last"), "closed");
      await admin(server, "/v1/sites/demo/departments/sales", "PUT", sales);
      vs.close();
    });
  });
}
