// @ts-check
/** @file Admin pages: the site's directory over REST (agents, departments and hours, canned responses, triggers, widget, webhooks). */

import { api } from "./api.js";
import { $, button, el, toast } from "./dom.js";
import { signInFailed } from "./shell.js";
import { S } from "./state.js";
import { LANG, T } from "./strings.js";
import { views } from "./views.js";

/** A role as the page names it (the words are keys of the translations). */
var ROLE = { agent: "Agent", supervisor: "Supervisor", admin: "Administrator" };

// ---- admin pages (the directory over REST) ------------------------------------------------
export var adminSite = null;   // the site being administered: its id and directory
$("admin-tabs").addEventListener("click", function (e) {
  var pane = e.target.dataset && e.target.dataset.pane;
  if (!pane) return;
  document.querySelectorAll("#admin-tabs button").forEach(function (b) { b.setAttribute("aria-selected", String(b === e.target)); });
  document.querySelectorAll("#admin section.pane").forEach(function (/** @type {HTMLElement} */ s) { s.hidden = s.dataset.pane !== pane; });
});
export function adminFailed(err) {
  $("admin-error").textContent = (err.field ? err.field + ": " : "") + err.message;
  if (err.message === "unauthorized") signInFailed(T("Your session ended; sign in again."));
}
/** Reloads the site's directory and redraws every pane. */
export function adminView() {
  $("auth").hidden = true; $("bar").hidden = false;
  api("/v1/sites").then(function (r) {
    var own = S.account ? r.sites.filter(function (s) { return s.id === S.account.site; })[0] : r.sites[0];
    adminSite = own;
    renderAdmin();
  }).catch(adminFailed);
}
/** Saves through `call`, then reloads the directory; shows the field of a refusal. */
export function save(call) {
  $("admin-error").textContent = "";
  return call.then(function (r) { adminView(); toast(T("Saved")); return r; }).catch(function (err) { adminFailed(err); throw err; });
}
export function sitePath(rest) { return "/v1/sites/" + encodeURIComponent(adminSite.id) + (rest || ""); }
export function list(text) { return text.split(",").map(function (x) { return x.trim(); }).filter(Boolean); }
export function rowOf(tbody, cells, actions) {
  var tr = el("tr");
  cells.forEach(function (c) { tr.appendChild(el("td", null, c)); });
  var td = el("td");
  (actions || []).forEach(function (a) { td.appendChild(a); td.appendChild(document.createTextNode(" ")); });
  tr.appendChild(td);
  tbody.appendChild(tr);
  return tr;
}
export function remove(kind, id) {
  if (!confirm(T("Delete ") + id + "?")) return;
  save(api(sitePath("/" + kind + "/" + encodeURIComponent(id)), { method: "DELETE" })).catch(function () {});
}
export var DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
export function renderAdmin() {
  var s = adminSite;
  var tb = $("ad-agents"); tb.textContent = "";
  s.agents.forEach(function (a) {
    var tr = rowOf(tb, [a.name + " (" + a.id + ")", a.email || "–", T(ROLE[a.role] || a.role), a.departments.join(", "), (a.skills || []).join(", ") || "–", a.max_concurrent, a.disabled ? T("disabled") : T("active")], [
      button(T("Edit"), function () { editAgent(a); }),
      button(a.disabled ? T("Enable") : T("Disable"), function () {
        var body = Object.assign({}, a, { disabled: !a.disabled });
        save(api(sitePath("/agents/" + encodeURIComponent(a.id)), { method: "PUT", body: body })).catch(function () {});
      }),
      button(T("Reset password"), function () {
        save(api(sitePath("/agents/" + encodeURIComponent(a.id) + "/invite"), { method: "POST" })).then(showInvite, function () {});
      }),
    ]);
    tr.dataset.agent = a.id;
  });
  var td = $("ad-depts"); td.textContent = "";
  s.departments.forEach(function (d) {
    var hours = d.hours ? d.hours.timezone + ": " + DAYS.filter(function (k) { return (d.hours[k] || []).length; })
      .map(function (k) { return k.slice(0, 3) + " " + d.hours[k].join(","); }).join("; ") : T("always open");
    rowOf(td, [d.id, d.name || "", hours, routingSummary(d.routing)], [button(T("Edit"), function () { editDept(d); }), button(T("Delete"), function () { remove("departments", d.id); })])
      .dataset.department = d.id;
  });
  var tc = $("ad-canned"); tc.textContent = "";
  s.canned.forEach(function (c) {
    rowOf(tc, ["/" + c.shortcut, c.text], [button(T("Edit"), function () { $("cn-shortcut").value = c.shortcut; $("cn-text").value = c.text; }),
      button(T("Delete"), function () { remove("canned", c.shortcut); })]);
  });
  // Who a proactive message is signed by: an agent of the site, or the department.
  var senders = $("tr-agent"), chosen = senders.value;
  senders.textContent = "";
  var dflt = el("option", null, T("the department")); dflt.value = ""; senders.appendChild(dflt);
  s.agents.forEach(function (a) { var o = el("option", null, a.name); o.value = a.id; senders.appendChild(o); });
  senders.value = chosen;
  var tt = $("ad-triggers"); tt.textContent = "";
  s.triggers.forEach(function (t) {
    rowOf(tt, [t.id, t.url || "any page", t.time_on_page_secs + " s", t.message], [
      button(T("Edit"), function () { $("tr-id").value = t.id; $("tr-url").value = t.url || ""; $("tr-secs").value = t.time_on_page_secs;
        $("tr-message").value = t.message; $("tr-dept").value = t.department || ""; $("tr-agent").value = t.as_agent || ""; }),
      button(T("Delete"), function () { remove("triggers", t.id); })]);
  });
  $("st-name").value = s.name || "";
  $("st-origins").value = s.allowed_origins.join("\n");
  $("st-color").value = s.widget.color;
  $("st-title").value = s.widget.title || "";
  $("st-greeting").value = s.widget.greeting || "";
  $("st-preview").checked = !!s.widget.typing_preview;
  $("st-smtp").value = s.smtp_url || "";
  $("st-from").value = s.email_from || "";
  $("st-inbound").value = s.email_inbound || "";
  $("st-smtp-password").value = "";
  $("st-smtp-password").placeholder = T(s.smtp_password_set ? "empty keeps the current one" : "not set");
  preview();
  var th = $("ad-hooks"); th.textContent = "";
  s.webhooks.forEach(function (w) {
    rowOf(th, [w.id, w.url, w.events.join(", ")], [
      button(T("Edit"), function () { $("wh-id").value = w.id; $("wh-url").value = w.url; $("wh-secret").value = ""; $("wh-events").value = w.events.join(", "); }),
      button(T("Delete"), function () { remove("webhooks", w.id); })]);
  });
  api("/v1/webhooks/dead?site=" + encodeURIComponent(s.id)).then(function (r) {
    var tdd = $("ad-dead"); tdd.textContent = "";
    r.deliveries.forEach(function (d) {
      rowOf(tdd, [d.id, d.event, d.url, d.attempts + (d.last_error ? " (" + d.last_error + ")" : "")], [
        button(T("Retry"), function () { save(api("/v1/webhooks/dead/" + encodeURIComponent(d.id) + "/retry", { method: "POST" })).catch(function () {}); })]);
    });
  }).catch(adminFailed);
}
export function showInvite(r) {
  if (!r || !r.invite) return;
  $("invite-box").hidden = false;
  $("invite-link").value = location.origin + r.invite.url;
}
export function editAgent(a) {
  $("agent-form-title").textContent = T("Edit ") + a.name;
  $("ag-id").value = a.id; $("ag-id").readOnly = true;
  $("ag-name").value = a.name; $("ag-email").value = a.email || ""; $("ag-role").value = a.role;
  $("ag-depts").value = a.departments.join(", "); $("ag-max").value = a.max_concurrent; $("ag-disabled").checked = !!a.disabled;
  $("ag-skills").value = (a.skills || []).join(", ");
  $("ag-save").textContent = T("Save agent");
}
$("ag-new").addEventListener("click", function () {
  $("agent-form").reset(); $("ag-id").readOnly = false;
  $("agent-form-title").textContent = T("Invite an agent"); $("ag-save").textContent = T("Invite");
});
$("agent-form").addEventListener("submit", function (e) {
  e.preventDefault();
  var body = { id: $("ag-id").value.trim(), name: $("ag-name").value.trim(), role: $("ag-role").value,
    departments: list($("ag-depts").value), max_concurrent: Number($("ag-max").value), disabled: $("ag-disabled").checked,
    skills: list($("ag-skills").value) };
  if ($("ag-email").value.trim()) body.email = $("ag-email").value.trim();
  var editing = $("ag-id").readOnly;
  var call = editing ? api(sitePath("/agents/" + encodeURIComponent(body.id)), { method: "PUT", body: body })
    : api(sitePath("/agents"), { method: "POST", body: body });
  save(call).then(function (r) { showInvite(r); if (!editing) $("ag-new").click(); }, function () {});
});
export function editDept(d) {
  $("dp-id").value = d.id; $("dp-name").value = d.name || "";
  $("dp-names").value = Object.keys(d.names || {}).map(function (k) { return k + ": " + d.names[k]; }).join(", ");
  $("dp-tz").value = d.hours ? d.hours.timezone : "";
  DAYS.forEach(function (k) { $("dp-" + k).value = d.hours ? (d.hours[k] || []).join(", ") : ""; });
  $("dp-holidays").value = d.hours ? (d.hours.holidays || []).join(", ") : "";
  var r = d.routing || {};
  /** @param {string} id @param {number|undefined} v */
  function num(id, v) { $(id).value = v === undefined || v === null ? "" : String(v); }
  num("dp-priority", r.priority); num("dp-boost", r.age_boost_secs); num("dp-widen", r.widen_after_secs);
  num("dp-sticky", r.sticky_days); num("dp-sticky-wait", r.sticky_wait_secs);
  num("dp-accept", r.accept_secs); num("dp-first-reply", r.first_reply_secs); num("dp-tries", r.max_tries);
  num("dp-max-wait", r.max_wait_secs); num("dp-sla-wait", r.sla_wait_secs); num("dp-sla-reply", r.sla_first_response_secs);
  $("dp-mode").value = r.mode || "";
  $("dp-overflow").value = r.overflow_to || "";
  $("dp-skills").value = (r.skills || []).join(", ");
  $("dp-language").value = r.language === true ? "yes" : r.language === false ? "no" : "";
}
/** A department's routing overrides in one line for its row. @param {any} r */
function routingSummary(r) {
  if (!r) return T("as the site");
  var parts = [];
  if (r.priority !== undefined) parts.push(T("priority") + " " + r.priority);
  if (r.skills && r.skills.length) parts.push(r.skills.join(", "));
  if (r.language !== undefined) parts.push(r.language ? T("language preferred") : T("language ignored"));
  if (r.widen_after_secs !== undefined) parts.push(T("widens after") + " " + r.widen_after_secs + " s");
  if (r.sticky_days) parts.push(T("last agent"));
  if (r.mode === "offer") parts.push(T("offered"));
  if (r.first_reply_secs !== undefined) parts.push(T("first reply within") + " " + r.first_reply_secs + " s");
  if (r.max_wait_secs !== undefined) parts.push(T("waits at most") + " " + r.max_wait_secs + " s" + (r.overflow_to ? " → " + r.overflow_to : ""));
  if (r.sla_wait_secs !== undefined) parts.push(T("wait target") + " " + r.sla_wait_secs + " s");
  return parts.join("; ") || T("as the site");
}
/** The routing overrides the department form says, over what it had (its page rules kept). @param {any} old */
function routingOf(old) {
  var r = Object.assign({}, old || {});
  /** @param {string} id @param {string} key */
  function num(id, key) { var v = $(id).value.trim(); if (v === "") delete r[key]; else r[key] = Number(v); }
  num("dp-priority", "priority"); num("dp-boost", "age_boost_secs"); num("dp-widen", "widen_after_secs");
  num("dp-sticky", "sticky_days"); num("dp-sticky-wait", "sticky_wait_secs");
  num("dp-accept", "accept_secs"); num("dp-first-reply", "first_reply_secs"); num("dp-tries", "max_tries");
  num("dp-max-wait", "max_wait_secs"); num("dp-sla-wait", "sla_wait_secs"); num("dp-sla-reply", "sla_first_response_secs");
  /** @param {string} id @param {string} key */
  function text(id, key) { var v = $(id).value.trim(); if (v === "") delete r[key]; else r[key] = v; }
  text("dp-mode", "mode"); text("dp-overflow", "overflow_to");
  var skills = list($("dp-skills").value);
  if (skills.length) r.skills = skills; else delete r.skills;
  var lang = $("dp-language").value;
  if (lang === "") delete r.language; else r.language = lang === "yes";
  return Object.keys(r).length ? r : undefined;
}
$("dept-form").addEventListener("submit", function (e) {
  e.preventDefault();
  var id = $("dp-id").value.trim();
  var old = adminSite.departments.filter(function (d) { return d.id === id; })[0];
  var body = Object.assign({}, old || {}, { id: id });
  if ($("dp-name").value.trim()) body.name = $("dp-name").value.trim(); else delete body.name;
  // "ru: Продажи, de: Vertrieb" → {ru: "Продажи", de: "Vertrieb"}.
  body.names = {};
  list($("dp-names").value).forEach(function (pair) {
    var i = pair.indexOf(":");
    if (i > 0) body.names[pair.slice(0, i).trim().toLowerCase()] = pair.slice(i + 1).trim();
  });
  if ($("dp-tz").value.trim()) {
    body.hours = { timezone: $("dp-tz").value.trim(), holidays: list($("dp-holidays").value) };
    DAYS.forEach(function (k) { body.hours[k] = list($("dp-" + k).value); });
  } else {
    delete body.hours;
  }
  var routing = routingOf(old && old.routing);
  if (routing) body.routing = routing; else delete body.routing;
  save(old ? api(sitePath("/departments/" + encodeURIComponent(id)), { method: "PUT", body: body })
    : api(sitePath("/departments"), { method: "POST", body: body })).catch(function () {});
});
/** Creates or replaces an entry by its id. */
export function upsert(kind, id, body) {
  var exists = (adminSite[kind] || []).some(function (x) { return (x.id || x.shortcut) === id; });
  return save(exists ? api(sitePath("/" + kind + "/" + encodeURIComponent(id)), { method: "PUT", body: body })
    : api(sitePath("/" + kind), { method: "POST", body: body }));
}
$("canned-form").addEventListener("submit", function (e) {
  e.preventDefault();
  var id = $("cn-shortcut").value.trim();
  upsert("canned", id, { shortcut: id, text: $("cn-text").value }).then(function () { $("canned-form").reset(); }, function () {});
});
$("trigger-form").addEventListener("submit", function (e) {
  e.preventDefault();
  var id = $("tr-id").value.trim();
  var old = adminSite.triggers.filter(function (t) { return t.id === id; })[0] || {};
  var body = Object.assign({}, old, { id: id, time_on_page_secs: Number($("tr-secs").value), message: $("tr-message").value });
  if ($("tr-url").value.trim()) body.url = $("tr-url").value.trim(); else delete body.url;
  if ($("tr-dept").value.trim()) body.department = $("tr-dept").value.trim(); else delete body.department;
  if ($("tr-agent").value) body.as_agent = $("tr-agent").value; else delete body.as_agent;
  upsert("triggers", id, body).then(function () { $("trigger-form").reset(); }, function () {});
});
$("hook-form").addEventListener("submit", function (e) {
  e.preventDefault();
  var id = $("wh-id").value.trim();
  var body = { id: id, url: $("wh-url").value.trim(), events: list($("wh-events").value) };
  if ($("wh-secret").value) body.secret = $("wh-secret").value;
  upsert("webhooks", id, body).then(function () { $("hook-form").reset(); }, function () {});
});
/** The widget as visitors will see it, as the fields change. */
export function preview() {
  $("pv-head").style.background = $("st-color").value;
  $("pv-launch").style.background = $("st-color").value;
  $("pv-head").textContent = $("st-title").value || T("Chat with us");
  $("pv-greet").textContent = $("st-greeting").value || T("Hi! How can we help?");
}
["st-color", "st-title", "st-greeting"].forEach(function (id) { $(id).addEventListener("input", preview); });
$("site-form").addEventListener("submit", function (e) {
  e.preventDefault();
  var s = adminSite, body = {};
  // The site's own settings, as stored (entries have routes of their own; secrets stay).
  ["name", "default_department", "default_locale", "templates", "inactivity_timeout_secs", "rating_window_secs", "widget",
    "smtp_url", "email_from", "email_inbound", "sso_issuer", "sso_audience"]
    .forEach(function (k) { if (s[k] !== undefined && s[k] !== null) body[k] = s[k]; });
  body.allowed_origins = $("st-origins").value.split("\n").map(function (x) { return x.trim(); }).filter(Boolean);
  body.widget = Object.assign({}, s.widget, { color: $("st-color").value });
  if ($("st-title").value.trim()) body.widget.title = $("st-title").value.trim(); else delete body.widget.title;
  if ($("st-greeting").value.trim()) body.widget.greeting = $("st-greeting").value.trim(); else delete body.widget.greeting;
  body.widget.typing_preview = $("st-preview").checked;
  if ($("st-name").value.trim()) body.name = $("st-name").value.trim(); else delete body.name;
  if ($("st-smtp").value.trim()) body.smtp_url = $("st-smtp").value.trim(); else delete body.smtp_url;
  if ($("st-from").value.trim()) body.email_from = $("st-from").value.trim(); else delete body.email_from;
  if ($("st-inbound").value.trim()) body.email_inbound = $("st-inbound").value.trim(); else delete body.email_inbound;
  // Write-only: left empty, the stored password stays (the server keeps what a PUT leaves out).
  if ($("st-smtp-password").value) body.smtp_password = $("st-smtp-password").value;
  save(api(sitePath(), { method: "PUT", body: body })).catch(function () {});
});

