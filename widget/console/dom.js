// @ts-check
/** @file Small helpers of the page: elements by id, new elements with text, times and durations, the toast. */

import { LANG, T } from "./strings.js";

/** An element of the page by id; `any`, since each is used as the kind of element it is. */
/** @returns {any} */
export function $(/** @type {string} */ id) { return document.getElementById(id); }

export function el(tag, cls, text) {
  var e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = String(text);
  return e;
}
/** Links in a message: http(s) and mailto only, from text that stays text. */
var LINK = /\b(?:https?:\/\/|mailto:)[^\s<>"']+/gi;

/**
 * `text` as nodes for an element: plain text, and every http(s) or mailto address in it as a
 * link that opens in a new tab and tells the target nothing (`noopener noreferrer`). Nothing
 * of the text becomes markup; a scheme other than those three never becomes a link.
 */
export function linked(/** @type {string} */ text) {
  var out = document.createDocumentFragment(), last = 0, m;
  text = String(text == null ? "" : text);
  LINK.lastIndex = 0;
  while ((m = LINK.exec(text))) {
    // Closing punctuation after an address belongs to the sentence.
    var href = m[0].replace(/[.,;:!?)\]}]+$/, ""), url = null;
    try { url = new URL(href); } catch (_) { url = null; }
    if (!url || ["http:", "https:", "mailto:"].indexOf(url.protocol) < 0) continue;
    out.appendChild(document.createTextNode(text.slice(last, m.index)));
    var a = document.createElement("a");
    a.href = url.href; a.target = "_blank"; a.rel = "noopener noreferrer";
    a.textContent = href;
    out.appendChild(a);
    last = m.index + href.length;
    LINK.lastIndex = last;
  }
  out.appendChild(document.createTextNode(text.slice(last)));
  return out;
}

export function rid() { return Date.now().toString(36) + Math.random().toString(36).slice(2, 10); }
export function hhmm(ms) { var d = new Date(ms); return ("0" + d.getHours()).slice(-2) + ":" + ("0" + d.getMinutes()).slice(-2); }
export function dur(secs) {
  secs = Math.max(0, Math.floor(secs));
  var h = Math.floor(secs / 3600), m = Math.floor(secs % 3600 / 60), s = secs % 60;
  return (h ? h + ":" + ("0" + m).slice(-2) : m) + ":" + ("0" + s).slice(-2);
}
export function shortId(id) { return T("Visitor ") + String(id || "").slice(-5); }
/** The toast's hiding timer. */
export var toastTimer = 0;
export function toast(text) {
  var t = $("toast");
  t.textContent = text; t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(function () { t.hidden = true; }, 4000);
}
export function button(text, onClick) { var b = el("button", null, text); b.type = "button"; b.addEventListener("click", onClick); return b; }
export function secs(v) { return v == null ? "–" : dur(v); }
/** The visitor's time now, in their zone ("14:05 (Europe/Berlin)"), when their browser said it. */
var BROWSERS = { chrome: "Chrome", edge: "Edge", firefox: "Firefox", safari: "Safari", opera: "Opera",
  samsung_internet: "Samsung Internet", yandex: "Yandex Browser" };
var KINDS = { desktop: "computer", phone: "phone", tablet: "tablet", bot: "bot" };
var SYSTEMS = { windows: "Windows", macos: "macOS", ios: "iOS", android: "Android", linux: "Linux", chrome_os: "ChromeOS" };
/** "Safari 18 · iOS · phone": the visitor's device as the server read it from their User-Agent. */
export function deviceText(d) {
  if (!d) return null;
  var browser = BROWSERS[d.browser] ? BROWSERS[d.browser] + (d.version ? " " + d.version : "") : T("other browser");
  return [browser, SYSTEMS[d.os] || T("other system"), T(KINDS[d.kind] || "computer")].join(" · ");
}
/** "Norway (NO)", in the console's language. */
export function countryText(code) {
  if (!code) return null;
  try { return new Intl.DisplayNames([LANG], { type: "region" }).of(code) + " (" + code + ")"; } catch (e) { return code; }
}
export function localTime(zone) {
  if (!zone) return null;
  try {
    return new Date().toLocaleTimeString(LANG, { timeZone: zone, hour: "2-digit", minute: "2-digit" }) + " (" + zone + ")";
  } catch (e) { return null; }
}
