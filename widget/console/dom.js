// @ts-check
/** @file Small helpers of the page: elements by id, new elements with text, times and durations, the toast. */

import { T } from "./strings.js";

/** An element of the page by id; `any`, since each is used as the kind of element it is. */
/** @returns {any} */
export function $(/** @type {string} */ id) { return document.getElementById(id); }

export function el(tag, cls, text) {
  var e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = String(text);
  return e;
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