// ---- the audit log: REST pages of 50, newest first ---------------------------------------
var auditNext = null;
/** Loads the first page of the audit log (`more`: the page after the last one shown). */
export function loadAudit(more) {
  var q = "?limit=50" + (more && auditNext ? "&cursor=" + encodeURIComponent(auditNext) : "");
  if (S.account && S.account.site) q += "&site=" + encodeURIComponent(S.account.site);
  api("/v1/audit" + q).then(function (r) {
    var tb = $("ad-audit");
    if (!more) tb.textContent = "";
    r.entries.forEach(function (e) {
      var tr = el("tr");
      tr.appendChild(el("td", null, new Date(e.at).toLocaleString(LANG)));
      tr.appendChild(el("td", null, e.actor));
      tr.appendChild(el("td", null, e.action));
      tr.appendChild(el("td", null, e.subject));
      tb.appendChild(tr);
    });
    auditNext = r.next_cursor;
    $("ad-audit-more").hidden = !auditNext;
  }, function (err) { toast(T("Could not load the audit log: ") + err.message); });
}
$("ad-audit-more").addEventListener("click", function () { loadAudit(true); });
document.querySelector("#admin-tabs [data-pane=audit]").addEventListener("click", function () { loadAudit(false); });

// What other views call of this one, bound when it loads (`views.js`).
Object.assign(views, { adminView });
