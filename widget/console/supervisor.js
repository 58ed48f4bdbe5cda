// @ts-check
/** @file The supervisor view (REST): agents, queues and figures; watching a chat. */

import { api } from "./api.js";
import { appendEvent } from "./chats.js";
import { $, dur, toast } from "./dom.js";
import { renderSupervisor } from "./inbox.js";
import { show, signInFailed } from "./session.js";
import { S } from "./state.js";
import { T } from "./strings.js";

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
export function secs(v) { return v == null ? "–" : dur(v); }
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
    r.events.forEach(function (ev) { appendEvent(box, ev); });
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
