// @ts-check
/** @file The agent's chats: status and limit, the list and queues, the transcript in view, read receipts, the visitor's profile. */

import { fileEl } from "./api.js";
import { $, countryText, deviceText, dur, el, hhmm, linked, localTime, shortId, toast } from "./dom.js";
import { pane, send } from "./shell.js";
import { S } from "./state.js";
import { T, words } from "./strings.js";
import { views } from "./views.js";

// ---- the agent: status and limit ----------------------------------------------------------
export function renderMe() {
  $("me-name").textContent = S.me.name;
  $("status").value = S.me.status;
  $("limit").max = S.me.max_allowed;
  if (document.activeElement !== $("limit")) $("limit").value = S.me.max_concurrent;
  $("limit-wrap").hidden = S.me.max_allowed <= 1;
  $("load").textContent = S.me.load + " / " + S.me.max_concurrent;
}
$("status").addEventListener("change", function () { send({ type: "set_status", status: this.value }); });
$("limit").addEventListener("change", function () {
  var n = parseInt(this.value, 10);
  if (n >= 1 && n <= S.me.max_allowed) send({ type: "set_limit", max_concurrent: n });
  else { toast("Choose 1 to " + S.me.max_allowed); this.value = S.me.max_concurrent; }
});

// ---- chats --------------------------------------------------------------------------------
export function assigned(m) {
  var id = m.conversation.id, c = S.chats[id];
  if (!c) {
    c = S.chats[id] = { id: id, events: [], lastSeq: 0, unread: 0, history: null };
    S.order.push(id);
  }
  c.department = m.conversation.department; c.state = m.conversation.state;
  // Offered, not accepted yet: until when (the browser's clock, from the seconds left).
  c.offerUntil = m.conversation.offer_secs != null ? Date.now() + m.conversation.offer_secs * 1000 : 0;
  c.visitorRead = Math.max(c.visitorRead || 0, m.conversation.visitor_read || 0);
  c.readSent = Math.max(c.readSent || 0, m.conversation.agent_read || 0);
  c.visitor = m.visitor; c.ended = false;
  var fresh = c.lastSeq === 0;
  // A long absence: the page starts after a gap, so start over from it ("Load earlier" fills in).
  if (m.more && !fresh) { c.events = []; c.lastSeq = 0; }
  if (fresh || m.more) c.more = m.more;
  m.events.forEach(function (ev) { addEvent(c, ev); });
  if (fresh) {
    // Messages that came before the chat was in view count as unread.
    if (S.current && id !== S.current) {
      c.unread = c.events.filter(function (e) { return e.kind === "message" && e.author === "visitor"; }).length;
    }
    send({ type: "history", visitor: m.visitor.id });
    views.alertAgent(T(c.offerUntil ? "Chat offered" : "New chat"), (visitorName(c)) + ": " + (lastText(c) || T("assigned to you")), id);
    // Opens when no live chat is in view (none, or the one shown has ended), or when the agent
    // just started it from the Visitors tab.
    var started = m.visitor && m.visitor.id === S.startedFor;
    if (started) S.startedFor = null;
    if (started || !S.current || !S.chats[S.current] || S.chats[S.current].ended) select(id);
  }
  renderChats();
  if (id === S.current) renderChat();
}
// An earlier page of a transcript (answer to "transcript"): goes before what is shown.
export function earlier(m) {
  var c = S.chats[m.conversation];
  if (!c) return;
  c.loading = false;
  var first = c.events.length ? c.events[0].seq : Infinity;
  c.events = m.events.filter(function (ev) { return ev.seq < first; }).concat(c.events);
  c.more = m.more;
  if (m.conversation === S.current) {
    var t = $("transcript"), fromBottom = t.scrollHeight - t.scrollTop;
    renderChat();
    t.scrollTop = t.scrollHeight - fromBottom;
  }
}
export function loadEarlier(c) {
  if (c.loading || !c.events.length) return;
  c.loading = true;
  send({ type: "transcript", conversation: c.id, before: c.events[0].seq });
}
export function addEvent(c, ev) {
  if (ev.seq <= c.lastSeq) return false;
  c.lastSeq = ev.seq;
  c.events.push(ev);
  if (ev.kind === "closed") c.state = "closed";
  return true;
}
export function onEvent(id, ev) {
  var c = S.chats[id];
  if (!c || !addEvent(c, ev)) return;
  // Accepted (here or in another tab): the chat is ours to answer.
  if (ev.kind === "assigned" && S.me && ev.agent.id === S.me.id && c.offerUntil) {
    c.offerUntil = 0;
    if (id === S.current) renderChat();
  }
  if (ev.kind === "message" && ev.author === "visitor") {
    S.remoteTyping[id] = false;
    if (id !== S.current || document.hidden) c.unread++;
    views.alertAgent(visitorName(c), ev.text, id);
  }
  renderChats();
  if (id === S.current) { appendEvent($("transcript"), ev); markSeen(); scrollDown(); renderTyping(); readNow(); }
}
// Read receipts. The visitor's: "Seen" under the last of your messages they have read. Yours:
// sent when the chat is on screen (this tab visible and focused), at most every half second.
export function markSeen() {
  var c = S.current && S.chats[S.current], t = $("transcript");
  t.querySelectorAll(".seen").forEach(function (s) { s.remove(); });
  if (!c || !c.visitorRead) return;
  /** @type {HTMLElement | null} */
  var last = null;
  var mine = t.querySelectorAll(".ev.agent[data-seq]");
  mine.forEach(function (/** @type {HTMLElement} */ d) { if (+d.dataset.seq <= c.visitorRead) last = d; });
  if (last) last.appendChild(el("div", "seen", T("Seen")));
}
export var readTimer = null;
export function readNow() {
  if (readTimer) return;
  readTimer = setTimeout(function () {
    readTimer = null;
    var c = S.current && S.chats[S.current];
    if (!c || c.ended || c.state === "closed" || document.hidden || !document.hasFocus() || (c.readSent || 0) >= c.lastSeq) return;
    if (send({ type: "read", conversation: c.id, seq: c.lastSeq })) c.readSent = c.lastSeq;
  }, 500);
}
window.addEventListener("focus", readNow);
document.addEventListener("visibilitychange", readNow);
export function ended(id, reason) {
  var c = S.chats[id];
  if (!c) return;
  c.ended = reason;
  if (reason === "lost") toast(T("A chat was lost by the server (its state store restarted empty)."));
  renderChats();
  if (id === S.current) renderChat();
}
export function visitorName(c) { return (c.visitor && (c.visitor.name || c.visitor.email)) || shortId(c.visitor && c.visitor.id); }
export function lastText(c) {
  for (var i = c.events.length - 1; i >= 0; i--) if (c.events[i].kind === "message") return c.events[i].text;
  return "";
}
// Waiting: the visitor spoke last and nobody answered yet.
export function waitingSince(c) {
  for (var i = c.events.length - 1; i >= 0; i--) {
    var ev = c.events[i];
    if (ev.kind === "message") return ev.author === "visitor" ? ev.at : null;
  }
  return null;
}
export function renderChats() {
  var ul = $("chats");
  ul.textContent = "";
  S.order.forEach(function (id) {
    var c = S.chats[id];
    var li = el("li", "chat-item" + (c.ended ? " ended" : ""));
    li.dataset.conversation = id;
    li.setAttribute("aria-current", String(id === S.current));
    // Options of a listbox, reachable and openable from the keyboard: Tab, arrows, Enter.
    li.tabIndex = 0;
    li.setAttribute("role", "option");
    li.setAttribute("aria-selected", String(id === S.current));
    li.appendChild(el("span", "who", visitorName(c)));
    var u = el("span", "unread", c.unread);
    u.hidden = !c.unread;
    li.appendChild(u);
    li.appendChild(el("span", "last", c.ended ? T("ended (") + words(c.ended) + ")" : lastText(c)));
    if (c.offerUntil && !c.ended) {
      var o = el("span", "offer", offerText(c));
      o.dataset.offer = id;
      li.appendChild(o);
    }
    var since = !c.ended && waitingSince(c);
    var w = el("span", "wait", since ? T("waiting ") + dur((Date.now() - since) / 1000) : "");
    w.dataset.since = since || "";
    li.appendChild(w);
    li.addEventListener("click", function () { select(id); });
    li.addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); select(id); }
      else if (e.key === "ArrowDown" && li.nextElementSibling) { e.preventDefault(); li.nextElementSibling.focus(); }
      else if (e.key === "ArrowUp" && li.previousElementSibling) { e.preventDefault(); li.previousElementSibling.focus(); }
    });
    ul.appendChild(li);
  });
  $("no-chats").hidden = S.order.length > 0;
  var unread = S.order.reduce(function (n, id) { return n + S.chats[id].unread; }, 0);
  document.title = (unread ? "(" + unread + ") " : "") + T("Switchboard console");
}
export function renderQueues() {
  var ul = $("queues");
  ul.textContent = "";
  Object.keys(S.queues).sort().forEach(function (d) {
    var q = S.queues[d], li = el("li", "queue-item");
    li.dataset.department = d;
    li.appendChild(el("span", null, deptName(d)));
    var w = el("span", "muted", q.size + (q.size ? " · oldest " + dur(q.oldest + (Date.now() - q.at) / 1000) : ""));
    li.appendChild(w);
    ul.appendChild(li);
  });
}
export function deptName(id) {
  var d = S.site.departments.filter(function (x) { return x.id === id; })[0];
  return d ? d.name : id;
}
// Waiting times and queue ages tick without a server round trip.
setInterval(function () {
  document.querySelectorAll(".chat-item .wait").forEach(function (/** @type {HTMLElement} */ w) {
    if (w.dataset.since) w.textContent = T("waiting ") + dur((Date.now() - Number(w.dataset.since)) / 1000);
  });
  document.querySelectorAll(".chat-item .offer").forEach(function (/** @type {HTMLElement} */ o) {
    var c = S.chats[o.dataset.offer || ""];
    if (c) o.textContent = offerText(c);
  });
  var shown = S.current && S.chats[S.current];
  if (shown && shown.offerUntil && !shown.ended) $("offer-left").textContent = offerText(shown);
  if (Object.keys(S.queues).length) renderQueues();
  if (!$("visitors-view").hidden) views.renderVisitors();
}, 1000);

