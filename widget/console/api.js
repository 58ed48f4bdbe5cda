// @ts-check
/** @file REST: the admin token, or the session cookie with its CSRF token; and files in chats, fetched with the same credentials. */

import { $, el, rid, toast } from "./dom.js";
import { S } from "./state.js";
import { T } from "./strings.js";

// ---- files in chats (REST: the same credentials as every other call) ----------------------
export function authHeaders(extra) {
  var h = extra || {};
  if (S.account) h["X-CSRF-Token"] = S.account.csrf; else h.Authorization = "Bearer " + S.token;
  return h;
}
export function fileBlob(f) {
  return fetch("/v1/attachments/" + encodeURIComponent(f.id), { headers: authHeaders() }).then(function (r) {
    if (!r.ok) throw new Error("HTTP " + r.status);
    return r.blob();
  });
}
// An image shows in the transcript (a click opens it full size); a PDF is a download button.
export function fileEl(f) {
  var label = f.name + " · " + Math.max(1, Math.round(f.size / 1024)) + " KB";
  if (/^image\//.test(f.content_type)) {
    var a = el("a", "file-img");
    a.target = "_blank"; a.rel = "noopener";
    a.title = label;
    var img = a.appendChild(el("img"));
    img.alt = f.name;
    fileBlob(f).then(function (b) { var u = URL.createObjectURL(b); img.src = u; a.href = u; },
      function () { a.replaceWith(el("span", "muted", label + " (unavailable)")); });
    return a;
  }
  var btn = el("button", "file");
  btn.type = "button";
  btn.title = T("Download");
  btn.textContent = label;
  btn.addEventListener("click", function () {
    fileBlob(f).then(function (b) {
      var a = el("a"); a.href = URL.createObjectURL(b); a.download = f.name;
      document.body.appendChild(a); a.click(); a.remove();
    }, function (e) { toast("Could not download: " + e.message); });
  });
  return btn;
}
$("attach").addEventListener("click", function () { $("attach-file").click(); });
$("attach-file").addEventListener("change", function () {
  var input = /** @type {HTMLInputElement} */ ($("attach-file"));
  var f = input.files && input.files[0], conv = S.current;
  this.value = "";
  if (!f || !conv) return;
  var q = "?client_id=" + rid() + "&name=" + encodeURIComponent(f.name);
  // The stored message comes back over the socket like any other.
  fetch("/v1/conversations/" + encodeURIComponent(conv) + "/attachments" + q,
    { method: "POST", headers: authHeaders({ "Content-Type": f.type || "application/octet-stream" }), body: f })
    .then(function (r) {
      if (r.ok) return;
      return r.json().catch(function () { return {}; }).then(function (b) {
        toast("Not sent: " + ((b.error && b.error.message) || "HTTP " + r.status));
      });
    }, function (e) { toast("Not sent: " + e.message); });
});

// ---- REST: the admin token, or the session cookie with its CSRF token ---------------------
/** A REST call; rejects with the error's message (and `field`, for invalid input). */
export function api(path, opts) {
  opts = opts || {};
  var headers = { "Content-Type": "application/json" };
  if (S.account) headers["X-CSRF-Token"] = S.account.csrf; else headers.Authorization = "Bearer " + S.token;
  return fetch(path, { method: opts.method || "GET", headers: headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body) }).then(function (r) {
    if (r.status === 401) throw new Error("unauthorized");
    if (r.status === 204) return null;
    return r.json().catch(function () { return {}; }).then(function (b) {
      if (r.ok) return b;
      var err = /** @type {Error & {field?: string}} */ (new Error((b.error && b.error.message) || "HTTP " + r.status));
      err.field = b.error && b.error.field;
      throw err;
    });
  });
}
