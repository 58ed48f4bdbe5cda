// @ts-check
/** @file Live visitors on the site, and starting a chat with one. */

import { $, countryText, deviceText, dur, el, localTime, rid, shortId } from "./dom.js";
import { pane, send } from "./shell.js";
import { S } from "./state.js";
import { T } from "./strings.js";
import { views } from "./views.js";

// ---- live visitors ------------------------------------------------------------------------
export function showTab(which) {
  var visitorsTab = which === "visitors";
  $("tab-chats").setAttribute("aria-selected", String(!visitorsTab));
  $("tab-visitors").setAttribute("aria-selected", String(visitorsTab));
  $("visitors-view").hidden = !visitorsTab;
  $("app").classList.toggle("visitors-mode", visitorsTab);
  $("right").hidden = visitorsTab;
  if (visitorsTab) { $("chat-view").hidden = true; $("empty").hidden = true; renderVisitors(); pane("chat"); } else views.renderChat();
}
$("visitors-back").addEventListener("click", function () { showTab("chats"); pane("list"); });
$("tab-chats").addEventListener("click", function () { showTab("chats"); });
$("tab-visitors").addEventListener("click", function () { showTab("visitors"); });

export function renderVisitors() {
  var ids = Object.keys(S.visitors);
  $("visitor-count").textContent = ids.length ? "(" + ids.length + ")" : "";
  if ($("visitors-view").hidden) return;
  var body = $("visitors"), focused = /** @type {HTMLInputElement | null} */ (document.activeElement);
  // Do not redraw under a half-typed proactive message.
  if (focused && focused.tagName === "INPUT" && focused.value && focused.closest(".start-form")) return;
  body.textContent = "";
  ids.sort(function (a, b) { return S.visitors[b].time_on_site_secs - S.visitors[a].time_on_site_secs; }).forEach(function (id) {
    var v = S.visitors[id], tr = el("tr");
    tr.dataset.visitor = id;
    var who = el("td");
    who.appendChild(el("div", null, v.name || v.email || shortId(id)));
    who.appendChild(el("div", "muted", (v.returning ? "returning · " + v.visits + " visits" : "new") + (v.locale ? " · " + v.locale : "") +
      (v.timezone ? " · " + localTime(v.timezone) : "")));
    if (v.device || v.country) {
      who.appendChild(el("div", "muted", [deviceText(v.device), countryText(v.country)].filter(Boolean).join(" · ")));
    }
    tr.appendChild(who);
    var page = el("td");
    page.appendChild(el("div", null, v.page_title || ""));
    page.appendChild(el("div", "muted", v.page_url || ""));
    tr.appendChild(page);
    var src = el("td");
    src.appendChild(el("div", null, v.referrer || "direct"));
    var utm = Object.keys(v.utm || {}).map(function (k) { return k.replace("utm_", "") + "=" + v.utm[k]; }).join(" ");
    if (utm) src.appendChild(el("div", "muted", utm));
    tr.appendChild(src);
    tr.appendChild(el("td", null, dur(v.time_on_site_secs + (Date.now() - v.seen) / 1000)));
    tr.appendChild(el("td", null, (v.pages_this_visit || []).length));
    var act = el("td");
    if (v.in_chat) act.appendChild(el("span", "muted", "in chat"));
    else {
      var f = el("form", "start-form");
      var inp = el("input");
      inp.placeholder = T("Hi! Can I help?"); inp.setAttribute("aria-label", T("Message to start a chat")); inp.required = true;
      var b = el("button", "primary", T("Start chat")); b.type = "submit";
      f.appendChild(inp); f.appendChild(b);
      f.addEventListener("submit", function (e) {
        e.preventDefault();
        var t = inp.value.trim();
        if (!t) return;
        if (send({ type: "start_chat", visitor: id, client_id: rid(), text: t })) S.startedFor = id;
        inp.value = ""; inp.blur();
      });
      act.appendChild(f);
    }
    tr.appendChild(act);
    body.appendChild(tr);
  });
  $("no-visitors").hidden = ids.length > 0;
}

// What other views call of this one, bound when it loads (`views.js`).
Object.assign(views, { renderVisitors, showTab });
