// Test harness for the widget: a real Switchboard binary on a free port (embedded or Redis),
// a TCP proxy in front of it that can cut the network, agents driven over WebSocket, and
// headless Chromium (Debian's) through playwright-core. Every wait has a timeout.

import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, "../..");
export const WAIT = 10_000;
export const ADMIN = "browser-admin-token-0123456789";
export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const sha256 = (s) => createHash("sha256").update(s).digest("hex");
export const agentToken = (id) => `browser-token-${id}-0123456789`;
/** Seconds on a `?landing` page before the test site's trigger fires. */
export const TRIGGER_SECS = 1;

export async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Resolves when `pred()` is truthy, polling event-driven state; rejects after `ms`. */
export async function until(what, pred, ms = WAIT) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

/** A redis-server on a free port, killed with the process. */
export async function startRedis() {
  if (process.env.SWITCHBOARD_TEST_REDIS_URL) return { url: process.env.SWITCHBOARD_TEST_REDIS_URL, stop() {} };
  const port = await freePort();
  const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
    stdio: "ignore",
  });
  child.on("error", (e) => {
    throw new Error(`cannot start redis-server (${e.message}); install it: apt-get install redis-server`);
  });
  await until("redis-server to listen", () =>
    new Promise((resolve) => {
      const s = net.connect(port, "127.0.0.1", () => { s.destroy(); resolve(true); });
      s.on("error", () => resolve(false));
    }),
  );
  return { url: `redis://127.0.0.1:${port}/`, stop: () => child.kill("SIGKILL") };
}

/** A TCP proxy whose traffic can be cut (every socket destroyed, new ones refused) and restored. */
export async function startProxy(targetPort) {
  const port = await freePort();
  const sockets = new Set();
  let up = true;
  const server = net.createServer((client) => {
    if (!up) return client.destroy();
    const upstream = net.connect(targetPort, "127.0.0.1");
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {});
    }
    client.pipe(upstream).pipe(client);
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  await new Promise((r) => server.listen(port, "127.0.0.1", r));
  return {
    port,
    cut() { up = false; for (const s of sockets) s.destroy(); },
    restore() { up = true; },
    stop() { for (const s of sockets) s.destroy(); server.close(); },
  };
}

/**
 * A mail server for the tests: enough SMTP (EHLO, MAIL, RCPT, DATA, QUIT) on a free port to
 * accept messages; `mails` collects `{ to, data }`.
 */
export async function startSmtpSink() {
  const mails = [];
  const server = net.createServer((sock) => {
    let buf = "", inData = false, data = "", to = [];
    sock.write("220 sink ESMTP\r\n");
    sock.on("data", (chunk) => {
      buf += chunk.toString("utf8");
      let i;
      while ((i = buf.indexOf("\r\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (inData) {
          if (line === ".") { inData = false; mails.push({ to, data }); to = []; data = ""; sock.write("250 queued\r\n"); }
          else data += line + "\n";
          continue;
        }
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === "EHLO") sock.write("250-sink\r\n250 8BITMIME\r\n");
        else if (verb === "RCPT") { to.push(line.slice(8).trim().replace(/[<>]/g, "")); sock.write("250 OK\r\n"); }
        else if (verb === "DATA") { inData = true; sock.write("354 go on\r\n"); }
        else if (verb === "QUIT") { sock.end("221 bye\r\n"); }
        else sock.write("250 OK\r\n");
      }
    });
    sock.on("error", () => {});
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `smtp://127.0.0.1:${server.address().port}`, mails, stop: () => server.close() };
}

/** Starts the switchboard binary for site `demo`, reachable through a proxy (the page origin). */
export async function startServer({ redisUrl, smtpUrl } = {}) {
  const port = await freePort();
  const proxy = await startProxy(port);
  const origin = `http://127.0.0.1:${proxy.port}`;
  const dir = mkdtempSync(path.join(os.tmpdir(), "switchboard-browser-"));
  const prefix = "b" + Date.now().toString(36) + Math.random().toString(36).slice(2, 8);
  const config = `
listen = "127.0.0.1:${port}"
secret = "browser-test-secret-0123456789"
admin_token_sha256 = "${sha256(ADMIN)}"
data_dir = ${JSON.stringify(path.join(dir, "data"))}
key_prefix = "${prefix}"
[timing]
heartbeat_secs = 5.0
[[sites]]
id = "demo"
allowed_origins = ["${origin}"]
default_department = "support"
widget = { color = "#0f766e", title = "Demo shop", typing_preview = true, prechat = { name = true, email = true, fields = [{ id = "order", label = "Order number" }] } }
departments = [{ id = "support", name = "Support" }, { id = "sales", name = "Sales" }]
canned = [
  { shortcut = "hi", text = "Hello {visitor_name}! I'm {agent_first_name}, how can I help?" },
  { shortcut = "bye", text = "Thanks for chatting with {site_name}!" },
]
name = "Demo shop"
${smtpUrl ? `smtp_url = "${smtpUrl}"\nemail_from = "Demo shop <support@demo.test>"` : ""}
[[sites.triggers]]
id = "landing"
url = "*/demo/?landing*"
time_on_page_secs = ${TRIGGER_SECS}
message = "Hi! Want a hand choosing a tea?"
as_agent = "alice"
department = "sales"
[[sites.agents]]
id = "alice"
name = "Alice Moreau"
departments = ["support", "sales"]
max_concurrent = 5
token_sha256 = "${sha256(agentToken("alice"))}"
[[sites.agents]]
id = "boris"
name = "Boris Ivanov"
departments = ["support"]
max_concurrent = 2
token_sha256 = "${sha256(agentToken("boris"))}"
`;
  const file = path.join(dir, "switchboard.toml");
  writeFileSync(file, config);
  const bin = process.env.SWITCHBOARD_BIN || path.join(ROOT, "target/debug/switchboard");
  const env = { ...process.env, RUST_LOG: process.env.RUST_LOG || "warn" };
  if (redisUrl) env.SWITCHBOARD_REDIS_URL = redisUrl;
  else delete env.SWITCHBOARD_REDIS_URL;
  const child = spawn(bin, ["--config", file], { env, stdio: ["ignore", "pipe", "inherit"] });
  const lines = readline.createInterface({ input: child.stdout });
  const first = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${bin} did not start (build it with cargo build)`)), WAIT);
    child.on("error", (e) => reject(new Error(`cannot run ${bin}: ${e.message}; build it with cargo build`)));
    lines.once("line", (l) => { clearTimeout(t); resolve(l); });
  });
  if (!first.includes("listening")) throw new Error(`unexpected first line: ${first}`);
  lines.on("line", () => {});
  return {
    origin,
    api: `http://127.0.0.1:${port}`,
    ws: `ws://127.0.0.1:${port}`,
    proxy,
    async stop() {
      proxy.stop();
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
    },
  };
}

