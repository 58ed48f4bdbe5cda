// The widget in a real browser (Debian's chromium via playwright-core) against a real
// Switchboard, on the embedded backend and on Redis. An agent is driven over WebSocket.

import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { gzipSync } from "node:zlib";

import { Agent, ROOT, WAIT, admin, axeViolations, launchBrowser, startRedis, startServer, startSmtpSink, until } from "./harness.mjs";

const ARTIFACTS = path.join(ROOT, "tests/browser/artifacts");
mkdirSync(ARTIFACTS, { recursive: true });

const W = (page) => page.locator("#switchboard-widget");
const texts = (page) => W(page).locator(".msg .b").allTextContents();
const waitText = (page, sel, text) => W(page).locator(sel, { hasText: text }).first().waitFor({ timeout: WAIT });

/** axe-core finds no serious or critical accessibility violation on the page as it is now. */
async function accessible(page, what) {
  const found = await axeViolations(page);
  assert.deepEqual(found, [], `${what}:\n${found.join("\n")}`);
}

/** Opens the panel and answers the site's pre-chat form; returns the message box. */
async function startChat(page, name = "Vera", order = "A-17", { connects = true } = {}) {
  await W(page).locator(".launch").click();
  const pre = W(page).locator(".prechat");
  await pre.waitFor({ timeout: WAIT });
  await pre.getByLabel("Name").fill(name);
  await pre.getByLabel("Email").fill("vera@example.com");
  await pre.getByLabel("Order number").fill(order);
  // The answers reconnect with the visitor's name: wait until that connection is welcomed.
  await page.evaluate(() => { window.__connected = false; Switchboard.on("connected", () => { window.__connected = true; }); });
  await pre.locator("button[type=submit]").click();
  if (connects) await page.waitForFunction(() => window.__connected, null, { timeout: WAIT });
  const box = W(page).locator("form.compose textarea");
  await box.waitFor({ state: "visible", timeout: WAIT });
  return box;
}

test("the widget is under 25 KB gzipped", () => {
  const size = gzipSync(readFileSync(path.join(ROOT, "widget/widget.js")), { level: 9 }).length;
  assert.ok(size < 25 * 1024, `widget.js is ${size} bytes gzipped`);
});

