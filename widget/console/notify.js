// @ts-check
/** @file Telling the agent: desktop notifications, a sound, the inbox badge. */

import { $ } from "./dom.js";
import { show } from "./shell.js";
import { S } from "./state.js";
import { T } from "./strings.js";
import { views } from "./views.js";

// ---- notifications: desktop and sound ------------------------------------------------------
export var audio = null;
export function beep() {
  try {
    var w = /** @type {any} */ (window);
    audio = audio || new (w.AudioContext || w.webkitAudioContext)();
    var o = audio.createOscillator(), g = audio.createGain();
    o.frequency.value = 880; g.gain.value = 0.08;
    o.connect(g); g.connect(audio.destination);
    o.start(); o.stop(audio.currentTime + 0.15);
  } catch (e) { /* no audio device */ }
}
export function renderInboxBadge() {
  $("go-inbox").textContent = T("Conversations") + (S.inboxNew ? " (" + S.inboxNew + T(" new)") : "");
}
// A sound and a desktop notification; a click opens the chat (`id`), or the inbox.
export function alertAgent(title, body, id) {
  if (id && id === S.current && !document.hidden) return;
  S.notified++;
  document.body.dataset.notified = String(S.notified);
  beep();
  if (window.Notification && Notification.permission === "granted") {
    try {
      var n = new Notification(title, { body: String(body).slice(0, 140), tag: id || "offline" });
      n.onclick = function () {
        window.focus(); n.close();
        if (id) views.select(id); else if (!$("go-inbox").hidden) { show("inbox"); views.inbox(); }
      };
    } catch (e) { /* some browsers allow notifications from service workers only */ }
  }
}

// What other views call of this one, bound when it loads (`views.js`).
Object.assign(views, { alertAgent, renderInboxBadge });
