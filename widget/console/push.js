// @ts-check
/** @file The installable console: its service worker, and notifications on this device (Web Push, docs/console.md) turned on and off with the bell. */

import { api } from "./api.js";
import { $, toast } from "./dom.js";
import { show } from "./shell.js";
import { T } from "./strings.js";
import { views } from "./views.js";

var supported = "serviceWorker" in navigator && "PushManager" in window && window.isSecureContext;

/** The base64url key as the bytes `applicationServerKey` takes. */
function keyBytes(b64) {
  var s = atob(b64.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((b64.length + 3) % 4));
  var out = new Uint8Array(s.length);
  for (var i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

function registration() { return navigator.serviceWorker.ready; }

/** @param {boolean} on */
function renderBell(on) {
  var b = $("push-toggle");
  b.setAttribute("aria-pressed", String(on));
  b.title = on ? T("Notifications on this device: on") : T("Notifications on this device: off");
  b.setAttribute("aria-label", b.title);
  b.classList.toggle("on", on);
}

function current() {
  return registration().then(function (reg) { return reg.pushManager.getSubscription(); });
}

function turnOn() {
  return Notification.requestPermission().then(function (p) {
    if (p !== "granted") throw new Error(T("The browser blocks notifications for this page."));
    return Promise.all([registration(), api("/v1/push/key")]);
  }).then(function (r) {
    return r[0].pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(r[1].public_key) });
  }).then(function (sub) {
    return api("/v1/push/subscription", { method: "PUT", body: sub.toJSON() });
  }).then(function () { renderBell(true); toast(T("Notifications on this device: on")); });
}

function turnOff() {
  return current().then(function (sub) {
    if (!sub) return;
    var endpoint = sub.endpoint;
    return sub.unsubscribe().then(function () {
      return api("/v1/push/subscription", { method: "DELETE", body: { endpoint: endpoint } });
    });
  }).then(function () { renderBell(false); toast(T("Notifications on this device: off")); });
}

/** After sign-in: the bell shows when this browser can be notified, pressed when it is. */
export function setupPush() {
  if (!supported) return;
  $("push-toggle").hidden = false;
  current().then(function (sub) {
    renderBell(!!sub);
    // Signed in as someone else in this browser: the subscription moves to this account.
    if (sub) api("/v1/push/subscription", { method: "PUT", body: sub.toJSON() }).catch(function () { /* shown on the next toggle */ });
  }, function () { renderBell(false); });
}

if (supported) {
  navigator.serviceWorker.register("sw.js", { scope: "./" }).catch(function () { /* no offline shell; the console works without */ });
  // A click on a notification while this window is open: the chat, or the inbox.
  navigator.serviceWorker.addEventListener("message", function (e) {
    var note = e.data && e.data.note;
    if (!e.data || e.data.type !== "open" || !note) return;
    if (note.conversation && views.select) views.select(note.conversation);
    else if (note.ticket && !$("go-inbox").hidden) { show("inbox"); views.inbox(); }
  });
  $("push-toggle").addEventListener("click", function () {
    var on = $("push-toggle").getAttribute("aria-pressed") === "true";
    (on ? turnOff() : turnOn()).catch(function (err) { toast(T("Notifications not changed: ") + err.message); });
  });
}