export function select(id) {
  S.current = id;
  views.showTab("chats");
  pane("chat");
  var c = S.chats[id];
  c.unread = 0;
  $("transfer").hidden = true;
  renderChats();
  renderChat();
  $("text").focus();
}
$("back-to-list").addEventListener("click", function () { pane("list"); });
$("show-details").addEventListener("click", function () { pane("details"); });
$("back-to-chat").addEventListener("click", function () { pane("chat"); });

export function renderChat() {
  var c = S.current && S.chats[S.current];
  $("chat-view").hidden = !c; $("empty").hidden = !!c;
  if (!c) { $("profile").hidden = true; return; }
  $("chat-title").textContent = visitorName(c);
  $("chat-dept").textContent = deptName(c.department);
  var t = $("transcript");
  t.textContent = "";
  if (c.more) {
    var more = el("button", "earlier", c.loading ? T("Loading…") : T("Load earlier messages"));
    more.id = "earlier";
    more.addEventListener("click", function () { loadEarlier(c); this.textContent = T("Loading…"); });
    t.appendChild(more);
  }
  c.events.forEach(function (ev) { appendEvent(t, ev); });
  markSeen();
  readNow();
  if (c.ended) t.appendChild(el("div", "ev sys", T("This chat is no longer yours (") + words(c.ended) + ")."));
  var offered = !c.ended && !!c.offerUntil;
  var open = !c.ended && !offered;
  $("offer").hidden = !offered;
  if (offered) $("offer-left").textContent = offerText(c);
  $("compose").hidden = !open;
  $("transfer-btn").disabled = !open; $("close-btn").disabled = !open;
  scrollDown();
  renderTyping();
  renderProfile();
}
// "Offered: 12 s to accept" (0 once the time is up: the server takes it back).
export function offerText(c) {
  return T("Offered to you: ") + Math.max(0, Math.ceil((c.offerUntil - Date.now()) / 1000)) + T(" s to accept");
}
// Accept or decline the chat in view (buttons, or Alt+A / Alt+X: `compose.js`).
export function answerOffer(accept) {
  var c = S.current && S.chats[S.current];
  if (!c || !c.offerUntil || c.ended) return;
  if (accept) send({ type: "accept", conversation: c.id });
  else send({ type: "decline", conversation: c.id, reason: /** @type {HTMLSelectElement} */ ($("decline-reason")).value });
}
$("offer").addEventListener("submit", function (e) { e.preventDefault(); answerOffer(true); });
$("decline").addEventListener("click", function () { answerOffer(false); });
export function scrollDown() { var t = $("transcript"); t.scrollTop = t.scrollHeight; }
export function renderTyping() {
  var t = S.current && S.remoteTyping[S.current];
  $("typing").textContent = !t ? "" : typeof t === "string" ? T("Visitor is typing: ") + t : T("Visitor is typing…");
}

