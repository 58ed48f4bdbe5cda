// @ts-check
/** @file Writing: canned responses, private notes, typing; transfer and close; keyboard shortcuts. */

import { $, el, rid } from "./dom.js";
import { send } from "./shell.js";
import { S } from "./state.js";
import { T } from "./strings.js";
import { views } from "./views.js";

// ---- composing: canned responses, notes, typing --------------------------------------------
export var text = $("text"), cannedBox = $("canned"), choice = 0;
export function fill(template, c) {
  var v = (c && c.visitor) || {};
  var vars = {
    visitor_name: v.name || "", visitor_email: v.email || "",
    agent_name: S.me.name, agent_first_name: S.me.name.split(/\s+/)[0], site_name: S.site.name || ""
  };
  return template.replace(/\{(\w+)\}/g, function (all, k) { return k in vars ? vars[k] : all; })
    .replace(/ +([!?.,])/g, "$1").replace(/ {2,}/g, " ").trim();
}
export function cannedMatches() {
  var m = /^\/([\w.-]*)$/.exec(text.value);
  if (!m) return [];
  return S.site.canned.filter(function (x) { return x.shortcut.indexOf(m[1]) === 0; });
}
export function renderCanned() {
  var list = cannedMatches();
  cannedBox.textContent = "";
  cannedBox.hidden = !list.length;
  choice = Math.min(choice, Math.max(0, list.length - 1));
  list.forEach(function (x, i) {
    var li = el("li");
    li.setAttribute("role", "option");
    li.setAttribute("aria-selected", String(i === choice));
    li.appendChild(el("b", null, "/" + x.shortcut));
    li.appendChild(el("span", "muted", fill(x.text, S.chats[S.current])));
    li.addEventListener("mousedown", function (e) { e.preventDefault(); expand(x); });
    cannedBox.appendChild(li);
  });
}
export function expand(x) {
  text.value = fill(x.text, S.chats[S.current]);
  cannedBox.hidden = true;
  text.focus();
}
text.addEventListener("input", function () {
  choice = 0;
  renderCanned();
  var c = S.current && S.chats[S.current];
  if (!c || c.ended || $("note-mode").checked) return;
  if (!S.typingSent) { S.typingSent = true; send({ type: "typing", conversation: S.current, on: true }); }
  clearTimeout(S.typingTimer);
  S.typingTimer = setTimeout(stopTyping, 2500);
});
export function stopTyping() {
  clearTimeout(S.typingTimer);
  if (S.typingSent && S.current) send({ type: "typing", conversation: S.current, on: false });
  S.typingSent = false;
}
text.addEventListener("keydown", function (e) {
  var list = cannedBox.hidden ? [] : cannedMatches();
  if (list.length && (e.key === "ArrowDown" || e.key === "ArrowUp")) {
    e.preventDefault();
    choice = (choice + (e.key === "ArrowDown" ? 1 : list.length - 1)) % list.length;
    renderCanned();
  } else if (list.length && (e.key === "Tab" || e.key === "Enter")) {
    e.preventDefault();
    expand(list[choice]);
  } else if (e.key === "Escape") {
    cannedBox.hidden = true;
  } else if (e.key === "Enter" && !e.shiftKey) {
    e.preventDefault();
    $("compose").requestSubmit();
  }
});
$("note-mode").addEventListener("change", function () {
  $("compose").classList.toggle("note-mode", this.checked);
  $("send").textContent = this.checked ? T("Add note") : T("Send");
  // A file always reaches the visitor: not offered while writing a private note.
  $("attach").hidden = this.checked;
  text.placeholder = this.checked ? T("Private note: only agents see it") : T("Reply… (/ for canned responses)");
});
$("compose").addEventListener("submit", function (e) {
  e.preventDefault();
  var body = text.value.trim();
  if (!body || !S.current) return;
  // A bare "/shortcut" that names a canned response is sent expanded.
  var exact = /^\/([\w.-]+)$/.exec(body);
  var canned = exact && S.site.canned.filter(function (x) { return x.shortcut === exact[1]; })[0];
  if (canned) body = fill(canned.text, S.chats[S.current]);
  var note = $("note-mode").checked, cid = rid();
  if (!send({ type: note ? "note" : "message", conversation: S.current, client_id: cid, text: body })) return;
  // The stored event comes back over the socket and shows in the transcript.
  S.pending[cid] = body;
  text.value = ""; cannedBox.hidden = true;
  if (!note) stopTyping();
});

