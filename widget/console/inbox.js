// @ts-check
/** @file Conversations: past chats and offline messages (REST /v1/tickets), one opened with its transcript. */

import { api, fileEl } from "./api.js";
import { $, el, hhmm, linked, toast } from "./dom.js";
import { S } from "./state.js";
import { T } from "./strings.js";
import { views } from "./views.js";

// ---- conversations: past chats and offline messages (REST /v1/tickets) --------------------------
export var ibCursor = null, ibCurrent = null, ibSeq = 0;
export function dayStart(value, plusDays) {
  if (!value) return null;
  var d = new Date(value + "T00:00:00");
  d.setDate(d.getDate() + (plusDays || 0));
  return d.getTime();
}
export function inboxQuery() {
  var q = [], add = function (k, v) { if (v) q.push(k + "=" + encodeURIComponent(v)); };
  add("q", $("ib-q").value.trim()); add("status", $("ib-status").value); add("follow_up", $("ib-follow").value);
  add("department", $("ib-dept").value); add("agent", $("ib-agent").value.trim()); add("tag", $("ib-tag").value.trim().toLowerCase());
  add("rating", $("ib-rating").value);
  add("since", dayStart($("ib-since").value)); add("until", dayStart($("ib-until").value, 1));
  add("limit", 50);
  return q;
}
export function inbox(more) {
  var sel = $("ib-dept");
  if (sel.options.length === 1) {
    var fill = function (depts) {
      if (sel.options.length > 1) return;
      depts.forEach(function (d) { var o = el("option", null, d.name || d.id); o.value = d.id; sel.appendChild(o); });
    };
    if (S.site.departments.length) fill(S.site.departments);
    // The admin token has no site of its own: every site's departments, once each.
    else api("/v1/sites").then(function (r) {
      var seen = {};
      fill([].concat.apply([], r.sites.map(function (x) { return x.departments; }))
        .filter(function (d) { return !seen[d.id] && (seen[d.id] = true); }));
    }, function () {});
  }
  var q = inboxQuery();
  if (more && ibCursor) q.push("cursor=" + encodeURIComponent(ibCursor));
  // Only the latest request fills the list: an earlier, slower answer must not overwrite a search.
  var seq = ++ibSeq;
  api("/v1/tickets?" + q.join("&")).then(function (r) {
    if (seq !== ibSeq) return;
    $("auth").hidden = true; $("bar").hidden = false;
    var tb = $("ib-rows");
    if (!more) tb.textContent = "";
    r.tickets.forEach(function (t) { tb.appendChild(inboxRow(t)); });
    ibCursor = r.next_cursor;
    $("ib-more").hidden = !ibCursor;
    $("ib-none").hidden = tb.children.length > 0;
  }, function (e) { toast("Could not load conversations: " + e.message); });
}
export function inboxRow(t) {
  var tr = el("tr");
  tr.dataset.ticket = t.id;
  tr.tabIndex = 0;
  var who = (t.visitor && (t.visitor.name || t.visitor.email)) || T("Visitor");
  [new Date(t.closed_at || t.created_at).toLocaleString(), who, views.deptName(t.department),
   (t.agents || []).map(function (a) { return a.name; }).join(", ") || "–",
   T(t.status), T(t.follow_up || "–"), (t.tags || []).join(", ") || "–",
   t.rating ? t.rating.score + "★" : "–"].forEach(function (v) { tr.appendChild(el("td", null, v)); });
  var open = function () { openTicket(t.id); };
  tr.addEventListener("click", open);
  tr.addEventListener("keydown", function (e) { if (e.key === "Enter") open(); });
  return tr;
}
export function openTicket(id) {
  api("/v1/tickets/" + encodeURIComponent(id)).then(function (t) {
    ibCurrent = t;
    document.querySelectorAll("#ib-rows tr").forEach(function (/** @type {HTMLElement} */ r) { r.setAttribute("aria-current", String(r.dataset.ticket === id)); });
    $("ib-ticket").hidden = false;
    var who = (t.visitor && (t.visitor.name || t.visitor.email)) || T("Visitor");
    $("ib-title").textContent = who + " · " + views.deptName(t.department);
    $("ib-meta").textContent = new Date(t.closed_at || t.created_at).toLocaleString() + " · " + t.status +
      (t.visitor && t.visitor.email ? " · " + t.visitor.email : "") + (t.rating ? " · rated " + t.rating.score + "/5" + (t.rating.comment ? " “" + t.rating.comment + "”" : "") : "");
    var off = $("ib-offline");
    off.hidden = !t.offline_message;
    off.textContent = t.offline_message ? T("Offline message from ") + t.offline_message.email + ":\n" + t.offline_message.text : "";
    $("ib-set-follow").value = t.follow_up || "open";
    $("ib-set-tags").value = (t.tags || []).join(", ");
    var box = $("ib-transcript");
    box.textContent = "";
    (t.transcript || []).forEach(function (ev) { views.appendEvent(box, ev); });
    // The email thread, from the ticket's history: answers sent, and the visitor's replies
    // with their files (`email_received`).
    var replies = $("ib-replies");
    replies.textContent = "";
    (t.history || []).filter(function (h) { return h.kind === "email_reply" || h.kind === "email_received"; }).forEach(function (h) {
      var incoming = h.kind === "email_received";
      var d = el("div", incoming ? "ev email in" : "ev email");
      d.appendChild(el("div", "meta", incoming
        ? T("Email from ") + h.reason + " · " + hhmm(h.at)
        : T("Email to ") + h.reason + " · " + (h.agent ? h.agent.name : T("admin")) + " · " + hhmm(h.at)));
      d.appendChild(el("div", "text")).appendChild(linked(h.note || ""));
      (h.attachments || []).forEach(function (f) { d.appendChild(fileEl(f)); });
      replies.appendChild(d);
    });
    var to = (t.offline_message && t.offline_message.email) || (t.visitor && t.visitor.email);
    $("ib-reply").hidden = !to;
    $("ib-reply-label").textContent = to ? T("Answer ") + to + T(" by email") : "";
  }, function (e) { toast("Could not open it: " + e.message); });
}
$("ib-filters").addEventListener("submit", function (e) { e.preventDefault(); $("ib-ticket").hidden = true; inbox(false); });
$("ib-more").addEventListener("click", function () { inbox(true); });
$("ib-reply").addEventListener("submit", function (e) {
  e.preventDefault();
  if (!ibCurrent) return;
  var id = ibCurrent.id;
  api("/v1/tickets/" + encodeURIComponent(id) + "/reply", { method: "POST", body: { text: $("ib-reply-text").value } })
    .then(function () { $("ib-reply-text").value = ""; toast(T("Email sent.")); openTicket(id); },
      function (err) { toast("Not sent: " + err.message); });
});
$("ib-edit").addEventListener("submit", function (e) {
  e.preventDefault();
  if (!ibCurrent) return;
  var id = encodeURIComponent(ibCurrent.id);
  var tags = $("ib-set-tags").value.split(",").map(function (x) { return x.trim(); }).filter(Boolean);
  api("/v1/tickets/" + id + "/follow-up", { method: "PUT", body: { status: $("ib-set-follow").value } })
    .then(function () { return api("/v1/tickets/" + id + "/tags", { method: "PUT", body: { tags: tags } }); })
    .then(function (t) {
      var row = document.querySelector("#ib-rows tr[data-ticket='" + ibCurrent.id + "']");
      if (row) row.replaceWith(inboxRow(t));
      toast(T("Saved."));
      openTicket(t.id);
    }, function (err) { toast("Could not save: " + err.message); });
});

// What other views call of this one, bound when it loads (`views.js`).
Object.assign(views, { inbox });