export function appendEvent(box, ev) {
  var d;
  switch (ev.kind) {
    case "message":
      d = el("div", "ev " + (ev.author === "visitor" ? "visitor" : ev.author === "agent" ? "agent" : "system"));
      d.appendChild(el("div", "meta", (ev.author === "visitor" ? (ev.author_name || T("Visitor")) : (ev.author_name || T("System"))) + " · " + hhmm(ev.at)));
      if (ev.attachment) d.appendChild(el("div", "text")).appendChild(fileEl(ev.attachment));
      else d.appendChild(el("div", "text")).appendChild(linked(ev.text));
      break;
    case "note":
      d = el("div", "ev note");
      d.appendChild(el("div", "meta", T("Private note · ") + ev.agent.name + " · " + hhmm(ev.at)));
      d.appendChild(el("div", "text")).appendChild(linked(ev.text));
      break;
    case "transferred":
      // "From" the previous owner: a supervisor's take-over is not the owner's doing.
      d = el("div", "ev internal", T("Transferred from ") + (ev.from ? ev.from.name : "—") + T(" to ") + (ev.to_agent ? ev.to_agent.name : deptName(ev.to_department)) +
        ": " + ev.reason + (ev.note ? " — " + ev.note : "") + " · " + hhmm(ev.at));
      break;
    case "requeued":
      d = el("div", "ev internal", T("Back to the queue: ") + ev.agent.name + " " + words(ev.reason) + " · " + hhmm(ev.at));
      break;
    case "assigned": d = el("div", "ev sys", T("Assigned to ") + ev.agent.name + " · " + hhmm(ev.at)); break;
    case "offered": d = el("div", "ev internal", T("Offered to ") + ev.agent.name + " · " + hhmm(ev.at)); break;
    case "notice": d = el("div", "ev sys", ev.text); break;
    case "sla":
      d = el("div", "ev internal", T(ev.breached ? "Service level missed: waited " : "Service level at risk: waited ") + ev.elapsed_secs + " s / " + ev.target_secs + " s · " + hhmm(ev.at));
      break;
    case "closed": d = el("div", "ev sys", T("Closed by ") + words(ev.by) + " (" + words(ev.reason) + ") · " + hhmm(ev.at)); break;
    default: return null;
  }
  d.dataset.seq = ev.seq;
  d.dataset.kind = ev.kind;
  box.appendChild(d);
  return d;
}