// ---- transfer and close -------------------------------------------------------------------
// Transfer targets: colleagues with their status and load (asked for when the dialog opens),
// then the departments' queues. Who cannot take the chat now is listed, disabled, with why.
export function transferTargets(colleagues) {
  var sel = $("transfer-to"), c = S.chats[S.current], keep = sel.value;
  sel.textContent = "";
  var agents = colleagues || S.site.agents;
  agents.filter(function (a) { return a.id !== S.me.id; }).forEach(function (a) {
    var label = a.name, off = false;
    if (colleagues) {
      off = !a.present || a.status === "offline";
      var full = !off && a.load >= a.max_concurrent;
      label += " — " + T(off ? "offline" : a.status) + ", " + a.load + "/" + a.max_concurrent + (full ? T(" (full)") : "");
      off = off || full;
    }
    var o = el("option", null, label); o.value = "agent:" + a.id; o.disabled = off; sel.appendChild(o);
  });
  S.site.departments.forEach(function (d) {
    var o = el("option", null, d.name + T(" (queue)")); o.value = "department:" + d.id; sel.appendChild(o);
  });
  sel.value = keep && sel.querySelector("option[value='" + keep + "']:not([disabled])") ? keep : (c ? "department:" + c.department : "");
}
$("transfer-btn").addEventListener("click", function () {
  $("transfer-to").value = "";
  transferTargets(null);
  send({ type: "colleagues" });
  $("transfer").hidden = false;
  $("transfer-reason").focus();
});
$("transfer-cancel").addEventListener("click", function () { $("transfer").hidden = true; });
$("transfer").addEventListener("submit", function (e) {
  e.preventDefault();
  var to = $("transfer-to").value.split(":"), msg = { type: "transfer", conversation: S.current, reason: $("transfer-reason").value.trim() };
  if (to[0] === "agent") msg.to_agent = to[1]; else msg.to_department = to[1];
  var note = $("transfer-note").value.trim();
  if (note) msg.note = note;
  if (send(msg)) { $("transfer").hidden = true; $("transfer-reason").value = ""; $("transfer-note").value = ""; }
});
$("close-btn").addEventListener("click", function () {
  if (S.current) send({ type: "close", conversation: S.current, reason: "resolved" });
});

// ---- keyboard shortcuts ----------------------------------------------------------------------
// Alt+↓/Alt+↑ next or previous chat, Alt+R the composer, Alt+T transfer, Alt+W close the chat,
// ? (outside a text field) lists them. Alt keeps them clear of typing.
export function step(by) {
  if (!S.order.length) return;
  var i = S.order.indexOf(S.current);
  var next = S.order[(i < 0 ? 0 : (i + by + S.order.length) % S.order.length)];
  views.select(next);
}
document.addEventListener("keydown", function (e) {
  if ($("app").hidden) return;
  var target = /** @type {HTMLElement | null} */ (e.target);
  var typing = /^(INPUT|TEXTAREA|SELECT)$/.test((target && target.tagName) || "");
  if (e.altKey && !e.ctrlKey && !e.metaKey) {
    var k = e.key.toLowerCase();
    if (e.key === "ArrowDown") step(1);
    else if (e.key === "ArrowUp") step(-1);
    else if (k === "r" || e.code === "KeyR") { if (!$("compose").hidden) $("text").focus(); }
    else if (k === "t" || e.code === "KeyT") { if (!$("transfer-btn").disabled && S.current) $("transfer-btn").click(); }
    else if (k === "w" || e.code === "KeyW") { if (!$("close-btn").disabled && S.current) $("close-btn").click(); }
    // By key position (any layout); Alt+D would be the browser's address bar.
    else if (e.code === "KeyA" || e.code === "KeyX") { if (!$("offer").hidden) views.answerOffer(e.code === "KeyA"); }
    else return;
    e.preventDefault();
  } else if (e.key === "?" && !typing) {
    e.preventDefault();
    var help = $("shortcuts");
    if (help.open) help.close(); else help.showModal();
  }
});

// What other views call of this one, bound when it loads (`views.js`).
Object.assign(views, { transferTargets });
