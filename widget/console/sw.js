// @ts-check
/**
 * @file The console's service worker: the shell from cache when the network is gone, and
 * Web Push notes (docs/console.md) shown as notifications while no console window is in front.
 * Scope `/console/`. Not a module: every browser that has push runs classic workers.
 */

/** @type {any} */
var sw = self;
var SHELL = "switchboard-shell-v1";
var FILES = ["./", "main.js", "state.js", "strings.js", "dom.js", "shell.js", "views.js", "api.js",
  "session.js", "chats.js", "compose.js", "notify.js", "visitors.js", "supervisor.js", "inbox.js",
  "admin.js", "push.js", "manifest.webmanifest", "icon.svg", "icon-192.png", "icon-512.png"];

sw.addEventListener("install", function (/** @type {any} */ e) {
  e.waitUntil(caches.open(SHELL).then(function (c) { return c.addAll(FILES); }).then(function () { return sw.skipWaiting(); }));
});
sw.addEventListener("activate", function (/** @type {any} */ e) {
  e.waitUntil(caches.keys().then(function (keys) {
    return Promise.all(keys.filter(function (k) { return k !== SHELL; }).map(function (k) { return caches.delete(k); }));
  }).then(function () { return sw.clients.claim(); }));
});
// The shell: the network first (an upgrade shows at once), the cached copy when it fails.
// Nothing else is cached: the API and the sockets are live or nothing.
sw.addEventListener("fetch", function (/** @type {any} */ e) {
  var url = new URL(e.request.url);
  if (e.request.method !== "GET" || url.origin !== location.origin || url.pathname.indexOf("/console/") !== 0) return;
  e.respondWith(fetch(e.request).then(function (r) {
    if (r.ok) { var copy = r.clone(); caches.open(SHELL).then(function (c) { c.put(e.request, copy); }); }
    return r;
  }, function () {
    return caches.match(e.request).then(function (hit) { return hit || Response.error(); });
  }));
});

// What a note says, in the browser's language (English and Russian, as the console).
var WORDS = {
  en: { assigned: "New chat for you", offered: "A chat is offered to you", waiting: "A visitor is waiting", offline: "New offline message", email_reply: "Email reply", in: "in " },
  ru: { assigned: "Новый чат для вас", offered: "Вам предлагают чат", waiting: "Посетитель ждёт ответа", offline: "Новое сообщение вне сети", email_reply: "Ответ по почте", in: "отдел: " }
};
function words() { return /^ru\b/i.test(navigator.language || "") ? WORDS.ru : WORDS.en; }

/** @param {any} note */
function wording(note) {
  var w = words();
  var body = [];
  if (note.name) body.push(String(note.name));
  if (note.department) body.push(w.in + note.department);
  if (note.text) body.push(String(note.text));
  return { title: w[note.kind] || w.assigned, body: body.join(" · ").slice(0, 200) };
}

sw.addEventListener("push", function (/** @type {any} */ e) {
  var note = {};
  try { note = e.data ? e.data.json() : {}; } catch (x) { note = {}; }
  e.waitUntil(sw.clients.matchAll({ type: "window", includeUncontrolled: true }).then(function (/** @type {any[]} */ wins) {
    // A console in front tells the agent itself (sound and its own notification).
    if (wins.some(function (w) { return w.visibilityState === "visible" && w.focused; })) return;
    var text = wording(note);
    return sw.registration.showNotification(text.title, {
      body: text.body,
      icon: "icon-192.png",
      badge: "icon-192.png",
      // One notification per chat or message, and one for a department's waiting line.
      tag: note.kind === "waiting" ? "waiting-" + (note.department || "") : (note.conversation || note.ticket || note.kind),
      renotify: true,
      data: note
    });
  }));
});

sw.addEventListener("notificationclick", function (/** @type {any} */ e) {
  e.notification.close();
  var note = e.notification.data || {};
  e.waitUntil(sw.clients.matchAll({ type: "window", includeUncontrolled: true }).then(function (/** @type {any[]} */ wins) {
    var win = wins.find(function (w) { return new URL(w.url).pathname.indexOf("/console/") === 0; });
    if (win) {
      win.postMessage({ type: "open", note: note });
      return win.focus();
    }
    return sw.clients.openWindow("./");
  }));
});
