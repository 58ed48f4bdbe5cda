/*! Switchboard chat widget. No dependencies.
 * Embed: <script src="https://chat.example.com/widget.js" data-site="demo" async></script>
 * API:   Switchboard.open() .close() .identify({id,name,email,user_hash,email_hash,attributes,attributes_hash})
 *        .setLocale("ru")
 *        .setDepartment("sales") .on("message"|"open"|"close"|"connected", fn)
 * Every text is rendered with textContent: nothing a visitor or agent writes becomes HTML. */
// @ts-check
(function () {
  "use strict";
  /** The page's window, with the API this script adds (`Switchboard`). */
  var win = /** @type {Window & {Switchboard?: any}} */ (window);
  if (win.Switchboard && win.Switchboard.version) return;

  var script = /** @type {HTMLScriptElement | null} */ (document.currentScript || document.querySelector("script[data-site][src*='widget.js']"));
  if (!script) return;
  var SITE = script.getAttribute("data-site") || "demo";
  var BASE = new URL(script.src, location.href);
  var WS_URL = (BASE.protocol === "https:" ? "wss://" : "ws://") + BASE.host + "/v1/visitor?site=" + encodeURIComponent(SITE);
  var KEY = "switchboard:" + SITE;

  var STR = {
    en: {
      title: "Chat with us", greeting: "Hi! Ask us anything, we usually answer within minutes.",
      open: "Open chat", close: "Minimize chat", end: "End chat", send: "Send",
      endAsk: "End this chat? The agent will see that you left.", endYes: "End chat", endNo: "Keep chatting",
      placeholder: "Type a message…", input: "Message", reconnecting: "Reconnecting…",
      typing: "{name} is typing…", agent: "Agent", you: "You",
      queue: "You are #{n} in line · about {m} min",
      offlineTitle: "Leave us a message", email: "Email", name: "Name", message: "Message",
      offlineThanks: "Thanks! We will reply by email.", rateTitle: "How was the chat?",
      comment: "Comment (optional)", rateSend: "Send rating", rateThanks: "Thanks for your feedback!",
      star: "{n} of 5", start: "Start chat", department: "Department", unread: "{n} unread",
      contactTitle: "How can we reach you if you leave?", contactSave: "Save", contactSkip: "Not now",
      newChat: "New conversation", failed: "Not sent: {why}",
      nobody: "Nobody is on duty right now. Leave a message and we will answer by email.",
      nobodyBack: "Nobody is on duty right now; we are back {when}. Leave a message and we will answer by email.",
      otherTeams: "Or chat now with a team that is here:",
      dismiss: "Dismiss",
      copyTitle: "Email me a copy of this chat", copySend: "Send copy", copySent: "A copy is on its way to {email}.",
      attach: "Attach an image or PDF", tooBig: "The file is too large (at most {mb} MB).",
      badType: "Only images and PDF files can be sent.", download: "Download {name}", seen: "Seen"
    },
    ru: {
      title: "Чат с нами", greeting: "Здравствуйте! Спросите нас о чём угодно, обычно отвечаем за пару минут.",
      open: "Открыть чат", close: "Свернуть чат", end: "Завершить чат", send: "Отправить",
      endAsk: "Завершить чат? Оператор увидит, что вы ушли.", endYes: "Завершить", endNo: "Продолжить чат",
      placeholder: "Напишите сообщение…", input: "Сообщение", reconnecting: "Переподключение…",
      typing: "{name} печатает…", agent: "Оператор", you: "Вы",
      queue: "Вы {n}-й в очереди · около {m} мин.",
      offlineTitle: "Оставьте сообщение", email: "E-mail", name: "Имя", message: "Сообщение",
      offlineThanks: "Спасибо! Мы ответим на e-mail.", rateTitle: "Как прошёл чат?",
      comment: "Комментарий (необязательно)", rateSend: "Оценить", rateThanks: "Спасибо за отзыв!",
      star: "{n} из 5", start: "Начать чат", department: "Отдел", unread: "Непрочитанных: {n}",
      contactTitle: "Как с вами связаться, если вы уйдёте?", contactSave: "Сохранить", contactSkip: "Не сейчас",
      newChat: "Новый разговор", failed: "Не отправлено: {why}",
      nobody: "Сейчас никого нет на месте. Оставьте сообщение, и мы ответим на e-mail.",
      nobodyBack: "Сейчас никого нет на месте, откроемся: {when}. Оставьте сообщение, и мы ответим на e-mail.",
      otherTeams: "Или напишите сейчас тем, кто на месте:",
      dismiss: "Скрыть",
      copyTitle: "Прислать копию чата на e-mail", copySend: "Отправить копию", copySent: "Копия чата отправлена на {email}.",
      attach: "Прикрепить изображение или PDF", tooBig: "Файл слишком большой (не больше {mb} МБ).",
      badType: "Можно отправлять только изображения и PDF.", download: "Скачать {name}", seen: "Прочитано"
    }
  };

  // ---- state -------------------------------------------------------------------------------
  function load() {
    try { return JSON.parse(localStorage.getItem(KEY)) || {}; } catch (e) { return {}; }
  }
  function save() {
    try { localStorage.setItem(KEY, JSON.stringify(st)); } catch (e) { /* private mode */ }
  }
  var st = load();               // token, conv, open, locale, dept, identity, prechat
  var conv = st.conv || null;    // the conversation shown
  var lastSeq = 0;               // last event shown (0: replay everything on first connect)
  var convState = null;          // queued | active | closed
  var ws = null, attempts = 0, timer = null, lastHeard = 0, pingTimer = null;
  var pending = {};              // client_id -> {text, el}: shown, not yet acknowledged
  var uploading = {};            // client_id -> the row of a file on its way (HTTP, not resent)
  var unread = 0, typingTimer = null, typingSent = false, remoteTypingTimer = null;
  var offerEl = null;            // a trigger's proactive message on screen (st.offer keeps it)
  var available = true;          // the server's word at welcome: would a first message reach an agent?
  var depts = [];                // and each department's: available now, or when it opens
  var myTexts = [];              // the visitor's messages in the conversation shown (the offline form keeps them)
  var offlineText = null, thanksDue = false, thanksTimer = null; // the offline message being confirmed
  var offlineEcho = false;       // it repeats what the visitor already wrote here: not shown twice
  var agentRead = 0, readSent = 0, readTimer = null; // read receipts: the agent's mark, and ours
  var freshDivider = false;      // the "new conversation" divider already drawn for the next conversation
  var OFFER_MS = 30 * 60 * 1000; // an unanswered proactive message is shown this long
  var listeners = { message: [], open: [], close: [], connected: [] };
  var cfg = { color: "#2563eb", departments: [] };
  var locale = st.locale || navigator.language || "en";

  function lang() { return /^ru\b/i.test(locale) ? "ru" : "en"; }
  function t(k, vars) {
    var s = STR[lang()][k] || STR.en[k] || k;
    for (var v in vars || {}) s = s.split("{" + v + "}").join(String(vars[v]));
    return s;
  }
  function emit(ev, arg) {
    (listeners[ev] || []).forEach(function (fn) { try { fn(arg); } catch (e) { setTimeout(function () { throw e; }); } });
  }
  function rid() { return Date.now().toString(36) + Math.random().toString(36).slice(2, 10); }

  // ---- DOM ---------------------------------------------------------------------------------
  var host = document.createElement("div");
  host.id = "switchboard-widget";
  var root = host.attachShadow({ mode: "open" });
  root.innerHTML =
    "<style>" +
    // Outer !important rules lose to :host !important ones (shadow cascade), so the page cannot
    // hide or restyle the widget; all:initial stops inherited fonts and colours.
    ":host{all:initial!important;display:block!important;position:fixed!important;z-index:2147483000!important;right:20px!important;bottom:20px!important;opacity:1!important;visibility:visible!important;font:14px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif!important;color:#111!important}" +
    "*{box-sizing:border-box;font:inherit;margin:0}" +
    "button{cursor:pointer;border:0;border-radius:8px;background:var(--a);color:var(--on);padding:8px 12px}" +
    "button:focus-visible,textarea:focus-visible,input:focus-visible,select:focus-visible{outline:3px solid var(--a);outline-offset:2px}" +
    ".launch{width:56px;height:56px;border-radius:50%;padding:0;box-shadow:0 4px 16px rgba(0,0,0,.25);position:relative;display:flex;align-items:center;justify-content:center}" +
    ".launch svg{width:28px;height:28px;fill:var(--on)}" +
    ".badge{position:absolute;top:-4px;right:-4px;min-width:20px;height:20px;border-radius:10px;background:#dc2626;color:#fff;font-size:12px;line-height:20px;text-align:center;padding:0 5px}" +
    ".panel{position:absolute;right:0;bottom:72px;width:360px;height:520px;max-height:calc(100vh - 110px);background:#fff;border-radius:14px;box-shadow:0 8px 32px rgba(0,0,0,.25);display:flex;flex-direction:column;overflow:hidden}" +
    ".panel[hidden],.badge[hidden],[hidden]{display:none!important}" +
    // The panel's head is a plain block: a <header> here would be a second banner landmark on
    // the host's page.
    ".head{background:var(--a);color:var(--on);padding:12px 14px;display:flex;align-items:center;gap:8px}" +
    ".head h2{font-size:16px;font-weight:600;flex:1;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}" +
    ".head .sub{font-size:12px}" +
    ".head button{background:transparent;border:1px solid currentColor;padding:5px 9px;font-size:12px}.head .end{margin-right:8px}" +
    ".confirm{display:flex;flex-wrap:wrap;align-items:center;gap:8px;padding:8px 12px;background:#fff7ed;color:#7c2d12;border-bottom:1px solid #fed7aa}.confirm span{flex:1 1 100%}" +
    ".confirm .no{background:#e2e8f0;color:#111}" +
    ".status{background:#fef3c7;color:#78350f;padding:6px 12px;font-size:12px}" +
    ".log{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:8px;background:#f8fafc}" +
    ".msg{max-width:80%;display:flex;gap:6px;align-items:flex-end}" +
    ".msg .b{padding:8px 10px;border-radius:12px;background:#fff;border:1px solid #e2e8f0;white-space:pre-wrap;word-wrap:break-word;overflow-wrap:anywhere}" +
    ".msg .meta{font-size:11px;color:#64748b;margin-top:2px}" +
    ".msg.me{align-self:flex-end;flex-direction:row-reverse}.msg.me .b{background:var(--a);color:var(--on);border-color:transparent}" +
    ".msg .b a{color:inherit;text-decoration:underline}" +
    ".msg.sending .b{opacity:.6}.seen{font-size:11px;color:#64748b;text-align:right}" +
    ".msg .b img{display:block;max-width:100%;max-height:220px;border-radius:6px}" +
    ".msg .b .file{background:transparent;color:inherit;text-decoration:underline;padding:0;text-align:left}" +
    "form.compose .clip{background:transparent;padding:6px 4px;line-height:0}form.compose .clip svg{width:22px;height:22px;fill:#475569}" +
    ".av{width:28px;height:28px;border-radius:50%;background:#334155;color:#fff;font-size:11px;display:flex;align-items:center;justify-content:center;flex:none}" +
    ".sys{align-self:center;text-align:center;font-size:12px;color:#475569;max-width:90%}" +
    ".typing{font-size:12px;color:#64748b;padding:0 12px 4px;min-height:16px}" +
    "form.compose{display:flex;gap:6px;padding:8px;border-top:1px solid #e2e8f0;background:#fff}" +
    "textarea,input,select{flex:1;border:1px solid #cbd5e1;border-radius:8px;padding:8px;resize:none;background:#fff;color:inherit;width:100%}" +
    ".card{background:#fff;border:1px solid #e2e8f0;border-radius:12px;padding:12px;display:flex;flex-direction:column;gap:8px}" +
    ".card h3{font-size:14px;font-weight:600}.card label{font-size:12px;color:#475569;display:flex;flex-direction:column;gap:4px}" +
    ".card p{margin:0}.card .secondary{background:#e2e8f0;color:#111}" +
    ".stars{display:flex;gap:4px}.stars button{background:#e2e8f0;color:#111;width:36px;padding:6px 0}.stars button[aria-pressed=true]{background:var(--a);color:var(--on)}" +
    ".sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}" +
    ".teaser{position:absolute;right:0;bottom:68px;width:260px;background:#fff;color:#111;border-radius:12px;box-shadow:0 4px 20px rgba(0,0,0,.25);padding:10px 30px 10px 12px;cursor:pointer}" +
    ".teaser .tn{font-size:12px;color:#475569;margin-bottom:2px}.teaser .tt{white-space:pre-wrap;overflow-wrap:anywhere;max-height:6.2em;overflow:hidden}" +
    ".teaser .tx{position:absolute;top:4px;right:4px;background:transparent;color:#475569;padding:2px 6px;font-size:16px;line-height:1}" +
    // On a phone the open panel fills the screen: the launcher would sit on the composer's Send.
    // Touch screens: every target at least 44×44 px, and text of 16 px so iOS does not zoom.
    "@media (pointer:coarse),(max-width:480px){button{min-height:44px;min-width:44px}.head button{font-size:14px}textarea,input,select{font-size:16px}.stars button{width:44px}}" +
    "@media (max-width:480px){:host{right:12px;bottom:12px}.panel{position:fixed;inset:0;width:auto;height:auto;max-height:none;border-radius:0}.panel:not([hidden])~.launch,.panel:not([hidden])~.teaser{display:none!important}}" +
    "@media (prefers-color-scheme:dark){:host{color:#e2e8f0}.panel{background:#0f172a}.log{background:#0b1220}.msg .b,.card{background:#1e293b;border-color:#334155;color:#e2e8f0}" +
    "form.compose{background:#0f172a;border-color:#334155}textarea,input,select{background:#1e293b;border-color:#475569}.sys,.typing,.msg .meta,.card label{color:#94a3b8}.stars button{background:#334155;color:#e2e8f0}form.compose .clip svg{fill:#94a3b8}.seen{color:#94a3b8}}" +
    "</style>" +
    "<div class='panel' role='dialog' aria-modal='false' hidden>" +
    "<div class='head'><div style='flex:1;min-width:0'><h2 id='sb-title'></h2><div class='sub' aria-live='polite'></div></div>" +
    "<button type='button' class='end' hidden></button><button type='button' class='min'></button></div>" +
    "<div class='confirm' role='alertdialog' aria-labelledby='sb-confirm' hidden><span id='sb-confirm'></span>" +
    "<button type='button' class='yes'></button><button type='button' class='no'></button></div>" +
    "<div class='status' role='status' hidden></div>" +
    "<div class='log' role='log' aria-live='polite' tabindex='0'></div>" +
    "<div class='typing' aria-live='polite'></div>" +
    "<form class='compose'><label class='sr' for='sb-text'></label>" +
    "<button type='button' class='clip' hidden><svg viewBox='0 0 24 24' aria-hidden='true'><path d='M16.5 6v11.5a4 4 0 0 1-8 0V5a2.5 2.5 0 0 1 5 0v10.5a1 1 0 0 1-2 0V6H10v9.5a2.5 2.5 0 0 0 5 0V5a4 4 0 0 0-8 0v12.5a5.5 5.5 0 0 0 11 0V6z'/></svg></button><input type='file' class='pick' hidden>" +
    "<textarea id='sb-text' rows='1' maxlength='4000'></textarea><button type='submit' class='send'></button></form>" +
    "</div>" +
    "<div class='teaser' role='status' hidden><div class='tn'></div><div class='tt'></div><button type='button' class='tx'>×</button></div>" +
    "<button type='button' class='launch' aria-expanded='false'>" +
    "<svg viewBox='0 0 24 24' aria-hidden='true'><path d='M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z'/></svg>" +
    "<span class='badge' aria-hidden='true' hidden></span></button>";

  function $(sel) { return root.querySelector(sel); }
  var panel = $(".panel"), launch = $(".launch"), badge = $(".badge"), logEl = $(".log"),
    statusEl = $(".status"), typingEl = $(".typing"), form = $("form.compose"), input = $("#sb-text"),
    titleEl = $("#sb-title"), subEl = $(".head .sub"), endBtn = $(".end"), minBtn = $(".min"),
    teaser = $(".teaser"), clip = $(".clip"), pick = $(".pick"), confirmEl = $(".confirm");

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }
  // Text on the site's accent colour: white or near-black, whichever contrasts more (WCAG
  // relative luminance), so any colour an admin picks stays readable.
  function onColor(hex) {
    var m = /^#?([0-9a-f]{6})$/i.exec(hex || "");
    if (!m) return "#fff";
    var n = parseInt(m[1], 16), lum = 0;
    [[16, 0.2126], [8, 0.7152], [0, 0.0722]].forEach(function (c) {
      var v = ((n >> c[0]) & 255) / 255;
      lum += c[1] * (v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4));
    });
    // Contrast with white (1.05 / (lum + .05)) against near-black #111 (lum + .05) / .0561.
    return 1.05 / (lum + 0.05) >= (lum + 0.05) / 0.0561 ? "#fff" : "#111";
  }
  function labels() {
    var host = /** @type {HTMLElement} */ (root.host);
    host.style.setProperty("--a", cfg.color || "#2563eb");
    host.style.setProperty("--on", onColor(cfg.color || "#2563eb"));
    titleEl.textContent = cfg.title || t("title");
    panel.setAttribute("aria-labelledby", "sb-title");
    launch.setAttribute("aria-label", t("open"));
    $("#sb-confirm").textContent = t("endAsk");
    confirmEl.querySelector(".yes").textContent = t("endYes");
    confirmEl.querySelector(".no").textContent = t("endNo");
    minBtn.textContent = "×";
    minBtn.setAttribute("aria-label", t("close"));
    endBtn.textContent = t("end");
    $(".send").textContent = t("send");
    $("label[for=sb-text]").textContent = t("input");
    input.placeholder = t("placeholder");
    $(".tx").setAttribute("aria-label", t("dismiss"));
    clip.setAttribute("aria-label", t("attach"));
    clip.title = t("attach");
  }
  function scroll() { logEl.scrollTop = logEl.scrollHeight; }
  function sys(text) { var d = logEl.appendChild(el("div", "sys", text)); scroll(); return d; }
  function hhmm(ms) {
    var d = new Date(ms);
    return ("0" + d.getHours()).slice(-2) + ":" + ("0" + d.getMinutes()).slice(-2);
  }
  function initials(name) {
    return (name || "?").split(/\s+/).filter(Boolean).slice(0, 2).map(function (p) { return p[0]; }).join("").toUpperCase();
  }
  // Links in a message: http(s) and mailto only, the rest stays text (as in the console's
  // dom.js; the widget is one classic script on the host's page, so it carries its own copy).
  var LINK = /\b(?:https?:\/\/|mailto:)[^\s<>"']+/gi;
  function linked(text) {
    var out = document.createDocumentFragment(), last = 0, m;
    text = String(text == null ? "" : text);
    LINK.lastIndex = 0;
    while ((m = LINK.exec(text))) {
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
  // A stored event goes above messages still being sent: those are stored after it (the
  // answer to a proactive message is sent before the message itself arrives as an event).
  function beforePending(node) {
    var first = logEl.querySelector(".msg.sending");
    if (first && first !== node) logEl.insertBefore(node, first);
  }
  function bubble(mine, name, text, at, file) {
    var row = el("div", "msg" + (mine ? " me" : ""));
    if (!mine) {
      var av = el("div", "av", initials(name));
      av.setAttribute("aria-hidden", "true");
      row.appendChild(av);
    }
    var col = el("div");
    var b = col.appendChild(el("div", "b"));
    b.appendChild(file ? fileEl(file) : linked(text));
    col.appendChild(el("div", "meta", (mine ? t("you") : name) + " · " + hhmm(at || Date.now())));
    row.appendChild(col);
    logEl.appendChild(row);
    scroll();
    return row;
  }
  // ---- files: sent over HTTP with the visitor's token, fetched the same way ------------------
  function filesOn() { return cfg.attachments && cfg.attachments.max_bytes > 0 && cfg.attachments.types.length > 0; }
  function authed(path, opts) {
    opts = opts || {};
    opts.headers = opts.headers || {};
    opts.headers.Authorization = "Bearer " + st.token;
    return fetch(BASE.origin + path, opts);
  }
  // A file in a message: an image shows (fetched as a blob: the token goes in a header, never
  // in a URL), a PDF is a button that downloads it. `file.local` is the picked file itself.
  function fileEl(file) {
    var fetchBlob = function () {
      if (file.local) return Promise.resolve(file.local);
      return authed("/v1/attachments/" + encodeURIComponent(file.id)).then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.blob();
      });
    };
    if (/^image\//.test(file.content_type)) {
      var img = el("img");
      img.alt = file.name;
      fetchBlob().then(function (b) { img.src = URL.createObjectURL(b); img.onload = scroll; }, function () { img.replaceWith(el("span", null, file.name)); });
      return img;
    }
    var btn = el("button", "file");
    btn.type = "button";
    btn.title = t("download", { name: file.name });
    btn.textContent = file.name + " · " + Math.max(1, Math.round(file.size / 1024)) + " KB";
    btn.addEventListener("click", function () {
      fetchBlob().then(function (b) {
        var a = el("a");
        a.href = URL.createObjectURL(b); a.download = file.name;
        root.appendChild(a); a.click(); a.remove();
      });
    });
    return btn;
  }
  function sendFile(f) {
    var rules = cfg.attachments;
    if (f.size > rules.max_bytes) { setStatus(t("tooBig", { mb: Math.floor(rules.max_bytes / 1048576) || 1 })); return; }
    if (rules.types.indexOf(f.type) < 0) { setStatus(t("badType")); return; }
    var cid = rid();
    var row = bubble(true, t("you"), f.name, Date.now(), { name: f.name, content_type: f.type, size: f.size, local: f });
    row.classList.add("sending");
    uploading[cid] = row;
    var q = "?client_id=" + cid + "&name=" + encodeURIComponent(f.name);
    authed("/v1/conversations/" + encodeURIComponent(conv) + "/attachments" + q, { method: "POST", headers: { "Content-Type": f.type }, body: f })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (b) {
          if (!r.ok) throw new Error((b.error && b.error.message) || "HTTP " + r.status);
        });
      })
      .catch(function (e) {
        if (!uploading[cid]) return;
        row.remove(); delete uploading[cid];
        setStatus(t("failed", { why: e.message }));
      });
  }
  clip.addEventListener("click", function () { pick.click(); });
  pick.addEventListener("change", function () {
    var f = pick.files && pick.files[0];
    pick.value = "";
    if (f && conv) sendFile(f);
  });
  // Files go into an open conversation: the clip shows while one is.
  function clipShown() { clip.hidden = !(filesOn() && conv && (convState === "queued" || convState === "active")); }

  function setStatus(text) { statusEl.textContent = text || ""; statusEl.hidden = !text; }
  /** The estimate's range in whole minutes ("3–6"), or the older single figure. @param {any} e @param {number} fallback */
  function waitRange(e, fallback) {
    if (!e) return String(fallback || 1);
    var low = Math.max(1, Math.ceil(e.low_secs / 60)), high = Math.max(low, Math.ceil(e.high_secs / 60));
    return low === high ? String(low) : low + "–" + high;
  }
  function setBadge() {
    badge.hidden = unread === 0;
    badge.textContent = String(unread);
    launch.setAttribute("aria-label", unread ? t("open") + ", " + t("unread", { n: unread }) : t("open"));
  }
  function setOpen(open) {
    var was = !panel.hidden;
    panel.hidden = !open;
    launch.setAttribute("aria-expanded", String(open));
    st.open = open; save();
    if (open) {
      unread = 0; setBadge(); teaser.hidden = true;
      // Still nobody on duty? A fresh welcome says whether someone came since.
      if (!was && !available && convState !== "queued" && convState !== "active") reconnect();
      maybePrechat(); scroll(); readNow(); setTimeout(function () { input.focus(); }, 0);
    }
    if (open !== was) emit(open ? "open" : "close");
  }
  function clearCards() { root.querySelectorAll(".card").forEach(function (c) { c.remove(); }); }

  // ---- forms: pre-chat, offline, rating ---------------------------------------------------
  function field(card, label, inputEl) {
    var l = el("label", null, label);
    l.appendChild(inputEl);
    card.appendChild(l);
    return inputEl;
  }
  // The site's pre-chat fields as a card: before the first message (`ask: before`, with the
  // department), or inside the chat after it (`ask: in_chat`). Answers go out in a new hello.
  function contactCard(p, before) {
    var card = el("form", "card prechat");
    var inputs = {};
    if (!before) card.appendChild(el("p", null, t("contactTitle")));
    if (p.name) inputs.name = field(card, t("name"), el("input"));
    if (p.email) { inputs.email = field(card, t("email"), el("input")); inputs.email.type = "email"; }
    if (before && p.department && cfg.departments.length > 1) {
      var sel = el("select");
      cfg.departments.forEach(function (d) { var o = el("option", null, deptName(d)); o.value = d.id; sel.appendChild(o); });
      // The team the visitor chose, else the site's default: untouched, nobody is misrouted.
      if (st.dept || cfg.default_department) sel.value = st.dept || cfg.default_department;
      inputs.department = field(card, t("department"), sel);
    }
    (p.fields || []).forEach(function (f) {
      var i = field(card, f.label, el("input"));
      i.required = !!f.required;
      inputs["f:" + f.id] = i;
    });
    var go = el("button", null, before ? t("start") : t("contactSave"));
    go.type = "submit";
    card.appendChild(go);
    if (!before) {
      var skip = el("button", "secondary", t("contactSkip"));
      skip.type = "button";
      skip.addEventListener("click", function () { st.asked = true; save(); card.remove(); input.focus(); });
      card.appendChild(skip);
    }
    card.addEventListener("submit", function (e) {
      e.preventDefault();
      var pre = { fields: {} };
      for (var k in inputs) {
        var v = inputs[k].value.trim();
        if (k.indexOf("f:") === 0) { if (v) pre.fields[k.slice(2)] = v; } else if (v) pre[k] = v;
      }
      if (pre.department) st.dept = pre.department;
      st.prechat = pre; st.asked = true; save();
      card.remove();
      form.hidden = false;
      reconnect();
      input.focus();
    });
    return card;
  }
  function maybePrechat() {
    var p = cfg.prechat;
    // A visitor answering a proactive message is not stopped by a form: fast first contact.
    // Nor is one whose site asks inside the chat (`in_chat`): they type first.
    if (!p || p.ask === "in_chat" || st.prechat || conv || st.offer || !available || root.querySelector(".prechat")) return;
    var card = contactCard(p, true);
    form.hidden = true;
    logEl.appendChild(card);
    var first = card.querySelector("input,select");
    if (first) first.focus();
  }
  // Type first: once the first message is in, the site's fields are asked inside the chat,
  // once (answered or waved away), and never of a visitor the host page identified.
  function maybeAskContact() {
    var p = cfg.prechat;
    if (!p || p.ask !== "in_chat" || st.prechat || st.asked || (st.identity && st.identity.email)) return;
    if (!(p.name || p.email || (p.fields || []).length) || root.querySelector(".prechat")) return;
    logEl.appendChild(contactCard(p, false));
    scroll();
  }
  function offlineForm(prefill) {
    if (root.querySelector(".offline")) return;
    var card = el("form", "card offline");
    card.appendChild(el("h3", null, t("offlineTitle")));
    var email = field(card, t("email"), el("input"));
    email.type = "email"; email.required = true;
    email.value = (st.identity && st.identity.email) || (st.prechat && st.prechat.email) || "";
    var text = field(card, t("message"), el("textarea"));
    text.required = true; text.rows = 3;
    // What the visitor already wrote or typed: nobody asks them to type it again.
    text.value = prefill || myTexts.join("\n");
    var go = el("button", null, t("send"));
    go.type = "submit";
    card.appendChild(go);
    card.addEventListener("submit", function (e) {
      e.preventDefault();
      offlineText = text.value;
      offlineEcho = myTexts.length > 0 && text.value === myTexts.join("\n");
      send({ type: "offline_message", email: email.value.trim(), text: text.value, name: (st.prechat && st.prechat.name) || undefined });
    });
    logEl.appendChild(card);
    scroll();
  }
  // Nobody on duty: said before the visitor writes, with the form at once and the composer's
  // text carried into it.
  // A department's name in the visitor's language, where the site gives one.
  function deptName(d) { return (d.names && d.names[lang()]) || d.name || d.id; }
  // When a closed department opens next, in the visitor's language and time zone.
  function when(ms) {
    var d = new Date(ms), soon = ms - Date.now() < 6 * 86400000;
    var opts = soon ? { weekday: "long", hour: "2-digit", minute: "2-digit" }
      : { weekday: "long", day: "numeric", month: "long", hour: "2-digit", minute: "2-digit" };
    try { return new Intl.DateTimeFormat(locale, /** @type {any} */ (opts)).format(d); } catch (e) { return d.toLocaleString(); }
  }
  function offerOffline() {
    if (root.querySelector(".offline")) return;
    if (!root.querySelector(".nobody")) {
      // Nobody in this department; say when it opens, and offer the teams that are there now.
      var mine = st.dept || cfg.default_department;
      var here = depts.filter(function (d) { return d.id === mine; })[0];
      var text = here && here.opens_at ? t("nobodyBack", { when: when(here.opens_at) }) : t("nobody");
      logEl.appendChild(el("div", "sys nobody", text));
      var others = depts.filter(function (d) { return d.available && d.id !== mine; });
      if (others.length) {
        var card = el("div", "card nobody teams");
        card.appendChild(el("h3", null, t("otherTeams")));
        others.forEach(function (d) {
          var b = el("button", null, deptName(d));
          b.type = "button";
          b.addEventListener("click", function () { st.dept = d.id; save(); reconnect(); });
          card.appendChild(b);
        });
        logEl.appendChild(card);
      }
    }
    // "We usually answer within minutes" is not true while nobody is on duty.
    root.querySelectorAll(".greeting").forEach(function (/** @type {HTMLElement} */ g) { g.hidden = true; });
    root.querySelectorAll(".prechat").forEach(function (c) { c.remove(); });
    offlineForm(input.value.trim());
    input.value = "";
    form.hidden = true;
  }
  function backOnDuty() {
    root.querySelectorAll(".offline,.nobody").forEach(function (c) { c.remove(); });
    root.querySelectorAll(".greeting").forEach(function (/** @type {HTMLElement} */ g) { g.hidden = false; });
    form.hidden = false;
    maybePrechat();
  }
  // The confirmation of an offline message goes below the message it confirms.
  function thank() {
    clearTimeout(thanksTimer);
    thanksDue = false; offlineText = null;
    sys(t("offlineThanks"));
  }
  function ratingForm() {
    if (root.querySelector(".rating")) return;
    var card = el("form", "card rating");
    card.appendChild(el("h3", null, t("rateTitle")));
    var stars = el("div", "stars");
    stars.setAttribute("role", "group");
    stars.setAttribute("aria-label", t("rateTitle"));
    var score = 0;
    for (var i = 1; i <= 5; i++) (function (n) {
      var b = el("button", null, "★");
      b.type = "button";
      b.setAttribute("aria-label", t("star", { n: n }));
      b.setAttribute("aria-pressed", "false");
      b.addEventListener("click", function () {
        score = n;
        stars.querySelectorAll("button").forEach(function (x, j) { x.setAttribute("aria-pressed", String(j < n)); });
      });
      stars.appendChild(b);
    })(i);
    card.appendChild(stars);
    var comment = field(card, t("comment"), el("textarea"));
    comment.rows = 2;
    var go = el("button", null, t("rateSend"));
    go.type = "submit";
    card.appendChild(go);
    card.addEventListener("submit", function (e) {
      e.preventDefault();
      if (score) send({ type: "rate", score: score, comment: comment.value.trim() || undefined });
    });
    logEl.appendChild(card);
    if (cfg.email && givenEmail()) copyForm();
    scroll();
  }
  // The address the visitor gave (form or host page): the only one a copy may go to.
  function givenEmail() {
    return (st.identity && st.identity.email) || (st.prechat && st.prechat.email) || "";
  }
  // A copy of the chat by email, offered when the site sends email and the visitor gave an
  // address.
  function copyForm() {
    if (root.querySelector(".copy")) return;
    var card = el("form", "card copy");
    var addr = field(card, t("copyTitle"), el("input"));
    addr.type = "email"; addr.required = true; addr.readOnly = true;
    addr.value = givenEmail();
    var go = el("button", null, t("copySend"));
    go.type = "submit";
    card.appendChild(go);
    card.addEventListener("submit", function (e) {
      e.preventDefault();
      send({ type: "email_transcript", email: addr.value.trim() });
    });
    logEl.appendChild(card);
  }

  // ---- events from the server --------------------------------------------------------------
  function show(c, ev) {
    if (c !== conv) {
      // A newer conversation (this tab or another started it): continue below a divider.
      if (conv && c < conv) return;
      if (conv && !freshDivider) sys("— " + t("newChat") + " —");
      freshDivider = false;
      conv = c; lastSeq = 0; st.conv = c; myTexts = []; agentRead = 0; readSent = 0;
      // The transcript starts with the proactive message the visitor answered: show it once.
      if (offerEl) { offerEl.remove(); offerEl = null; }
      delete st.offer; save();
      clearCards();
      // An agent started this conversation (proactive chat): open with their message.
      if (panel.hidden && ev.kind === "assigned") setOpen(true);
    }
    if (ev.seq <= lastSeq) return; // already shown: resume overlap or another tab's echo
    lastSeq = ev.seq;
    var live = panel.hidden;
    if (ev.kind === "message") {
      var mine = ev.author === "visitor";
      var p = ev.client_id && (pending[ev.client_id] || (uploading[ev.client_id] && { el: uploading[ev.client_id] }));
      var confirms = mine && offlineText !== null && ev.text === offlineText;
      if (mine && p) {
        p.el.dataset.seq = ev.seq;
        p.el.classList.remove("sending");
        delete pending[ev.client_id]; delete uploading[ev.client_id];
        maybeAskContact();
      } else if (!(confirms && offlineEcho)) {
        var row = bubble(mine, ev.author_name || t("agent"), ev.text, ev.at, ev.attachment);
        row.dataset.seq = ev.seq;
        beforePending(row);
      }
      if (mine && !confirms && !ev.attachment) myTexts.push(ev.text);
      if (confirms) { offlineText = null; offlineEcho = false; if (thanksDue) thank(); }
      if (!mine && live) { unread++; setBadge(); }
      emit("message", { conversation: c, seq: ev.seq, author: ev.author, name: ev.author_name, text: ev.text, at: ev.at });
      if (ev.author === "agent") setTyping(false);
    } else if (ev.kind === "assigned") {
      convState = "active";
      subEl.textContent = ev.agent.name;
      setStatus("");
      beforePending(sys(ev.text));
      if (live) { unread++; setBadge(); }
    } else if (ev.kind === "notice") {
      sys(ev.text);
      if (ev.notice === "queued") { convState = "queued"; setStatus(t("queue", { n: ev.position, m: waitRange(ev.estimate, ev.estimate_minutes) })); }
      if (ev.notice === "requeued") { convState = "queued"; subEl.textContent = ""; }
      if (ev.notice === "offline") { offlineForm(); form.hidden = true; }
    } else if (ev.kind === "closed") {
      convState = "closed";
      setStatus(""); subEl.textContent = ""; endBtn.hidden = true; confirmEl.hidden = true;
      if (ev.text) sys(ev.text); // none after an offline reply
      if (!/^(no_agent|out_of_hours|offline_message|max_wait)$/.test(ev.reason)) ratingForm();
    }
    endBtn.hidden = convState !== "queued" && convState !== "active";
    clipShown();
    if (ev.kind === "message" && mine) markSeen();
    readNow();
  }
  // Read receipts: "Seen" under the visitor's last message the agent has read; ours goes out
  // when the panel is open on a visible page, at most every half second.
  function markSeen() {
    var old = root.querySelector(".seen");
    if (old) old.remove();
    /** @type {HTMLElement | null} */
    var last = null;
    root.querySelectorAll(".msg.me[data-seq]").forEach(function (/** @type {HTMLElement} */ r) { if (+r.dataset.seq <= agentRead) last = r; });
    if (last) last.lastChild.appendChild(el("div", "seen", t("seen")));
  }
  function readNow() {
    if (readTimer) return;
    readTimer = setTimeout(function () {
      readTimer = null;
      if (!conv || panel.hidden || document.hidden || readSent >= lastSeq) return;
      if (send({ type: "read", seq: lastSeq })) readSent = lastSeq;
    }, 500);
  }
  document.addEventListener("visibilitychange", readNow);
  function showOffer() {
    if (offerEl) offerEl.remove();
    // The invitation supersedes "nobody is on duty": the reply will say if still so.
    root.querySelectorAll(".nobody").forEach(function (c) { c.remove(); });
    offerEl = bubble(false, st.offer.name || t("agent"), st.offer.text, st.offer.at);
    offerEl.classList.add("offer");
    clearCards();
    form.hidden = false;
    if (panel.hidden) { unread++; setBadge(); }
  }
  function setTyping(on, name) {
    clearTimeout(remoteTypingTimer);
    typingEl.textContent = on ? t("typing", { name: name || t("agent") }) : "";
    if (on) remoteTypingTimer = setTimeout(function () { setTyping(false); }, 6000);
  }
  function onMessage(m) {
    switch (m.type) {
      case "welcome":
        attempts = 0;
        st.token = m.token; save();
        setStatus("");
        if (m.conversation) {
          if (m.conversation.id !== conv) { conv = m.conversation.id; lastSeq = 0; st.conv = conv; save(); }
          convState = m.conversation.state;
          agentRead = m.conversation.agent_read || 0; readSent = m.conversation.visitor_read || 0; markSeen();
        } else if (conv) {
          conv = null; lastSeq = 0; convState = null; delete st.conv; save(); // expired on the server
        }
        endBtn.hidden = convState !== "queued" && convState !== "active";
        clipShown();
        available = m.available !== false;
        depts = m.departments || [];
        if (convState !== "queued" && convState !== "active") {
          if (!available) offerOffline(); else if (root.querySelector(".nobody")) backOnDuty();
        }
        if (st.offer && (Date.now() - st.offer.at > OFFER_MS || convState === "queued" || convState === "active")) { delete st.offer; save(); }
        if (st.offer && !offerEl) showOffer();
        for (var cid in pending) send(pending[cid].msg);
        emit("connected", { available: available, conversation: conv });
        break;
      case "event": show(m.conversation, m.event); break;
      case "read": if (m.conversation === conv && m.seq > agentRead) { agentRead = m.seq; markSeen(); } break;
      case "proactive":
        if (convState === "queued" || convState === "active") break;
        st.offer = { trigger: m.trigger, text: m.text, name: m.author_name, at: m.at || Date.now() }; save();
        showOffer();
        // A small bubble beside the launcher, not the whole panel over the page.
        if (panel.hidden) {
          teaser.querySelector(".tn").textContent = st.offer.name || t("agent");
          teaser.querySelector(".tt").textContent = st.offer.text;
          teaser.hidden = false;
        }
        break;
      case "queue": if (m.conversation === conv) setStatus(t("queue", { n: m.position, m: waitRange(m.estimate, m.estimate_minutes) })); break;
      case "typing": setTyping(m.on, m.name); break;
      case "ack": break;
      case "offline_received":
        clearCards();
        form.hidden = false;
        // The message's own event may still be on its way: thank below it, or shortly anyway.
        if (offlineText === null) thank();
        else { thanksDue = true; thanksTimer = setTimeout(thank, 2000); }
        break;
      case "rated":
        root.querySelectorAll(".rating").forEach(function (c) { c.remove(); });
        sys(t("rateThanks"));
        break;
      case "transcript_sent":
        root.querySelectorAll(".copy").forEach(function (c) { c.remove(); });
        sys(t("copySent", { email: m.email }));
        break;
      case "error":
        if (m.code === "unauthorized") { delete st.token; save(); reconnect(); }
        else if (m.code === "conversation_lost") {
          // The server lost this chat (its state store restarted empty): the next message starts anew.
          sys(m.message); conv = null; lastSeq = 0; convState = null; delete st.conv; save();
        }
        else if (m.code === "rate_limited") setTimeout(function () { for (var c in pending) send(pending[c].msg); }, 1500);
        else if (m.code === "email_unavailable" || m.code === "invalid_email") sys(m.message);
        else if (m.client_id && pending[m.client_id]) {
          pending[m.client_id].el.classList.remove("sending");
          sys(t("failed", { why: m.message }));
          delete pending[m.client_id];
        }
        break;
    }
  }

  // ---- connection --------------------------------------------------------------------------
  function page() { return { url: location.href, title: document.title, referrer: document.referrer || undefined }; }
  function send(obj) {
    if (ws && ws.readyState === 1) { ws.send(JSON.stringify(obj)); return true; }
    return false;
  }
  function hello() {
    var id = st.identity || {}, pre = st.prechat || {};
    var zone;
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || undefined; } catch (e) { zone = undefined; }
    var h = { type: "hello", locale: locale, timezone: zone, page: page(), department: st.dept || undefined,
      name: id.name || pre.name || undefined, email: id.email || pre.email || undefined, fields: pre.fields || undefined };
    if (st.token) h.token = st.token;
    if (conv) h.resume = { conversation: conv, last_seq: lastSeq };
    if (id.id && id.user_hash) { h.user_id = String(id.id); h.user_hash = id.user_hash; }
    if (id.email_hash) h.email_hash = id.email_hash;
    if (id.attributes && id.attributes_hash) { h.attributes = id.attributes; h.attributes_hash = id.attributes_hash; }
    return h;
  }
  function connect() {
    clearTimeout(timer);
    var sock = new WebSocket(WS_URL);
    ws = sock;
    sock.onopen = function () { lastHeard = Date.now(); sock.send(JSON.stringify(hello())); };
    sock.onmessage = function (e) {
      if (sock !== ws) return;
      lastHeard = Date.now();
      var m; try { m = JSON.parse(e.data); } catch (x) { return; }
      onMessage(m);
    };
    sock.onclose = function () {
      if (sock !== ws) return;
      ws = null;
      setStatus(t("reconnecting"));
      // Exponential backoff with jitter, so a restarted server is not stampeded.
      var delay = Math.min(15000, 500 * Math.pow(2, attempts++)) * (0.5 + Math.random());
      timer = setTimeout(connect, delay);
    };
  }
  function reconnect() {
    var old = ws;
    ws = null;
    if (old) { old.onclose = null; old.close(); }
    attempts = 0;
    connect();
  }
  pingTimer = setInterval(function () {
    if (!ws) return;
    if (Date.now() - lastHeard > 60000) { ws.close(); return; } // silent server: reconnect
    send({ type: "ping" });
  }, 20000);
  window.addEventListener("online", function () { if (!ws) { attempts = 0; connect(); } });

  // ---- composing ---------------------------------------------------------------------------
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var text = input.value.trim();
    if (!text) return;
    input.value = "";
    var cid = rid();
    var msg = { type: "message", client_id: cid, text: text };
    // A new conversation starts with this message: its divider goes above it.
    if (conv && convState === "closed" && !freshDivider) { sys("— " + t("newChat") + " —"); freshDivider = true; }
    // The first message after a proactive one answers it: the chat goes to its department.
    if (st.offer && convState !== "queued" && convState !== "active") msg.trigger = st.offer.trigger;
    pending[cid] = { msg: msg, el: bubble(true, t("you"), text, Date.now()) };
    pending[cid].el.classList.add("sending");
    send(msg);
    if (typingSent) { typingSent = false; send({ type: "typing", on: false }); }
  });
  input.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit ? form.requestSubmit() : form.dispatchEvent(new Event("submit")); }
  });
  // Typing: on at the first key, off after a pause. With the site's typing preview on, the
  // draft goes along, at most twice a second.
  var draftTimer = null;
  function typingFrame() {
    var f = { type: "typing", on: true };
    if (cfg.typing_preview) f.text = input.value.slice(0, 4000);
    return f;
  }
  input.addEventListener("input", function () {
    if (!conv || convState === "closed") return;
    if (!typingSent) { typingSent = true; send(typingFrame()); }
    else if (cfg.typing_preview && !draftTimer) {
      draftTimer = setTimeout(function () { draftTimer = null; if (typingSent) send(typingFrame()); }, 500);
    }
    clearTimeout(typingTimer);
    typingTimer = setTimeout(function () { typingSent = false; send({ type: "typing", on: false }); }, 2500);
  });
  launch.addEventListener("click", function () { setOpen(panel.hidden); });
  teaser.addEventListener("click", function (e) {
    teaser.hidden = true;
    if (!e.target.classList.contains("tx")) setOpen(true);
  });
  minBtn.addEventListener("click", function () { setOpen(false); launch.focus(); });
  // Ending a chat asks first: the button sits next to "minimize", and a slip must not end it.
  endBtn.addEventListener("click", function () {
    if (confirmEl.hidden) { confirmEl.hidden = false; confirmEl.querySelector(".yes").focus(); }
  });
  confirmEl.querySelector(".yes").addEventListener("click", function () { confirmEl.hidden = true; send({ type: "close" }); });
  confirmEl.querySelector(".no").addEventListener("click", function () { confirmEl.hidden = true; input.focus(); });
  panel.addEventListener("keydown", function (e) { if (e.key === "Escape") { setOpen(false); launch.focus(); } });

  // ---- page tracking (single-page apps too) -------------------------------------------------
  var lastUrl = location.href;
  function navigated() {
    setTimeout(function () { // let the app update document.title first
      if (location.href === lastUrl) return;
      lastUrl = location.href;
      send({ type: "page", url: location.href, title: document.title, referrer: document.referrer || undefined });
    }, 0);
  }
  ["pushState", "replaceState"].forEach(function (k) {
    var orig = history[k];
    history[k] = function () { var r = orig.apply(this, arguments); navigated(); return r; };
  });
  window.addEventListener("popstate", navigated);
  window.addEventListener("hashchange", navigated);

  // ---- API ---------------------------------------------------------------------------------
  win.Switchboard = {
    version: "1",
    open: function () { setOpen(true); },
    close: function () { setOpen(false); },
    identify: function (who) {
      st.identity = { id: who && who.id, name: who && who.name, email: who && who.email, user_hash: who && who.user_hash, email_hash: who && who.email_hash,
        attributes: who && who.attributes, attributes_hash: who && who.attributes_hash };
      save(); reconnect();
    },
    setLocale: function (l) { locale = String(l); st.locale = locale; save(); labels(); reconnect(); },
    setDepartment: function (d) { st.dept = String(d); save(); reconnect(); },
    on: function (ev, fn) { if (listeners[ev] && typeof fn === "function") listeners[ev].push(fn); }
  };

  function start() {
    document.body.appendChild(host);
    labels();
    if (filesOn()) pick.accept = cfg.attachments.types.join(",");
    sys(cfg.greeting || t("greeting")).classList.add("greeting");
    connect();
    if (st.open) setOpen(true);
    window.dispatchEvent(new Event("switchboard:ready"));
  }
  fetch(BASE.origin + "/v1/widget/" + encodeURIComponent(SITE))
    .then(function (r) { return r.ok ? r.json() : {}; })
    .catch(function () { return {}; })
    .then(function (/** @type {any} */ c) {
      for (var k in c) if (c[k] != null) cfg[k] = c[k];
      if (!st.locale && c.default_locale && !navigator.language) locale = c.default_locale;
      if (document.body) start(); else document.addEventListener("DOMContentLoaded", start);
    });
})();
