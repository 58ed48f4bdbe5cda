// @ts-check
/** @file Signing in (password, invite, API token) and the agent socket: protocol v1 on /v1/agent (docs/protocol.md), every server message dispatched to its view. */

import { api } from "./api.js";
import { setupPush } from "./push.js";
import { $, toast } from "./dom.js";
import { send, show, signInFailed } from "./shell.js";
import { MODE_KEY, S, TOKEN_KEY } from "./state.js";
import { T } from "./strings.js";
import { views } from "./views.js";

// ---- sign in ------------------------------------------------------------------------------
$("signin").addEventListener("submit", function (e) {
  e.preventDefault();
  S.token = $("token").value.trim();
  if (!S.token) return;
  if (window.Notification && Notification.permission === "default") Notification.requestPermission();
  sessionStorage.setItem(TOKEN_KEY, S.token);
  sessionStorage.setItem(MODE_KEY, "agent");
  S.goOnline = true;
  connect();
});
$("signin-supervisor").addEventListener("click", function () {
  S.token = $("token").value.trim();
  if (!S.token) { $("signin-error").textContent = T("Enter the admin token."); return; }
  sessionStorage.setItem(TOKEN_KEY, S.token);
  sessionStorage.setItem(MODE_KEY, "supervisor");
  views.supervisor();
});
$("login").addEventListener("submit", function (e) {
  e.preventDefault();
  $("signin-error").textContent = "";
  fetch("/v1/auth/sign-in", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email: $("email").value.trim(), password: $("password").value }) })
    .then(function (r) {
      if (r.status === 429) throw new Error(T("Too many attempts; wait a minute."));
      if (!r.ok) throw new Error(r.status === 403 ? T("This account is disabled.") : T("Wrong email or password."));
      return r.json();
    })
    .then(function (who) { $("password").value = ""; signedInAs(who, true); })
    .catch(function (err) { $("signin-error").textContent = err.message; });
});
$("invite-form").addEventListener("submit", function (e) {
  e.preventDefault();
  var invite = location.hash.slice("#invite=".length);
  fetch("/v1/auth/invite", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token: invite, password: $("new-password").value }) })
    .then(function (r) {
      return r.json().then(function (b) {
        if (!r.ok) throw new Error((b.error && b.error.message) || "HTTP " + r.status);
        return b;
      });
    })
    .then(function (who) { history.replaceState(null, "", "/console/"); signedInAs(who, true); })
    .catch(function (err) { $("signin-error").textContent = err.message; });
});
/** Signed in by cookie: the agent's console, with the supervisor and admin views their role allows. */
export function signedInAs(who, fresh) {
  S.account = who;
  S.token = "";  // the socket's hello carries no token: the cookie came with the upgrade
  var rank = { agent: 0, supervisor: 1, admin: 2 }[who.role] || 0;
  $("go-supervisor").hidden = rank < 1;
  $("go-inbox").hidden = false;
  $("go-admin").hidden = rank < 2;
  S.goOnline = fresh;
  connect();
}
$("go-supervisor").addEventListener("click", function () { show("supervisor"); views.supervisor(); });
$("go-inbox").addEventListener("click", function () { S.inboxNew = 0; views.renderInboxBadge(); show("inbox"); views.inbox(); });
$("go-admin").addEventListener("click", function () { show("admin"); views.adminView(); });
$("go-chats").addEventListener("click", function () { show("app"); });
$("signout").addEventListener("click", function () {
  sessionStorage.removeItem(TOKEN_KEY);
  if (S.account) {
    api("/v1/auth/sign-out", { method: "POST" }).then(function () { location.reload(); }, function () { location.reload(); });
  } else {
    location.reload();
  }
});

// ---- connection ---------------------------------------------------------------------------
export function connect() {
  clearTimeout(S.retry);
  var sock = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/v1/agent");
  S.ws = sock;
  sock.onopen = function () {
    var resume = {};
    S.order.forEach(function (id) { if (!S.chats[id].ended) resume[id] = S.chats[id].lastSeq; });
    var hello = { type: "hello", token: S.token, resume: resume };
    if (S.goOnline) hello.status = "online";
    sock.send(JSON.stringify(hello));
  };
  sock.onmessage = function (e) {
    if (sock !== S.ws) return;
    var m; try { m = JSON.parse(e.data); } catch (x) { return; }
    onMessage(m);
  };
  sock.onclose = function () {
    if (sock !== S.ws) return;
    S.ws = null;
    $("conn").textContent = T("reconnecting…"); $("conn").classList.add("down");
    var delay = Math.min(15000, 500 * Math.pow(2, S.attempts++)) * (0.5 + Math.random());
    S.retry = setTimeout(connect, delay);
  };
}
setInterval(function () { if (S.ws && S.ws.readyState === 1) S.ws.send('{"type":"ping"}'); }, 20000);