export function renderProfile() {
  var c = S.current && S.chats[S.current];
  $("profile").hidden = !c;
  if (!c) return;
  var v = c.visitor || {}, dl = $("profile-fields");
  dl.textContent = "";
  function row(k, val) { if (val == null || val === "") return; dl.appendChild(el("dt", null, T(k))); dl.appendChild(el("dd", null, val)); }
  row("Name", v.name); row("Email", v.email);
  row("Visitor", v.visits > 1 ? T("returning (") + v.visits + T(" visits)") : T("new"));
  row("Locale", v.locale); row("Local time", localTime(v.timezone));
  row("Device", deviceText(v.device)); row("Country", countryText(v.country));
  row("Page", v.page_title || v.page_url); row("Referrer", v.referrer);
  Object.keys(v.utm || {}).forEach(function (k) { row(k, v.utm[k]); });
  Object.keys(v.fields || {}).forEach(function (k) { row(k, v.fields[k]); });
  if (v.verified) row("Identity", T("verified (") + v.user_id + ")");
  var ol = $("profile-pages");
  ol.textContent = "";
  (v.pages || []).filter(function (p) { return p.at >= (v.visit_started || 0); }).forEach(function (p) {
    ol.appendChild(el("li", null, (p.title ? p.title + " — " : "") + p.url + " · " + hhmm(p.at)));
  });
  var h = $("history");
  h.textContent = "";
  if (!c.history) { h.appendChild(el("p", "muted", T("Loading…"))); return; }
  if (!c.history.length) { var none = el("p", "muted", T("No earlier chats.")); none.style.margin = "0 12px"; h.appendChild(none); return; }
  c.history.forEach(function (t) {
    var det = el("details", "ticket");
    det.appendChild(el("summary", null, new Date(t.closed_at).toLocaleString() + " · " + t.status +
      (t.agents.length ? " · " + t.agents.map(function (a) { return a.name; }).join(", ") : "")));
    if (t.transcript_more) det.appendChild(el("div", "ev sys", "… earlier messages are in the ticket"));
    t.transcript.forEach(function (ev) { appendEvent(det, ev); });
    h.appendChild(det);
  });
}

// What other views call of this one, bound when it loads (`views.js`).
Object.assign(views, { answerOffer, appendEvent, assigned, deptName, earlier, ended, markSeen, onEvent, renderChat, renderChats, renderMe, renderProfile, renderQueues, renderTyping, select });