for (const backend of ["embedded", "redis"]) {
  describe(`widget on ${backend} state`, () => {
    let redis, server, browser, context, page, agent, conv, smtp;

    before(async () => {
      if (backend === "redis") redis = await startRedis();
      smtp = await startSmtpSink();
      server = await startServer({ redisUrl: redis && redis.url, smtpUrl: smtp.url });
      browser = await launchBrowser();
      context = await browser.newContext();
      page = await context.newPage();
    });
    after(async () => {
      if (agent) agent.close();
      if (browser) await browser.close();
      if (server) await server.stop();
      if (redis) redis.stop();
      if (smtp) smtp.stop();
    });

    test("a visitor writes, is queued, an agent takes the chat and replies by name", async () => {
      agent = await Agent.connect(server, "alice", "away");
      // The pre-chat answers reach the agent with the visitor's profile.
      await page.goto(server.origin + "/demo/");
      // Single-page navigation before chatting: presence follows it.
      await page.click("#to-pricing");
      const box = await startChat(page);
      await box.fill("Hello from the browser");
      await box.press("Enter");
      await waitText(page, ".status", "#1 in line");
      await waitText(page, ".sys", "You are #1 in line");

      agent.send({ type: "set_status", status: "online" });
      const assigned = await agent.next("assigned", (m) => m.type === "assigned");
      conv = assigned.conversation.id;
      assert.equal(assigned.visitor.name, "Vera");
      assert.deepEqual(assigned.visitor.fields, { order: "A-17" });
      await waitText(page, ".sys", "You are now chatting with Alice Moreau");
      agent.say(conv, "Hi, I am Alice. How can I help?");
      await waitText(page, ".msg:not(.me) .b", "Hi, I am Alice");
      const reply = W(page).locator(".msg:not(.me)").last();
      assert.match(await reply.locator(".meta").textContent(), /^Alice Moreau · \d\d:\d\d$/);
      assert.equal(await reply.locator(".av").textContent(), "AM");
      // The agent's name under the title and the End chat button included.
      await accessible(page, "the widget in a chat");
      // Typing shows both ways.
      await box.type("typing…");
      await agent.next("visitor typing", (m) => m.type === "typing" && m.on === true);
      await box.fill("");
      agent.send({ type: "typing", conversation: conv, on: true });
      await waitText(page, ".typing", "Alice Moreau is typing");
    });

    test("a reload keeps the history, and a second tab shows the same conversation", async () => {
      const expected = ["Hello from the browser", "Hi, I am Alice. How can I help?"];
      assert.deepEqual(await texts(page), expected);
      await page.reload();
      await waitText(page, ".msg:not(.me) .b", "Hi, I am Alice");
      assert.deepEqual(await texts(page), expected, "each message once, in order");
      const tab = await context.newPage();
      await tab.goto(server.origin + "/demo/");
      // The open state is shared through localStorage; open() is idempotent.
      await tab.waitForFunction(() => window.Switchboard);
      await tab.evaluate(() => Switchboard.open());
      await waitText(tab, ".msg:not(.me) .b", "Hi, I am Alice");
      assert.deepEqual(await texts(tab), expected);
      // A message from the second tab shows in the first.
      await W(tab).locator("textarea").fill("Sent from tab two");
      await W(tab).locator("textarea").press("Enter");
      await waitText(page, ".msg.me .b", "Sent from tab two");
      await tab.close();
    });

    test("after a network cut the widget reconnects and resumes with no gap and no duplicate", async () => {
      server.proxy.cut();
      await waitText(page, ".status", "Reconnecting");
      agent.say(conv, "First while you were away");
      agent.say(conv, "Second while you were away");
      await agent.next("ack 1", (m) => m.type === "ack");
      await agent.next("ack 2", (m) => m.type === "ack");
      server.proxy.restore();
      await waitText(page, ".msg:not(.me) .b", "Second while you were away");
      assert.deepEqual(await texts(page), [
        "Hello from the browser",
        "Hi, I am Alice. How can I help?",
        "Sent from tab two",
        "First while you were away",
        "Second while you were away",
      ]);
      await until("status cleared", async () => !(await W(page).locator(".status").isVisible()));
    });

    test("HTML and script in a message render as text and run nothing", async () => {
      const payload = `<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script><b>bold</b>`;
      agent.say(conv, payload);
      await waitText(page, ".msg:not(.me) .b", "<img src=x");
      const last = W(page).locator(".msg:not(.me) .b").last();
      assert.equal(await last.textContent(), payload);
      assert.equal(await W(page).locator(".log img, .log script, .log b").count(), 0);
      assert.equal(await page.evaluate(() => window.__pwned), undefined);
    });

    test("the JS API opens, closes and reports messages", async () => {
      await page.evaluate(() => { window.__seen = []; Switchboard.on("message", (m) => window.__seen.push(m.text)); });
      await page.evaluate(() => Switchboard.close());
      assert.equal(await W(page).locator(".panel").isVisible(), false);
      agent.say(conv, "Are you still there?");
      await until("unread badge", async () => (await W(page).locator(".badge").textContent()) === "1");
      await page.evaluate(() => Switchboard.open());
      await W(page).locator(".panel").waitFor({ state: "visible", timeout: WAIT });
      assert.equal(await W(page).locator(".badge").isVisible(), false);
      assert.deepEqual(await page.evaluate(() => window.__seen), ["Are you still there?"]);
      // Russian on request, English back.
      await page.evaluate(() => Switchboard.setLocale("ru"));
      await waitText(page, ".send", "Отправить");
      await page.evaluate(() => Switchboard.setLocale("en"));
      await waitText(page, ".send", "Send");
    });

    test("screenshots of the open widget, light and dark", async () => {
      for (const scheme of ["light", "dark"]) {
        await page.emulateMedia({ colorScheme: scheme });
        await page.screenshot({ path: path.join(ARTIFACTS, `widget-${backend}-${scheme}.png`) });
      }
      const dark = await W(page).locator(".log").evaluate((e) => getComputedStyle(e).backgroundColor);
      assert.equal(dark, "rgb(11, 18, 32)", "dark scheme applied");
      await accessible(page, "the widget in the dark scheme");
      await page.emulateMedia({ colorScheme: "light" });
    });

    test("the visitor ends the chat and the rating reaches the ticket", async () => {
      await W(page).locator(".end").click();
      // One tap only asks (the button sits next to minimise): the chat goes on until the
      // visitor confirms.
      const confirm = W(page).locator(".confirm");
      await confirm.waitFor({ timeout: WAIT });
      assert.equal(await W(page).locator(".rating").count(), 0, "ended at one tap");
      await accessible(page, "the question before ending the chat");
      await confirm.locator(".yes").click();
      const rating = W(page).locator(".rating");
      await rating.waitFor({ timeout: WAIT });
      await accessible(page, "the rating form");
      await rating.locator("button[aria-label='4 of 5']").click();
      await rating.locator("textarea").fill("Helpful");
      await rating.locator("button[type=submit]").click();
      await waitText(page, ".sys", "Thanks for your feedback");
      // A copy of the chat by email: the site sends email, so the widget offers it, to the
      // address given in the pre-chat form only.
      const copy = W(page).locator(".copy");
      const to = copy.locator("input[type=email]");
      assert.equal(await to.inputValue(), "vera@example.com");
      assert.equal(await to.evaluate((e) => e.readOnly), true);
      await accessible(page, "the copy-by-email form");
      // The form on a laptop and on a phone, to look at.
      for (const [name, size] of [["laptop", { width: 1280, height: 800 }], ["phone", { width: 390, height: 844 }]]) {
        await page.setViewportSize(size);
        await copy.scrollIntoViewIfNeeded();
        await page.screenshot({ path: path.join(ARTIFACTS, `widget-${backend}-copy-${name}.png`) });
      }
      await page.setViewportSize({ width: 1280, height: 720 });
      await copy.locator("button[type=submit]").click();
      await waitText(page, ".sys", "A copy is on its way to vera@example.com");
      await until("the copy at the mail server", () => smtp.mails.some((m) =>
        m.to.includes("vera@example.com") && m.data.includes("Hello from the browser")));
      const { status, body } = await admin(server, `/v1/tickets/${conv}`);
      assert.equal(status, 200);
      assert.equal(body.rating.score, 4);
      assert.equal(body.rating.comment, "Helpful");
      assert.equal(body.closed_by, "visitor");
      assert.equal(body.visitor.name, "Vera");
      assert.equal(body.visitor.fields.order, "A-17");
      assert.ok(body.visitor.pages.some((p) => p.url.endsWith("/demo/?section=pricing")), JSON.stringify(body.visitor.pages));
      const agentTexts = body.transcript.filter((e) => e.author === "agent").map((e) => e.author_name);
      assert.ok(agentTexts.length >= 4 && agentTexts.every((n) => n === "Alice Moreau"));
    });

    test("a new conversation's divider goes above its first message", async () => {
      // The previous test closed the chat; the next message starts a new one.
      const box = W(page).locator("form.compose textarea");
      await box.fill("One more question");
      await box.press("Enter");
      await waitText(page, ".msg.me .b", "One more question");
      const order = await W(page).locator(".log").evaluate((log) =>
        [...log.children].map((e) => e.textContent));
      const divider = order.lastIndexOf("— New conversation —");
      const mine = order.findIndex((t) => t.startsWith("One more question"));
      assert.ok(divider >= 0 && divider < mine, JSON.stringify(order.slice(-6)));
      const next = await agent.next("the new chat", (m) => m.type === "assigned" && m.events.some((e) => e.text === "One more question"));
      agent.send({ type: "close", conversation: next.conversation.id });
    });

    test("on a phone the launcher never covers Send", async () => {
      const ctx = await browser.newContext({ viewport: { width: 390, height: 844 }, hasTouch: true });
      const p = await ctx.newPage();
      await p.goto(server.origin + "/demo/");
      const box = await startChat(p, "Mia", "C-3");
      await box.fill("Typed on a phone");
      const send = W(p).locator(".send");
      const b = await send.boundingBox();
      const under = await p.evaluate(([x, y]) => {
        const e = document.getElementById("switchboard-widget").shadowRoot.elementFromPoint(x, y);
        return e ? e.className : null;
      }, [b.x + b.width / 2, b.y + b.height / 2]);
      assert.equal(under, "send", "the element under Send's centre");
      await accessible(p, "the widget on a phone");
      await p.screenshot({ path: path.join(ARTIFACTS, `widget-${backend}-mobile.png`) });
      await send.tap();
      await waitText(p, ".msg.me .b", "Typed on a phone");
      const got = await agent.next("the phone's chat", (m) => m.type === "assigned" && m.events.some((e) => e.text === "Typed on a phone"));
      agent.send({ type: "close", conversation: got.conversation.id });
      // Minimized, the launcher is back.
      await W(p).locator(".min").click();
      await W(p).locator(".launch").waitFor({ state: "visible", timeout: WAIT });
      await ctx.close();
    });

    test("with nobody on duty the widget says so before the visitor writes, keeping what they typed", async () => {
      // Someone is on duty when the page loads: the visitor starts typing.
      const ctx = await browser.newContext();
      const p = await ctx.newPage();
      await p.goto(server.origin + "/demo/");
      const box = await startChat(p, "Max", "B-2");
      await box.fill("Do you ship to Norway?");
      // The agent leaves; the widget learns it on its next connection (here, after a cut).
      agent.send({ type: "set_status", status: "offline" });
      await agent.next("offline", (m) => m.type === "agent" && m.agent.status === "offline");
      server.proxy.cut();
      await waitText(p, ".status", "Reconnecting");
      server.proxy.restore();
      await waitText(p, ".sys", "Nobody is on duty right now");
      const form = W(p).locator(".offline");
      await form.waitFor({ timeout: WAIT });
      assert.equal(await form.locator("textarea").inputValue(), "Do you ship to Norway?");
      assert.equal(await W(p).locator("form.compose").isVisible(), false, "no composer to write into the void");
      await accessible(p, "the offline form");
      await form.locator("input[type=email]").fill("max@example.com");
      await form.locator("button[type=submit]").click();
      await waitText(p, ".sys", "We will reply by email");
      const { body } = await admin(server, "/v1/tickets?status=offline");
      const t = body.tickets.find((t) => t.offline_message && t.offline_message.email === "max@example.com");
      assert.ok(t, JSON.stringify(body));
      assert.equal(t.offline_message.text, "Do you ship to Norway?");

      // A fresh visitor while nobody is on duty: told at once, with the form and no pre-chat.
      const fresh = await ctx.browser().newContext();
      const q = await fresh.newPage();
      await q.goto(server.origin + "/demo/");
      await W(q).locator(".launch").click();
      await waitText(q, ".sys", "Nobody is on duty right now");
      await W(q).locator(".offline").waitFor({ timeout: WAIT });
      assert.equal(await W(q).locator(".prechat").count(), 0);
      await fresh.close();
      await ctx.close();
    });

    test("an agent who leaves after the welcome: the offline form keeps the message, one notice, thanks below", async () => {
      agent.send({ type: "set_status", status: "online" });
      await agent.next("online", (m) => m.type === "agent" && m.agent.status === "online");
      const ctx = await browser.newContext();
      const p = await ctx.newPage();
      await p.goto(server.origin + "/demo/");
      const box = await startChat(p, "Ida", "D-4");
      agent.send({ type: "set_status", status: "offline" });
      await agent.next("offline", (m) => m.type === "agent" && m.agent.status === "offline");
      await box.fill("Anyone here?");
      await box.press("Enter");
      const form = W(p).locator(".offline");
      await form.waitFor({ timeout: WAIT });
      await waitText(p, ".sys", "No agent is available");
      // Nobody ended anything: no goodbye after the offline reply.
      const sys = await W(p).locator(".sys").allTextContents();
      assert.ok(!sys.some((t) => /ended the chat/.test(t)), JSON.stringify(sys));
      assert.equal(await form.locator("textarea").inputValue(), "Anyone here?");
      await form.locator("input[type=email]").fill("ida@example.com");
      await form.locator("button[type=submit]").click();
      await waitText(p, ".sys", "We will reply by email");
      const order = await W(p).locator(".log").evaluate((log) => [...log.children].map((e) => e.className + ":" + e.textContent));
      const thanks = order.findIndex((e) => e.includes("We will reply by email"));
      const question = order.findIndex((e) => e.includes("Anyone here?"));
      assert.ok(question >= 0 && question < thanks, JSON.stringify(order));
      assert.equal(order.filter((e) => e.includes("Anyone here?")).length, 1, "the question shows once");
      await ctx.close();
      agent.send({ type: "set_status", status: "online" });
      await agent.next("online", (m) => m.type === "agent" && m.agent.status === "online");
    });

    test("a trigger shows as a small bubble beside the launcher; a click opens the chat", async () => {
      const ctx = await browser.newContext();
      const p = await ctx.newPage();
      await p.goto(server.origin + "/demo/?landing=tea");
      const teaser = W(p).locator(".teaser");
      await waitText(p, ".teaser .tt", "Want a hand choosing a tea?");
      assert.equal(await W(p).locator(".panel").isVisible(), false, "the panel stays closed");
      const box = await teaser.boundingBox();
      assert.ok(box.width <= 280 && box.height < 200, JSON.stringify(box));
      await p.screenshot({ path: path.join(ARTIFACTS, `widget-${backend}-teaser.png`) });
      await accessible(p, "the trigger's bubble");
      await teaser.locator(".tt").click();
      await W(p).locator(".panel").waitFor({ state: "visible", timeout: WAIT });
      await waitText(p, ".msg.offer .b", "Want a hand choosing a tea?");
      assert.equal(await teaser.isVisible(), false);
      // The visitor answers: the question stays above the answer, once, without a reload.
      const answer = W(p).locator("form.compose textarea");
      await answer.fill("Yes, a green one");
      await answer.press("Enter");
      await W(p).locator(".msg.me:not(.sending) .b", { hasText: "Yes, a green one" }).waitFor({ timeout: WAIT });
      await until("the question as the conversation's first message", async () =>
        (await W(p).locator(".msg:not(.offer) .b", { hasText: "Want a hand choosing a tea?" }).count()) === 1);
      const texts = await W(p).locator(".msg .b").allTextContents();
      assert.deepEqual(texts.filter((t) => /tea\?|green/.test(t)), ["Hi! Want a hand choosing a tea?", "Yes, a green one"]);
      // Ended, so the agent's capacity is as the later tests expect.
      await W(p).locator(".end").click();
      await W(p).locator(".confirm .yes").click();
      await W(p).locator(".rating").waitFor({ timeout: WAIT });
      await ctx.close();
    });

    test("the default department closed by its hours: the visitor is told when it opens and chats with a staffed team", async () => {
      // Support is closed all of today (a holiday), Alice is online in Sales.
      const today = new Date().toISOString().slice(0, 10);
      const day = ["00:00-24:00"];
      const hours = { timezone: "UTC", monday: day, tuesday: day, wednesday: day, thursday: day, friday: day,
        saturday: day, sunday: day, holidays: [today] };
      const put = (body) => admin(server, "/v1/sites/demo/departments/support", "PUT", body);
      assert.equal((await put({ name: "Support", hours })).status, 200);
      const ctx = await browser.newContext({ locale: "en-US", timezoneId: "UTC" });
      const p = await ctx.newPage();
      await p.goto(server.origin + "/demo/");
      await W(p).locator(".launch").click();
      const nobody = W(p).locator(".sys.nobody");
      await nobody.waitFor({ timeout: WAIT });
      // Tomorrow 00:00 UTC, as the visitor's browser says it.
      const tomorrow = new Date(Date.parse(today + "T00:00:00Z") + 86400000);
      const weekday = tomorrow.toLocaleDateString("en-US", { weekday: "long", timeZone: "UTC" });
      assert.match(await nobody.textContent(), new RegExp(`we are back ${weekday}`));
      const teams = W(p).locator(".teams");
      await teams.waitFor({ timeout: WAIT });
      await p.screenshot({ path: path.join(ARTIFACTS, `widget-${backend}-closed-department.png`) });
      await accessible(p, "the widget with its department closed");
      await teams.getByRole("button", { name: "Sales" }).click();
      // Sales is staffed: no offline form but the site's pre-chat form; the message reaches
      // Alice in Sales.
      const pre = W(p).locator(".prechat");
      await pre.waitFor({ timeout: WAIT });
      await pre.getByLabel("Name").fill("Hana");
      await pre.getByLabel("Email").fill("hana@example.com");
      await pre.locator("button[type=submit]").click();
      const box = W(p).locator("form.compose textarea");
      await box.waitFor({ state: "visible", timeout: WAIT });
      assert.equal(await W(p).locator(".offline").count(), 0);
      await box.fill("Do you have green tea?");
      await box.press("Enter");
      const got = await agent.next("the chat in Sales", (m) => m.type === "assigned" &&
        m.events.some((e) => e.text === "Do you have green tea?"));
      assert.equal(got.conversation.department, "sales");
      await W(p).locator(".end").click();
      await W(p).locator(".confirm .yes").click();
      await W(p).locator(".rating").waitFor({ timeout: WAIT });
      await ctx.close();
      assert.equal((await put({ name: "Support" })).status, 200);
    });

    test("a light accent colour gets dark text, and the widget stays accessible", async () => {
      const { body: site } = await admin(server, "/v1/sites/demo");
      const own = Object.fromEntries(Object.entries(site).filter(([k]) =>
        !["departments", "agents", "canned", "triggers", "webhooks"].includes(k) && !k.endsWith("_set")));
      const put = (color) => admin(server, "/v1/sites/demo", "PUT", { ...own, widget: { ...own.widget, color } });
      assert.equal((await put("#fde047")).status, 200);
      const ctx = await browser.newContext();
      const p = await ctx.newPage();
      await p.goto(server.origin + "/demo/");
      await until("the yellow launcher", async () =>
        (await W(p).locator(".launch").evaluate((e) => getComputedStyle(e).backgroundColor)) === "rgb(253, 224, 71)");
      assert.equal(await W(p).locator(".launch svg").evaluate((e) => getComputedStyle(e).fill), "rgb(17, 17, 17)");
      await startChat(p, "Yara", "E-5");
      await accessible(p, "the widget in yellow");
      await ctx.close();
      assert.equal((await put(own.widget.color)).status, 200);
    });

    test("type first: the site's questions come inside the chat after the first message, once, and reach the agent", async () => {
      const { body: site } = await admin(server, "/v1/sites/demo");
      const own = Object.fromEntries(Object.entries(site).filter(([k]) =>
        !["departments", "agents", "canned", "triggers", "webhooks"].includes(k) && !k.endsWith("_set")));
      const put = (prechat) => admin(server, "/v1/sites/demo", "PUT", { ...own, widget: { ...own.widget, prechat } });
      assert.equal((await put({ ...own.widget.prechat, ask: "in_chat" })).status, 200);
      const watcher = await Agent.connect(server, "alice", "away");
      watcher.send({ type: "watch_visitors", on: true });
      const ctx = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
      const p = await ctx.newPage();
      await p.goto(server.origin + "/demo/");
      await W(p).locator(".launch").click();
      const box = W(p).locator("form.compose textarea");
      await box.waitFor({ state: "visible", timeout: WAIT });
      assert.equal(await W(p).locator(".prechat").count(), 0, "no form before the first message");
      await box.fill("Is the blue one in stock?");
      await box.press("Enter");
      const ask = W(p).locator(".prechat");
      await ask.waitFor({ timeout: WAIT });
      await waitText(p, ".msg.me .b", "Is the blue one in stock?");
      await accessible(p, "the widget asking inside the chat");
      await p.screenshot({ path: path.join(ARTIFACTS, `widget-${backend}-type-first-phone.png`) });
      await ask.getByLabel("Name").fill("Olga");
      await ask.getByLabel("Email").fill("olga@example.com");
      await ask.getByLabel("Order number").fill("C-3");
      await ask.locator("button[type=submit]").click();
      const heard = await watcher.next("the visitor's answers", (m) => m.type === "visitor" && m.visitor.name === "Olga");
      assert.equal(heard.visitor.email, "olga@example.com");
      assert.equal(await W(p).locator(".prechat").count(), 0);
      // Asked once: a reload does not ask again, and the chat goes on.
      await p.reload();
      await box.waitFor({ state: "visible", timeout: WAIT });
      await box.fill("Thanks");
      await box.press("Enter");
      await waitText(p, ".msg.me .b", "Thanks");
      assert.equal(await W(p).locator(".prechat").count(), 0);
      await ctx.close();
      watcher.close();
      assert.equal((await put(own.widget.prechat)).status, 200);
    });

    test("the demo page links to the console and says how to answer there", async () => {
      const link = page.locator("#console-link");
      assert.equal(await link.getAttribute("href"), "/console/");
      const text = await page.locator("main").textContent();
      assert.match(text, /sign in as alice@demo\.test/);
      assert.doesNotMatch(text, /websocat/);
    });

    test("aggressive host CSS changes nothing inside the widget, and the widget changes nothing outside", async () => {
      const hostile = `<!doctype html><html><head><style>
        * { all: unset; font-size: 40px !important; color: red !important; background: yellow !important;
            border-radius: 0 !important; box-sizing: content-box !important; }
        button, textarea, div { display: inline !important; width: 5px !important; }
        #switchboard-widget { display: none !important; opacity: 0 !important; }
      </style></head><body><p id="own">Host text</p>
      <script src="/widget.js" data-site="demo" async></script></body></html>`;
      const ctx = await browser.newContext();
      const p = await ctx.newPage();
      await p.route(server.origin + "/hostile/", (r) => r.fulfill({ contentType: "text/html", body: hostile }));
      await p.goto(server.origin + "/hostile/");
      const launch = W(p).locator(".launch");
      await launch.waitFor({ state: "visible", timeout: WAIT });
      const s = await launch.evaluate((e) => {
        const c = getComputedStyle(e);
        return { bg: c.backgroundColor, w: c.width, radius: c.borderRadius };
      });
      assert.deepEqual(s, { bg: "rgb(15, 118, 110)", w: "56px", radius: "50%" });
      // Chromium refuses this route-served page's socket (local network access checks): the
      // test is about styles, not the conversation.
      const box = await startChat(p, "Vera", "A-17", { connects: false });
      assert.equal(await box.evaluate((e) => getComputedStyle(e).fontSize), "14px");
      assert.equal(await p.locator("#own").evaluate((e) => getComputedStyle(e).fontSize), "40px");
      await p.screenshot({ path: path.join(ARTIFACTS, `widget-${backend}-hostile-css.png`) });
      await ctx.close();
    });

    test("an agent starts a chat with a browsing visitor: the widget opens with the message", async () => {
      const ctx = await browser.newContext();
      const p = await ctx.newPage();
      await p.goto(server.origin + "/demo/");
      const token = await until("widget token", () =>
        p.evaluate(() => (JSON.parse(localStorage.getItem("switchboard:demo") || "{}")).token));
      assert.equal(await W(p).locator(".panel").isVisible(), false);
      // The token is v1.<site>.<visitor id>.<signature>.
      agent.send({ type: "start_chat", visitor: token.split(".")[2], client_id: "proactive-1",
        text: "Hi! Can I help you choose a tea?" });
      await waitText(p, ".msg:not(.me) .b", "Can I help you choose a tea?");
      assert.equal(await W(p).locator(".panel").isVisible(), true);
      await ctx.close();
    });
  });
}