export function onMessage(m) {
  switch (m.type) {
    case "welcome":
      S.attempts = 0; S.signedIn = true; S.goOnline = false;
      S.me = m.agent; S.site = m.site || S.site;
      $("auth").hidden = true; $("bar").hidden = false; $("app").hidden = false;
      $("conn").textContent = T("connected"); $("conn").classList.remove("down");
      $("site-name").textContent = S.site.name || "";
      $("go-inbox").hidden = false; // every agent has an inbox: their departments' tickets
      views.renderMe();
      send({ type: "watch_visitors", on: true });
      setupPush(); // the bell: this browser's notifications (Web Push), the agent's own
      break;
    case "agent": S.me = m.agent; views.renderMe(); break;
    // An admin changed the site: new canned responses, agents and departments apply at once.
    case "site":
      S.site = m.site;
      $("site-name").textContent = S.site.name || "";
      views.renderChats(); views.renderChat();
      if (!$("transfer").hidden) views.transferTargets(null);
      break;
    case "assigned": views.assigned(m); break;
    case "transcript": views.earlier(m); break;
    case "event": views.onEvent(m.conversation, m.event); break;
    case "unassigned": views.ended(m.conversation, m.reason); break;
    case "closed": views.ended(m.conversation, "closed"); break;
    case "ack":
      delete S.pending[m.client_id];
      break;
    case "queues":
      m.queues.forEach(function (q) { S.queues[q.department] = { size: q.size, oldest: q.oldest_wait_secs, at: Date.now() }; });
      views.renderQueues();
      break;
    case "visitors":
      S.visitors = {};
      m.visitors.forEach(function (v) { v.seen = Date.now(); S.visitors[v.id] = v; });
      views.renderVisitors();
      break;
    case "visitor":
      m.visitor.seen = Date.now(); S.visitors[m.visitor.id] = m.visitor; views.renderVisitors();
      // What the visitor said about themselves since the chat began (asked inside the chat).
      S.order.forEach(function (id) {
        var c = S.chats[id], v = c.visitor;
        if (!v || v.id !== m.visitor.id) return;
        if (m.visitor.name) v.name = m.visitor.name;
        if (m.visitor.email) v.email = m.visitor.email;
        views.renderChats();
        if (id === S.current) { views.renderProfile(); $("chat-title").textContent = v.name || v.email || $("chat-title").textContent; }
      });
      break;
    case "visitor_left": delete S.visitors[m.id]; views.renderVisitors(); break;
    case "offline_message":
      // A message left while nobody could answer, or an email reply to an answer: an open
      // ticket in Conversations.
      S.inboxNew++; views.renderInboxBadge();
      toast(T(m.email_reply ? "Email reply from " : "Offline message from ") + (m.name || m.email) + ": " + m.text);
      views.alertAgent(T(m.email_reply ? "Email reply" : "Offline message"), (m.name || m.email) + ": " + m.text, null);
      break;
    case "sla_warning":
      // Supervisors only: a chat near (or past) its department's wait target.
      S.sla = [m].concat(S.sla.filter(function (w) { return w.conversation !== m.conversation || w.department !== m.department; })).slice(0, 50);
      views.renderSla();
      views.alertAgent(T(m.breached ? "Service level missed" : "Service level at risk"),
        T("A chat in ") + m.department + T(" has waited ") + m.elapsed_secs + " s / " + m.target_secs + " s", null);
      break;
    case "read":
      if (S.chats[m.conversation]) {
        S.chats[m.conversation].visitorRead = Math.max(S.chats[m.conversation].visitorRead || 0, m.seq);
        if (m.conversation === S.current) views.markSeen();
      }
      break;
    case "typing":
      // With the site's typing preview, `text` is the visitor's draft so far.
      S.remoteTyping[m.conversation] = m.on && (m.text ? m.text : true);
      if (m.conversation === S.current) views.renderTyping();
      break;
    case "colleagues": if (!$("transfer").hidden) views.transferTargets(m.agents); break;
    case "history":
      S.order.forEach(function (id) {
        var c = S.chats[id];
        if (c.visitor.id === m.visitor) { c.history = m.tickets.filter(function (t) { return t.conversation !== id; }); }
      });
      if (S.current && S.chats[S.current].visitor.id === m.visitor) views.renderProfile();
      break;
    case "error":
      if (!S.signedIn && (m.code === "unauthorized" || m.code === "hello_required")) { signInFailed(S.account ? T("Your session ended; sign in again.") : T("That token is not valid.")); return; }
      // A refused message goes back into an empty compose box, so nothing typed is lost.
      if (m.client_id && S.pending[m.client_id] != null) {
        if (!$("text").value) $("text").value = S.pending[m.client_id];
        delete S.pending[m.client_id];
      }
      toast(m.message + " (" + m.code + ")");
      break;
  }
}
