// @ts-check
/** @file The supervisor view (REST): agents, queues and figures; watching a chat. */

import { api } from "./api.js";
import { $, button, dur, el, secs, toast } from "./dom.js";
import { show, signInFailed } from "./shell.js";
import { S } from "./state.js";
import { T } from "./strings.js";
import { views } from "./views.js";

// ---- supervisor view (REST) -------------------------------------------------------------------
export function supervisor() {
  Promise.all([api("/v1/agents"), api("/v1/queues"), api("/v1/stats"), api("/v1/visitors")]).then(function (r) {
    // Who is in each chat, by name: the live visitors know their conversation.
    svNames = {};
    r[3].visitors.forEach(function (v) { if (v.in_chat) svNames[v.in_chat] = v.name || v.email || ""; });
    $("auth").hidden = true; $("bar").hidden = false;
    if (!S.account) {
      // The admin token: no agent behind it, so no chats; the admin pages are there.
      ["status-wrap", "limit-wrap", "load", "conn"].forEach(function (id) { $(id).hidden = true; });
      $("me-name").textContent = T("Supervisor");
      $("go-admin").hidden = false;
      $("go-inbox").hidden = false;
    }
    if ($("admin").hidden) show("supervisor");
    renderSupervisor(r[0].agents, r[1].queues, r[2]);
    if (!$("supervisor").hidden) setTimeout(supervisor, 5000);
  }).catch(function (e) {
    if (e.message === "unauthorized") signInFailed(T("That is not the admin token."));
    else { toast("Could not refresh: " + e.message); setTimeout(supervisor, 5000); }
  });
}
export var svNames = {}, svWatching = null, svTimer = null;
/** Watches a live chat read-only, refreshed every two seconds while the panel is open. */
export function watchChat(id) {
  svWatching = id;
  clearTimeout(svTimer);
  api("/v1/conversations/" + encodeURIComponent(id)).then(function (r) {
    if (svWatching !== id) return;
    $("sv-watch").hidden = false;
    var who = r.visitor.name || r.visitor.email || T("Visitor");
    $("sv-watch-title").textContent = who + " · " + (r.conversation.agent ? r.conversation.agent.name : T("waiting")) + " · " + T(r.conversation.state);
    var box = $("sv-watch-events");
    var atEnd = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
    box.textContent = "";
    r.events.forEach(function (ev) { views.appendEvent(box, ev); });
    if (atEnd) box.scrollTop = box.scrollHeight;
    if (r.conversation.state !== "closed") svTimer = setTimeout(function () { if (svWatching === id) watchChat(id); }, 2000);
  }, function (e) { toast("Could not open the chat: " + e.message); });
}
$("sv-watch-close").addEventListener("click", function () { svWatching = null; clearTimeout(svTimer); $("sv-watch").hidden = true; });
$("sv-note").addEventListener("submit", function (e) {
  e.preventDefault();
  if (!svWatching) return;
  var id = svWatching;
  api("/v1/conversations/" + encodeURIComponent(id) + "/note", { method: "POST", body: { text: $("sv-note-text").value } })
    .then(function () { $("sv-note-text").value = ""; watchChat(id); }, function (err) { toast("Not sent: " + err.message); });
});

export function renderSupervisor(agents, qs, stats) {
  var figs = $("figures");
  figs.textContent = "";
  [[T("Chats today"), stats.chats], [T("Median queue wait"), secs(stats.queue_wait_secs.median)],
   [T("90% queue wait"), secs(stats.queue_wait_secs.p90)], [T("Median first response"), secs(stats.first_response_secs.median)],
   [T("90% first response"), secs(stats.first_response_secs.p90)],
   [T("Average rating"), stats.rating.average == null ? "–" : stats.rating.average.toFixed(2) + " (" + stats.rating.count + ")"]
  ].forEach(function (f) {
    var d = el("div", "figure");
    d.appendChild(el("div", "muted", f[0]));
    d.appendChild(el("div", "v", f[1]));
    figs.appendChild(d);
  });
  var tb = $("sv-agents");
  tb.textContent = "";
  agents.forEach(function (a) {
    var tr = el("tr");
    tr.dataset.agent = a.id;
    tr.appendChild(el("td", null, a.name));
    tr.appendChild(el("td", null, T(a.status) + (a.connected ? "" : a.present ? T(" (reconnecting)") : T(" (not connected)"))));
    tr.appendChild(el("td", null, a.load + " / " + a.max_concurrent));
    var td = el("td", null, (a.chats || []).length ? "" : "–");
    (a.chats || []).forEach(function (id) {
      var chip = el("div", "sv-chat", (svNames[id] || T("Visitor ") + id.slice(-6)) + " ");
      chip.dataset.conversation = id;
      chip.appendChild(button(T("Watch"), function () { watchChat(id); }));
      // A signed-in supervisor takes a chat over: it moves to them with its whole history.
      if (S.account && a.id !== S.account.agent) {
        chip.appendChild(button(T("Take over"), function () {
          api("/v1/conversations/" + encodeURIComponent(id) + "/take-over", { method: "POST", body: { reason: "taken over by " + (S.me ? S.me.name : "a supervisor") } })
            .then(function () { show("app"); toast(T("The chat is yours now.")); }, function (err) { toast("Could not take it over: " + err.message); });
        }));
      }
      td.appendChild(chip);
    });
    tr.appendChild(td);
    tb.appendChild(tr);
  });
  var tq = $("sv-queues");
  tq.textContent = "";
  // The wait target of each department that has one: the oldest wait is shown against it.
  var targets = {};
  (stats.service_levels || []).forEach(function (l) { if (l.wait_target_secs) targets[l.department] = l.wait_target_secs; });
  qs.forEach(function (q) {
    var target = targets[q.department];
    var share = target && q.size ? q.oldest_wait_secs / target : 0;
    var tr = el("tr", share >= 1 ? "sla-breach" : share >= 0.8 ? "sla-near" : null);
    tr.dataset.department = q.department;
    tr.appendChild(el("td", null, q.name || q.department));
    tr.appendChild(el("td", null, q.size));
    tr.appendChild(el("td", null, (q.size ? dur(q.oldest_wait_secs) : "–") + (target ? " / " + dur(target) : "")));
    tq.appendChild(tr);
  });
  renderSla();
}

/** Service-level warnings heard over the socket, newest first. */
export function renderSla() {
  var tb = $("sv-sla");
  tb.textContent = "";
  $("sv-sla-empty").hidden = S.sla.length > 0;
  $("sv-sla-table").hidden = S.sla.length === 0;
  S.sla.forEach(function (w) {
    var tr = el("tr", w.breached ? "sla-breach" : "sla-near");
    tr.dataset.conversation = w.conversation;
    tr.appendChild(el("td", null, w.department));
    var td = el("td", null, (svNames[w.conversation] || T("Visitor ") + w.conversation.slice(-6)) + " ");
    td.appendChild(button(T("Watch"), function () { watchChat(w.conversation); }));
    tr.appendChild(td);
    tr.appendChild(el("td", null, dur(w.elapsed_secs)));
    tr.appendChild(el("td", null, T(w.target === "first_response" ? "first reply" : "in the queue") + " " + dur(w.target_secs)));
    tr.appendChild(el("td", null, T(w.breached ? "target missed" : "at risk")));
    tb.appendChild(tr);
  });
}

// What other views call of this one, bound when it loads (`views.js`).
Object.assign(views, { supervisor, renderSla });