/** REST with the admin token. */
export async function admin(server, p, method = "GET", body) {
  const headers = { authorization: `Bearer ${ADMIN}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  const r = await fetch(server.api + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: r.status, body: r.status === 204 ? null : await r.json() };
}

/** An agent console over WebSocket, keeping every message it got. */
export class Agent {
  static async connect(server, id = "alice", status = "online") {
    const a = new Agent();
    a.ws = new WebSocket(server.ws + "/v1/agent");
    a.inbox = [];
    a.ws.on("message", (d) => a.inbox.push(JSON.parse(d.toString())));
    await new Promise((resolve, reject) => { a.ws.once("open", resolve); a.ws.once("error", reject); });
    a.send({ type: "hello", token: agentToken(id), status });
    await a.next("welcome", (m) => m.type === "welcome");
    return a;
  }
  send(m) { this.ws.send(JSON.stringify(m)); }
  /** The first unconsumed message matching `pred` (removed from the inbox). */
  async next(what, pred) {
    return until(`agent: ${what}`, () => {
      const i = this.inbox.findIndex(pred);
      return i >= 0 ? this.inbox.splice(i, 1)[0] : null;
    });
  }
  async assigned() { return (await this.next("assigned", (m) => m.type === "assigned")).conversation.id; }
  say(conversation, text) {
    this.send({ type: "message", conversation, client_id: Math.random().toString(36).slice(2), text });
  }
  close() { this.ws.close(); }
}

export async function launchBrowser() {
  const { chromium } = await import("playwright-core");
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
}

/**
 * Runs axe-core (the accessibility engine, from npm) on the page, open shadow roots included,
 * and returns its serious and critical violations, and moderate ones about landmarks (a page
 * with no `main`, content outside every landmark, a second banner), as readable lines (empty
 * when none).
 */
export async function axeViolations(page) {
  if (!(await page.evaluate(() => typeof window.axe !== "undefined"))) {
    // Evaluated through the browser's devtools protocol, not added as a script element: the
    // console's Content-Security-Policy refuses inline scripts, as it should.
    const source = readFileSync(path.join(ROOT, "tests/browser/node_modules/axe-core/axe.min.js"), "utf8");
    await page.evaluate(source);
  }
  const violations = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => ({
      id: v.id, impact: v.impact,
      nodes: v.nodes.map((n) => `${JSON.stringify(n.target)} ${n.failureSummary.split("\n").slice(1).join(" ")}`),
    }));
  });
  return violations
    .filter((v) => v.impact === "serious" || v.impact === "critical" ||
      (v.impact === "moderate" && (v.id.startsWith("landmark-") || v.id === "region")))
    .flatMap((v) => v.nodes.map((n) => `${v.impact} ${v.id}: ${n}`));
}
