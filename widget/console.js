/*! Switchboard agent console. No dependencies.
 * Speaks protocol v1 on /v1/agent (docs/protocol.md); the supervisor view reads the REST API
 * with the admin token. Every text is rendered with textContent: nothing a visitor or agent
 * writes becomes HTML. */
// @ts-check
(function () {
  "use strict";

  /** An element of the page by id; `any`, since each is used as the kind of element it is. */
  var $ = /** @type {(id: string) => any} */ (function (id) { return document.getElementById(id); });

  // ---- language: English, or Russian (the browser's language, or the choice in the corner) ----
  var RU = {
    "Switchboard console": "Switchboard — консоль",
    "Email": "E-mail",
    "Password": "Пароль",
    "Sign in": "Войти",
    "Welcome! Choose a password (at least 10 characters) to finish setting up your account.": "Добро пожаловать! Придумайте пароль (не короче 10 символов), чтобы завершить настройку учётной записи.",
    "New password": "Новый пароль",
    "Set password and sign in": "Задать пароль и войти",
    "With an API token": "По API-токену",
    "Token": "Токен",
    "Sign in as agent": "Войти как оператор",
    "Supervisor view": "Панель руководителя",
    "An agent's API token, or the deployment's admin token for the supervisor and admin views.": "API-токен оператора или токен администратора сервера для панелей руководителя и администратора.",
    "connected": "на связи",
    "Status": "Статус",
    "Online": "В сети",
    "Away": "Отошёл",
    "Offline": "Не в сети",
    "Chats at once": "Чатов одновременно",
    "Chats": "Чаты",
    "Conversations": "Разговоры",
    "Supervisor": "Руководитель",
    "Admin": "Администрирование",
    "Sign out": "Выйти",
    "Visitors": "Посетители",
    "My chats": "Мои чаты",
    "No chats yet.": "Чатов пока нет.",
    "Queues": "Очереди",
    "Transfer": "Передать",
    "Close chat": "Закрыть чат",
    "To": "Кому",
    "Reason": "Причина",
    "Note": "Заметка",
    "Transfer chat": "Передать чат",
    "Cancel": "Отмена",
    "Private note": "Личная заметка",
    "Attach file": "Прикрепить файл",
    "Send": "Отправить",
    "Select a chat.": "Выберите чат.",
    "Visitor": "Посетитель",
    "Page": "Страница",
    "Source": "Источник",
    "On site": "На сайте",
    "Pages": "Страницы",
    "Nobody is on the site right now.": "Сейчас на сайте никого нет.",
    "Pages this visit": "Страницы за этот визит",
    "Earlier chats": "Прошлые чаты",
    "Loading…": "Загрузка…",
    "Agents": "Операторы",
    "Agent": "Оператор",
    "Load": "Нагрузка",
    "Department": "Отдел",
    "Waiting": "Ожидают",
    "Oldest wait": "Дольше всех ждёт",
    "Read-only: the visitor does not see you. A note goes to the agents in the chat.": "Только чтение: посетитель вас не видит. Заметку увидят операторы в чате.",
    "Note to the agent": "Заметка оператору",
    "Send note": "Отправить заметку",
    "Stop watching": "Перестать наблюдать",
    "Search": "Найти",
    "Ended": "Завершён",
    "any way": "как угодно",
    "resolved": "решён",
    "missed": "пропущен",
    "offline message": "сообщение без оператора",
    "Follow-up": "Работа",
    "any": "любая",
    "open": "открыт",
    "pending": "ожидает",
    "solved": "решён",
    "Tag": "Метка",
    "Rating": "Оценка",
    "From": "С",
    "How": "Как",
    "Tags": "Метки",
    "No conversations match.": "Подходящих разговоров нет.",
    "Load more": "Ещё",
    "Save": "Сохранить",
    "Answer by email": "Ответить по e-mail",
    "Send email": "Отправить письмо",
    "Departments & hours": "Отделы и часы работы",
    "Canned responses": "Шаблоны ответов",
    "Triggers": "Триггеры",
    "Site & widget": "Сайт и виджет",
    "Webhooks": "Вебхуки",
    "Role": "Роль",
    "Departments": "Отделы",
    "State": "Состояние",
    "Invite an agent": "Пригласить оператора",
    "Full name": "Полное имя",
    "Disabled": "Отключён",
    "Invite": "Пригласить",
    "New": "Новый",
    "Send this link to the agent; it is shown once and works for 7 days:": "Отправьте эту ссылку оператору; она показывается один раз и действует 7 дней:",
    "Name": "Имя",
    "Hours": "Часы работы",
    "Time zone": "Часовой пояс",
    "Hours per day as HH:MM-HH:MM, several separated by commas; empty: closed that day.": "Часы на каждый день в виде ЧЧ:ММ-ЧЧ:ММ, несколько через запятую; пусто — выходной.",
    "Monday": "Понедельник",
    "Tuesday": "Вторник",
    "Wednesday": "Среда",
    "Thursday": "Четверг",
    "Friday": "Пятница",
    "Saturday": "Суббота",
    "Sunday": "Воскресенье",
    "Holidays": "Праздники",
    "Save department": "Сохранить отдел",
    "Shortcut": "Сокращение",
    "Text": "Текст",
    "Save canned response": "Сохранить шаблон",
    "Trigger": "Триггер",
    "After": "Через",
    "Message": "Сообщение",
    "Page URL pattern": "Шаблон адреса страницы",
    "Seconds on page": "Секунд на странице",
    "Save trigger": "Сохранить триггер",
    "Site name": "Название сайта",
    "Allowed origins": "Разрешённые источники",
    "Widget colour": "Цвет виджета",
    "Widget title": "Заголовок виджета",
    "Greeting": "Приветствие",
    "Typing preview": "Предпросмотр набора",
    "agents see what visitors type before they send it": "операторы видят, что пишет посетитель, ещё до отправки",
    "Preview": "Образец",
    "Save site": "Сохранить сайт",
    "Webhook": "Вебхук",
    "Events": "События",
    "Signing secret": "Секрет подписи",
    "Save webhook": "Сохранить вебхук",
    "Dead deliveries": "Недоставленные",
    "Delivery": "Доставка",
    "Event": "Событие",
    "Attempts": "Попытки",
    "Keyboard shortcuts": "Сочетания клавиш",
    "Next / previous chat": "Следующий / предыдущий чат",
    "Write a reply": "Написать ответ",
    "Transfer the chat": "Передать чат",
    "Close the chat": "Закрыть чат",
    "Move along the chat list and open a chat": "Перемещение по списку чатов и открытие чата",
    "This list (": "Этот список (",
    "closes it)": "закрывает его)",
    "Close": "Закрыть",
    "What the next agent should know": "Что нужно знать следующему оператору",
    "Reply… (/ for canned responses)": "Ответ… (/ — шаблоны)",
    "Send an image or PDF": "Отправить изображение или PDF",
    "Search past conversations": "Поиск по прошлым разговорам",
    "Words in messages, notes, names, emails": "Слова из сообщений, заметок, имён, адресов",
    "agent id": "id оператора",
    "Europe/Berlin (empty: always open)": "Europe/Moscow (пусто — круглосуточно)",
    "https://www.example.com (one per line)": "https://www.example.com (по одному в строке)",
    "at least 16 characters; empty keeps the current one": "не короче 16 символов; пусто — оставить прежний",
    "Visitor ": "Посетитель ",
    "Enter the admin token.": "Введите токен администратора.",
    "Too many attempts; wait a minute.": "Слишком много попыток; подождите минуту.",
    "This account is disabled.": "Эта учётная запись отключена.",
    "Wrong email or password.": "Неверный e-mail или пароль.",
    "Not connected; try again in a moment.": "Нет связи; попробуйте через минуту.",
    "Offline message from ": "Сообщение без оператора от ",
    "Offline message": "Сообщение без оператора",
    "Your session ended; sign in again.": "Сеанс завершён; войдите снова.",
    "That token is not valid.": "Этот токен недействителен.",
    "Choose 1 to ": "Выберите от 1 до ",
    "New chat": "Новый чат",
    "assigned to you": "назначен вам",
    "Seen": "Прочитано",
    "A chat was lost by the server (its state store restarted empty).": "Сервер потерял чат (хранилище состояния перезапустилось пустым).",
    "Load earlier messages": "Показать более ранние сообщения",
    "This chat is no longer yours (": "Этот чат больше не ваш (",
    "Visitor is typing: ": "Посетитель печатает: ",
    "Visitor is typing…": "Посетитель печатает…",
    "System": "Система",
    "Private note · ": "Личная заметка · ",
    "Transferred by ": "Передал ",
    " to ": " → ",
    "Back to the queue: ": "Обратно в очередь: ",
    "Assigned to ": "Назначен: ",
    "Closed by ": "Закрыл ",
    "Locale": "Язык",
    "Referrer": "Откуда пришёл",
    "Identity": "Личность",
    "returning (": "вернувшийся (",
    " visits)": " визитов)",
    "new": "новый",
    "verified (": "подтверждена (",
    "No earlier chats.": "Прошлых чатов нет.",
    "Add note": "Добавить заметку",
    "Private note: only agents see it": "Личная заметка: её видят только операторы",
    " new)": " новых)",
    "Hi! Can I help?": "Здравствуйте! Чем могу помочь?",
    "Message to start a chat": "Сообщение, чтобы начать чат",
    "Start chat": "Начать чат",
    "Download": "Скачать",
    "Could not download: ": "Не удалось скачать: ",
    "Not sent: ": "Не отправлено: ",
    "That is not the admin token.": "Это не токен администратора.",
    "Could not refresh: ": "Не удалось обновить: ",
    "Could not open the chat: ": "Не удалось открыть чат: ",
    "Could not load conversations: ": "Не удалось загрузить разговоры: ",
    "Email to ": "Письмо для ",
    "Answer ": "Ответить ",
    " by email": " по e-mail",
    "Could not open it: ": "Не удалось открыть: ",
    "Email sent.": "Письмо отправлено.",
    "Saved.": "Сохранено.",
    "Saved": "Сохранено",
    "Could not save: ": "Не удалось сохранить: ",
    "Chats today": "Чатов сегодня",
    "Median queue wait": "Медиана ожидания в очереди",
    "90% queue wait": "Ожидание в очереди, 90%",
    "90% first response": "Первый ответ, 90%",
    "Median first response": "Медиана первого ответа",
    "Average rating": "Средняя оценка",
    "Watch": "Наблюдать",
    "Take over": "Забрать",
    "The chat is yours now.": "Теперь это ваш чат.",
    "Could not take it over: ": "Не удалось забрать: ",
    "Delete ": "Удалить ",
    "Edit": "Изменить",
    "Enable": "Включить",
    "Disable": "Отключить",
    "Reset password": "Сбросить пароль",
    "Delete": "Удалить",
    "Retry": "Повторить",
    "Edit ": "Изменить: ",
    "Save agent": "Сохранить оператора",
    "Chat with us": "Напишите нам",
    "Hi! How can we help?": "Здравствуйте! Чем помочь?",
    "Language": "Язык",
    "waiting": "ждёт",
    "transferred": "передан",
    "closed": "закрыт",
    "requeued": "в очереди снова",
    "lost": "потерян",
    "online": "в сети",
    "away": "отошёл",
    "offline": "не в сети",
    "full": "занят",
    "queue": "очередь",
    "agent": "оператор",
    "supervisor": "руководитель",
    "admin": "администратор",
    "reconnecting…": "переподключение…",
    "ended (": "завершён (",
    "waiting ": "ждёт ",
    " (full)": " (занят)",
    " (queue)": " (очередь)",
    " (reconnecting)": " (переподключается)",
    " (not connected)": " (не подключён)"
  };
  var LANG_KEY = "switchboard:console-lang";
  var LANG = localStorage.getItem(LANG_KEY) || (/^ru\b/i.test(navigator.language || "") ? "ru" : "en");
  /** The text in the console's language (English is the key). */
  function T(s) { return LANG === "ru" && Object.prototype.hasOwnProperty.call(RU, s) ? RU[s] : s; }
  // The page's own words: every text node and label attribute whose text is a key.
  function translatePage() {
    document.documentElement.lang = LANG;
    document.title = T(document.title);
    if (LANG === "en") return;
    var walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT), n;
    while ((n = walk.nextNode())) {
      var key = n.nodeValue.replace(/\s+/g, " ").trim();
      if (key && T(key) !== key) n.nodeValue = n.nodeValue.replace(n.nodeValue.trim(), T(key));
    }
    document.querySelectorAll("[placeholder],[aria-label],[title]").forEach(function (e) {
      ["placeholder", "aria-label", "title"].forEach(function (a) { if (e.hasAttribute(a)) e.setAttribute(a, T(e.getAttribute(a))); });
    });
  }
  translatePage();
  document.querySelectorAll("select.lang").forEach(function (/** @type {HTMLSelectElement} */ sel) {
    sel.value = LANG;
    sel.addEventListener("change", function () { localStorage.setItem(LANG_KEY, this.value); location.reload(); });
  });
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = String(text);
    return e;
  }
  function rid() { return Date.now().toString(36) + Math.random().toString(36).slice(2, 10); }
  function hhmm(ms) { var d = new Date(ms); return ("0" + d.getHours()).slice(-2) + ":" + ("0" + d.getMinutes()).slice(-2); }
  function dur(secs) {
    secs = Math.max(0, Math.floor(secs));
    var h = Math.floor(secs / 3600), m = Math.floor(secs % 3600 / 60), s = secs % 60;
    return (h ? h + ":" + ("0" + m).slice(-2) : m) + ":" + ("0" + s).slice(-2);
  }
  function shortId(id) { return T("Visitor ") + String(id || "").slice(-5); }
  /** The toast's hiding timer. */
  var toastTimer = 0;
  function toast(text) {
    var t = $("toast");
    t.textContent = text; t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { t.hidden = true; }, 4000);
  }

  // ---- state --------------------------------------------------------------------------------
  var TOKEN_KEY = "switchboard:console-token", MODE_KEY = "switchboard:console-mode";
  var token = sessionStorage.getItem(TOKEN_KEY);
  // Signed in with a password: the session cookie authenticates (HttpOnly, never read here);
  // `account` holds who it is and the CSRF token every change sends back.
  var account = null;
  var ws = null, attempts = 0, retry = null, signedIn = false;
  var goOnline = false;  // signing in (not reloading or reconnecting) puts the agent online
  var me = null, site = { departments: [], agents: [], canned: [] };
  var chats = {};        // conversation id -> {id, department, state, visitor, events[], lastSeq, unread, history, ended}
  var order = [];        // conversation ids, oldest assignment first
  var current = null;    // the conversation in view
  var queues = {};       // department -> {size, oldest_wait_secs, at}
  var visitors = {};     // visitor id -> live record (+ `seen`, when it arrived here)
  var pending = {};      // client_id -> text sent and not yet acknowledged
  var typingSent = false, typingTimer = null, remoteTyping = {};
  var notified = 0;      // desktop notifications shown (tests read document.body.dataset.notified)

  // ---- sign in ------------------------------------------------------------------------------
  $("signin").addEventListener("submit", function (e) {
    e.preventDefault();
    token = $("token").value.trim();
    if (!token) return;
    if (window.Notification && Notification.permission === "default") Notification.requestPermission();
    sessionStorage.setItem(TOKEN_KEY, token);
    sessionStorage.setItem(MODE_KEY, "agent");
    goOnline = true;
    connect();
  });
  $("signin-supervisor").addEventListener("click", function () {
    token = $("token").value.trim();
    if (!token) { $("signin-error").textContent = T("Enter the admin token."); return; }
    sessionStorage.setItem(TOKEN_KEY, token);
    sessionStorage.setItem(MODE_KEY, "supervisor");
    supervisor();
  });
  $("login").addEventListener("submit", function (e) {
    e.preventDefault();
    $("signin-error").textContent = "";
    fetch("/v1/auth/sign-in", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ email: $("email").value.trim(), password: $("password").value }) })
      .then(function (r) {
        if (r.status === 429) throw new Error(T("Too many attempts; wait a minute."));
        if (!r.ok) throw new Error(r.status === 403 ? T("This account is disabled.") : T("Wrong email or password."));
        return r.json();
      })
      .then(function (who) { $("password").value = ""; signedInAs(who, true); })
      .catch(function (err) { $("signin-error").textContent = err.message; });
  });
  $("invite-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var invite = location.hash.slice("#invite=".length);
    fetch("/v1/auth/invite", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token: invite, password: $("new-password").value }) })
      .then(function (r) {
        return r.json().then(function (b) {
          if (!r.ok) throw new Error((b.error && b.error.message) || "HTTP " + r.status);
          return b;
        });
      })
      .then(function (who) { history.replaceState(null, "", "/console/"); signedInAs(who, true); })
      .catch(function (err) { $("signin-error").textContent = err.message; });
  });
  /** Signed in by cookie: the agent's console, with the supervisor and admin views their role allows. */
  function signedInAs(who, fresh) {
    account = who;
    token = "";  // the socket's hello carries no token: the cookie came with the upgrade
    var rank = { agent: 0, supervisor: 1, admin: 2 }[who.role] || 0;
    $("go-supervisor").hidden = rank < 1;
    $("go-inbox").hidden = false;
    $("go-admin").hidden = rank < 2;
    goOnline = fresh;
    connect();
  }
  $("go-supervisor").addEventListener("click", function () { show("supervisor"); supervisor(); });
  $("go-inbox").addEventListener("click", function () { inboxNew = 0; renderInboxBadge(); show("inbox"); inbox(); });
  $("go-admin").addEventListener("click", function () { show("admin"); adminView(); });
  $("go-chats").addEventListener("click", function () { show("app"); });
  /** Shows one of the main views. */
  function show(view) {
    ["app", "supervisor", "admin", "inbox"].forEach(function (v) { $(v).hidden = v !== view; });
    $("go-chats").hidden = view === "app" || !signedIn;
  }
  $("signout").addEventListener("click", function () {
    sessionStorage.removeItem(TOKEN_KEY);
    if (account) {
      api("/v1/auth/sign-out", { method: "POST" }).then(function () { location.reload(); }, function () { location.reload(); });
    } else {
      location.reload();
    }
  });
  function signInFailed(text) {
    sessionStorage.removeItem(TOKEN_KEY);
    token = null; signedIn = false; account = null;
    if (ws) { ws.onclose = null; ws.close(); ws = null; }
    $("auth").hidden = false; $("bar").hidden = true; $("app").hidden = true; $("supervisor").hidden = true; $("admin").hidden = true;
    $("signin-error").textContent = text;
  }

  // ---- connection ---------------------------------------------------------------------------
  function send(obj) {
    if (ws && ws.readyState === 1) { ws.send(JSON.stringify(obj)); return true; }
    toast(T("Not connected; try again in a moment."));
    return false;
  }
  function connect() {
    clearTimeout(retry);
    var sock = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/v1/agent");
    ws = sock;
    sock.onopen = function () {
      var resume = {};
      order.forEach(function (id) { if (!chats[id].ended) resume[id] = chats[id].lastSeq; });
      var hello = { type: "hello", token: token, resume: resume };
      if (goOnline) hello.status = "online";
      sock.send(JSON.stringify(hello));
    };
    sock.onmessage = function (e) {
      if (sock !== ws) return;
      var m; try { m = JSON.parse(e.data); } catch (x) { return; }
      onMessage(m);
    };
    sock.onclose = function () {
      if (sock !== ws) return;
      ws = null;
      $("conn").textContent = T("reconnecting…"); $("conn").classList.add("down");
      var delay = Math.min(15000, 500 * Math.pow(2, attempts++)) * (0.5 + Math.random());
      retry = setTimeout(connect, delay);
    };
  }
  setInterval(function () { if (ws && ws.readyState === 1) ws.send('{"type":"ping"}'); }, 20000);

  function onMessage(m) {
    switch (m.type) {
      case "welcome":
        attempts = 0; signedIn = true; goOnline = false;
        me = m.agent; site = m.site || site;
        $("auth").hidden = true; $("bar").hidden = false; $("app").hidden = false;
        $("conn").textContent = T("connected"); $("conn").classList.remove("down");
        $("site-name").textContent = site.name || "";
        $("go-inbox").hidden = false; // every agent has an inbox: their departments' tickets
        renderMe();
        send({ type: "watch_visitors", on: true });
        break;
      case "agent": me = m.agent; renderMe(); break;
      case "assigned": assigned(m); break;
      case "transcript": earlier(m); break;
      case "event": onEvent(m.conversation, m.event); break;
      case "unassigned": ended(m.conversation, m.reason); break;
      case "closed": ended(m.conversation, "closed"); break;
      case "ack":
        delete pending[m.client_id];
        break;
      case "queues":
        m.queues.forEach(function (q) { queues[q.department] = { size: q.size, oldest: q.oldest_wait_secs, at: Date.now() }; });
        renderQueues();
        break;
      case "visitors":
        visitors = {};
        m.visitors.forEach(function (v) { v.seen = Date.now(); visitors[v.id] = v; });
        renderVisitors();
        break;
      case "visitor": m.visitor.seen = Date.now(); visitors[m.visitor.id] = m.visitor; renderVisitors(); break;
      case "visitor_left": delete visitors[m.id]; renderVisitors(); break;
      case "offline_message":
        // A message left while nobody could answer: now an open ticket in Conversations.
        inboxNew++; renderInboxBadge();
        toast("Offline message from " + (m.name || m.email) + ": " + m.text);
        alertAgent(T("Offline message"), (m.name || m.email) + ": " + m.text, null);
        break;
      case "read":
        if (chats[m.conversation]) {
          chats[m.conversation].visitorRead = Math.max(chats[m.conversation].visitorRead || 0, m.seq);
          if (m.conversation === current) markSeen();
        }
        break;
      case "typing":
        // With the site's typing preview, `text` is the visitor's draft so far.
        remoteTyping[m.conversation] = m.on && (m.text ? m.text : true);
        if (m.conversation === current) renderTyping();
        break;
      case "colleagues": if (!$("transfer").hidden) transferTargets(m.agents); break;
      case "history":
        order.forEach(function (id) {
          var c = chats[id];
          if (c.visitor.id === m.visitor) { c.history = m.tickets.filter(function (t) { return t.conversation !== id; }); }
        });
        if (current && chats[current].visitor.id === m.visitor) renderProfile();
        break;
      case "error":
        if (!signedIn && (m.code === "unauthorized" || m.code === "hello_required")) { signInFailed(account ? T("Your session ended; sign in again.") : T("That token is not valid.")); return; }
        // A refused message goes back into an empty compose box, so nothing typed is lost.
        if (m.client_id && pending[m.client_id] != null) {
          if (!text.value) text.value = pending[m.client_id];
          delete pending[m.client_id];
        }
        toast(m.message + " (" + m.code + ")");
        break;
    }
  }

  // ---- the agent: status and limit ----------------------------------------------------------
  function renderMe() {
    $("me-name").textContent = me.name;
    $("status").value = me.status;
    $("limit").max = me.max_allowed;
    if (document.activeElement !== $("limit")) $("limit").value = me.max_concurrent;
    $("limit-wrap").hidden = me.max_allowed <= 1;
    $("load").textContent = me.load + " / " + me.max_concurrent;
  }
  $("status").addEventListener("change", function () { send({ type: "set_status", status: this.value }); });
  $("limit").addEventListener("change", function () {
    var n = parseInt(this.value, 10);
    if (n >= 1 && n <= me.max_allowed) send({ type: "set_limit", max_concurrent: n });
    else { toast("Choose 1 to " + me.max_allowed); this.value = me.max_concurrent; }
  });

  // ---- chats --------------------------------------------------------------------------------
  function assigned(m) {
    var id = m.conversation.id, c = chats[id];
    if (!c) {
      c = chats[id] = { id: id, events: [], lastSeq: 0, unread: 0, history: null };
      order.push(id);
    }
    c.department = m.conversation.department; c.state = m.conversation.state;
    c.visitorRead = Math.max(c.visitorRead || 0, m.conversation.visitor_read || 0);
    c.readSent = Math.max(c.readSent || 0, m.conversation.agent_read || 0);
    c.visitor = m.visitor; c.ended = false;
    var fresh = c.lastSeq === 0;
    // A long absence: the page starts after a gap, so start over from it ("Load earlier" fills in).
    if (m.more && !fresh) { c.events = []; c.lastSeq = 0; }
    if (fresh || m.more) c.more = m.more;
    m.events.forEach(function (ev) { addEvent(c, ev); });
    if (fresh) {
      // Messages that came before the chat was in view count as unread.
      if (current && id !== current) {
        c.unread = c.events.filter(function (e) { return e.kind === "message" && e.author === "visitor"; }).length;
      }
      send({ type: "history", visitor: m.visitor.id });
      alertAgent(T("New chat"), (visitorName(c)) + ": " + (lastText(c) || T("assigned to you")), id);
      // Opens when no live chat is in view (none, or the one shown has ended).
      if (!current || !chats[current] || chats[current].ended) select(id);
    }
    renderChats();
    if (id === current) renderChat();
  }
  // An earlier page of a transcript (answer to "transcript"): goes before what is shown.
  function earlier(m) {
    var c = chats[m.conversation];
    if (!c) return;
    c.loading = false;
    var first = c.events.length ? c.events[0].seq : Infinity;
    c.events = m.events.filter(function (ev) { return ev.seq < first; }).concat(c.events);
    c.more = m.more;
    if (m.conversation === current) {
      var t = $("transcript"), fromBottom = t.scrollHeight - t.scrollTop;
      renderChat();
      t.scrollTop = t.scrollHeight - fromBottom;
    }
  }
  function loadEarlier(c) {
    if (c.loading || !c.events.length) return;
    c.loading = true;
    send({ type: "transcript", conversation: c.id, before: c.events[0].seq });
  }
  function addEvent(c, ev) {
    if (ev.seq <= c.lastSeq) return false;
    c.lastSeq = ev.seq;
    c.events.push(ev);
    if (ev.kind === "closed") c.state = "closed";
    return true;
  }
  function onEvent(id, ev) {
    var c = chats[id];
    if (!c || !addEvent(c, ev)) return;
    if (ev.kind === "message" && ev.author === "visitor") {
      remoteTyping[id] = false;
      if (id !== current || document.hidden) c.unread++;
      alertAgent(visitorName(c), ev.text, id);
    }
    renderChats();
    if (id === current) { appendEvent($("transcript"), ev); markSeen(); scrollDown(); renderTyping(); readNow(); }
  }
  // Read receipts. The visitor's: "Seen" under the last of your messages they have read. Yours:
  // sent when the chat is on screen (this tab visible and focused), at most every half second.
  function markSeen() {
    var c = current && chats[current], t = $("transcript");
    t.querySelectorAll(".seen").forEach(function (s) { s.remove(); });
    if (!c || !c.visitorRead) return;
    /** @type {HTMLElement | null} */
    var last = null;
    var mine = t.querySelectorAll(".ev.agent[data-seq]");
    mine.forEach(function (/** @type {HTMLElement} */ d) { if (+d.dataset.seq <= c.visitorRead) last = d; });
    if (last) last.appendChild(el("div", "seen", T("Seen")));
  }
  var readTimer = null;
  function readNow() {
    if (readTimer) return;
    readTimer = setTimeout(function () {
      readTimer = null;
      var c = current && chats[current];
      if (!c || c.ended || c.state === "closed" || document.hidden || !document.hasFocus() || (c.readSent || 0) >= c.lastSeq) return;
      if (send({ type: "read", conversation: c.id, seq: c.lastSeq })) c.readSent = c.lastSeq;
    }, 500);
  }
  window.addEventListener("focus", readNow);
  document.addEventListener("visibilitychange", readNow);
  function ended(id, reason) {
    var c = chats[id];
    if (!c) return;
    c.ended = reason;
    if (reason === "lost") toast(T("A chat was lost by the server (its state store restarted empty)."));
    renderChats();
    if (id === current) renderChat();
  }
  function visitorName(c) { return (c.visitor && (c.visitor.name || c.visitor.email)) || shortId(c.visitor && c.visitor.id); }
  function lastText(c) {
    for (var i = c.events.length - 1; i >= 0; i--) if (c.events[i].kind === "message") return c.events[i].text;
    return "";
  }
  // Waiting: the visitor spoke last and nobody answered yet.
  function waitingSince(c) {
    for (var i = c.events.length - 1; i >= 0; i--) {
      var ev = c.events[i];
      if (ev.kind === "message") return ev.author === "visitor" ? ev.at : null;
    }
    return null;
  }
  function renderChats() {
    var ul = $("chats");
    ul.textContent = "";
    order.forEach(function (id) {
      var c = chats[id];
      var li = el("li", "chat-item" + (c.ended ? " ended" : ""));
      li.dataset.conversation = id;
      li.setAttribute("aria-current", String(id === current));
      // Options of a listbox, reachable and openable from the keyboard: Tab, arrows, Enter.
      li.tabIndex = 0;
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", String(id === current));
      li.appendChild(el("span", "who", visitorName(c)));
      var u = el("span", "unread", c.unread);
      u.hidden = !c.unread;
      li.appendChild(u);
      li.appendChild(el("span", "last", c.ended ? T("ended (") + c.ended + ")" : lastText(c)));
      var since = !c.ended && waitingSince(c);
      var w = el("span", "wait", since ? T("waiting ") + dur((Date.now() - since) / 1000) : "");
      w.dataset.since = since || "";
      li.appendChild(w);
      li.addEventListener("click", function () { select(id); });
      li.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); select(id); }
        else if (e.key === "ArrowDown" && li.nextElementSibling) { e.preventDefault(); li.nextElementSibling.focus(); }
        else if (e.key === "ArrowUp" && li.previousElementSibling) { e.preventDefault(); li.previousElementSibling.focus(); }
      });
      ul.appendChild(li);
    });
    $("no-chats").hidden = order.length > 0;
    var unread = order.reduce(function (n, id) { return n + chats[id].unread; }, 0);
    document.title = (unread ? "(" + unread + ") " : "") + T("Switchboard console");
  }
  function renderQueues() {
    var ul = $("queues");
    ul.textContent = "";
    Object.keys(queues).sort().forEach(function (d) {
      var q = queues[d], li = el("li", "queue-item");
      li.dataset.department = d;
      li.appendChild(el("span", null, deptName(d)));
      var w = el("span", "muted", q.size + (q.size ? " · oldest " + dur(q.oldest + (Date.now() - q.at) / 1000) : ""));
      li.appendChild(w);
      ul.appendChild(li);
    });
  }
  function deptName(id) {
    var d = site.departments.filter(function (x) { return x.id === id; })[0];
    return d ? d.name : id;
  }
  // Waiting times and queue ages tick without a server round trip.
  setInterval(function () {
    document.querySelectorAll(".chat-item .wait").forEach(function (/** @type {HTMLElement} */ w) {
      if (w.dataset.since) w.textContent = T("waiting ") + dur((Date.now() - Number(w.dataset.since)) / 1000);
    });
    if (Object.keys(queues).length) renderQueues();
    if (!$("visitors-view").hidden) renderVisitors();
  }, 1000);

  function select(id) {
    current = id;
    showTab("chats");
    var c = chats[id];
    c.unread = 0;
    $("transfer").hidden = true;
    renderChats();
    renderChat();
    $("text").focus();
  }
  function renderChat() {
    var c = current && chats[current];
    $("chat-view").hidden = !c; $("empty").hidden = !!c;
    if (!c) { $("profile").hidden = true; return; }
    $("chat-title").textContent = visitorName(c);
    $("chat-dept").textContent = deptName(c.department);
    var t = $("transcript");
    t.textContent = "";
    if (c.more) {
      var more = el("button", "earlier", c.loading ? T("Loading…") : T("Load earlier messages"));
      more.id = "earlier";
      more.addEventListener("click", function () { loadEarlier(c); this.textContent = T("Loading…"); });
      t.appendChild(more);
    }
    c.events.forEach(function (ev) { appendEvent(t, ev); });
    markSeen();
    readNow();
    if (c.ended) t.appendChild(el("div", "ev sys", T("This chat is no longer yours (") + c.ended + ")."));
    var open = !c.ended;
    $("compose").hidden = !open;
    $("transfer-btn").disabled = !open; $("close-btn").disabled = !open;
    scrollDown();
    renderTyping();
    renderProfile();
  }
  function scrollDown() { var t = $("transcript"); t.scrollTop = t.scrollHeight; }
  function renderTyping() {
    var t = current && remoteTyping[current];
    $("typing").textContent = !t ? "" : typeof t === "string" ? T("Visitor is typing: ") + t : T("Visitor is typing…");
  }

  function appendEvent(box, ev) {
    var d;
    switch (ev.kind) {
      case "message":
        d = el("div", "ev " + (ev.author === "visitor" ? "visitor" : ev.author === "agent" ? "agent" : "system"));
        d.appendChild(el("div", "meta", (ev.author === "visitor" ? (ev.author_name || T("Visitor")) : (ev.author_name || T("System"))) + " · " + hhmm(ev.at)));
        if (ev.attachment) d.appendChild(el("div", "text")).appendChild(fileEl(ev.attachment));
        else d.appendChild(el("div", "text", ev.text));
        break;
      case "note":
        d = el("div", "ev note");
        d.appendChild(el("div", "meta", T("Private note · ") + ev.agent.name + " · " + hhmm(ev.at)));
        d.appendChild(el("div", "text", ev.text));
        break;
      case "transferred":
        d = el("div", "ev internal", T("Transferred by ") + ev.from.name + T(" to ") + (ev.to_agent ? ev.to_agent.name : deptName(ev.to_department)) +
          ": " + ev.reason + (ev.note ? " — " + ev.note : "") + " · " + hhmm(ev.at));
        break;
      case "requeued":
        d = el("div", "ev internal", T("Back to the queue: ") + ev.agent.name + " " + ev.reason + " · " + hhmm(ev.at));
        break;
      case "assigned": d = el("div", "ev sys", T("Assigned to ") + ev.agent.name + " · " + hhmm(ev.at)); break;
      case "notice": d = el("div", "ev sys", ev.text); break;
      case "closed": d = el("div", "ev sys", T("Closed by ") + ev.by + " (" + ev.reason + ") · " + hhmm(ev.at)); break;
      default: return null;
    }
    d.dataset.seq = ev.seq;
    d.dataset.kind = ev.kind;
    box.appendChild(d);
    return d;
  }

  function renderProfile() {
    var c = current && chats[current];
    $("profile").hidden = !c;
    if (!c) return;
    var v = c.visitor || {}, dl = $("profile-fields");
    dl.textContent = "";
    function row(k, val) { if (val == null || val === "") return; dl.appendChild(el("dt", null, T(k))); dl.appendChild(el("dd", null, val)); }
    row("Name", v.name); row("Email", v.email);
    row("Visitor", v.visits > 1 ? T("returning (") + v.visits + T(" visits)") : T("new"));
    row("Locale", v.locale); row("Page", v.page_title || v.page_url); row("Referrer", v.referrer);
    Object.keys(v.utm || {}).forEach(function (k) { row(k, v.utm[k]); });
    Object.keys(v.fields || {}).forEach(function (k) { row(k, v.fields[k]); });
    if (v.verified) row("Identity", T("verified (") + v.user_id + ")");
    var ol = $("profile-pages");
    ol.textContent = "";
    (v.pages || []).filter(function (p) { return p.at >= (v.visit_started || 0); }).forEach(function (p) {
      ol.appendChild(el("li", null, (p.title ? p.title + " — " : "") + p.url + " · " + hhmm(p.at)));
    });
    var h = $("history");
    h.textContent = "";
    if (!c.history) { h.appendChild(el("p", "muted", T("Loading…"))); return; }
    if (!c.history.length) { var none = el("p", "muted", T("No earlier chats.")); none.style.margin = "0 12px"; h.appendChild(none); return; }
    c.history.forEach(function (t) {
      var det = el("details", "ticket");
      det.appendChild(el("summary", null, new Date(t.closed_at).toLocaleString() + " · " + t.status +
        (t.agents.length ? " · " + t.agents.map(function (a) { return a.name; }).join(", ") : "")));
      if (t.transcript_more) det.appendChild(el("div", "ev sys", "… earlier messages are in the ticket"));
      t.transcript.forEach(function (ev) { appendEvent(det, ev); });
      h.appendChild(det);
    });
  }

  // ---- composing: canned responses, notes, typing --------------------------------------------
  var text = $("text"), cannedBox = $("canned"), choice = 0;
  function fill(template, c) {
    var v = (c && c.visitor) || {};
    var vars = {
      visitor_name: v.name || "", visitor_email: v.email || "",
      agent_name: me.name, agent_first_name: me.name.split(/\s+/)[0], site_name: site.name || ""
    };
    return template.replace(/\{(\w+)\}/g, function (all, k) { return k in vars ? vars[k] : all; })
      .replace(/ +([!?.,])/g, "$1").replace(/ {2,}/g, " ").trim();
  }
  function cannedMatches() {
    var m = /^\/([\w.-]*)$/.exec(text.value);
    if (!m) return [];
    return site.canned.filter(function (x) { return x.shortcut.indexOf(m[1]) === 0; });
  }
  function renderCanned() {
    var list = cannedMatches();
    cannedBox.textContent = "";
    cannedBox.hidden = !list.length;
    choice = Math.min(choice, Math.max(0, list.length - 1));
    list.forEach(function (x, i) {
      var li = el("li");
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", String(i === choice));
      li.appendChild(el("b", null, "/" + x.shortcut));
      li.appendChild(el("span", "muted", fill(x.text, chats[current])));
      li.addEventListener("mousedown", function (e) { e.preventDefault(); expand(x); });
      cannedBox.appendChild(li);
    });
  }
  function expand(x) {
    text.value = fill(x.text, chats[current]);
    cannedBox.hidden = true;
    text.focus();
  }
  text.addEventListener("input", function () {
    choice = 0;
    renderCanned();
    var c = current && chats[current];
    if (!c || c.ended || $("note-mode").checked) return;
    if (!typingSent) { typingSent = true; send({ type: "typing", conversation: current, on: true }); }
    clearTimeout(typingTimer);
    typingTimer = setTimeout(stopTyping, 2500);
  });
  function stopTyping() {
    clearTimeout(typingTimer);
    if (typingSent && current) send({ type: "typing", conversation: current, on: false });
    typingSent = false;
  }
  text.addEventListener("keydown", function (e) {
    var list = cannedBox.hidden ? [] : cannedMatches();
    if (list.length && (e.key === "ArrowDown" || e.key === "ArrowUp")) {
      e.preventDefault();
      choice = (choice + (e.key === "ArrowDown" ? 1 : list.length - 1)) % list.length;
      renderCanned();
    } else if (list.length && (e.key === "Tab" || e.key === "Enter")) {
      e.preventDefault();
      expand(list[choice]);
    } else if (e.key === "Escape") {
      cannedBox.hidden = true;
    } else if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      $("compose").requestSubmit();
    }
  });
  $("note-mode").addEventListener("change", function () {
    $("compose").classList.toggle("note-mode", this.checked);
    $("send").textContent = this.checked ? T("Add note") : T("Send");
    // A file always reaches the visitor: not offered while writing a private note.
    $("attach").hidden = this.checked;
    text.placeholder = this.checked ? T("Private note: only agents see it") : T("Reply… (/ for canned responses)");
  });
  $("compose").addEventListener("submit", function (e) {
    e.preventDefault();
    var body = text.value.trim();
    if (!body || !current) return;
    // A bare "/shortcut" that names a canned response is sent expanded.
    var exact = /^\/([\w.-]+)$/.exec(body);
    var canned = exact && site.canned.filter(function (x) { return x.shortcut === exact[1]; })[0];
    if (canned) body = fill(canned.text, chats[current]);
    var note = $("note-mode").checked, cid = rid();
    if (!send({ type: note ? "note" : "message", conversation: current, client_id: cid, text: body })) return;
    // The stored event comes back over the socket and shows in the transcript.
    pending[cid] = body;
    text.value = ""; cannedBox.hidden = true;
    if (!note) stopTyping();
  });

  // ---- transfer and close -------------------------------------------------------------------
  // Transfer targets: colleagues with their status and load (asked for when the dialog opens),
  // then the departments' queues. Who cannot take the chat now is listed, disabled, with why.
  function transferTargets(colleagues) {
    var sel = $("transfer-to"), c = chats[current], keep = sel.value;
    sel.textContent = "";
    var agents = colleagues || site.agents;
    agents.filter(function (a) { return a.id !== me.id; }).forEach(function (a) {
      var label = a.name, off = false;
      if (colleagues) {
        off = !a.present || a.status === "offline";
        var full = !off && a.load >= a.max_concurrent;
        label += " — " + T(off ? "offline" : a.status) + ", " + a.load + "/" + a.max_concurrent + (full ? T(" (full)") : "");
        off = off || full;
      }
      var o = el("option", null, label); o.value = "agent:" + a.id; o.disabled = off; sel.appendChild(o);
    });
    site.departments.forEach(function (d) {
      var o = el("option", null, d.name + T(" (queue)")); o.value = "department:" + d.id; sel.appendChild(o);
    });
    sel.value = keep && sel.querySelector("option[value='" + keep + "']:not([disabled])") ? keep : (c ? "department:" + c.department : "");
  }
  $("transfer-btn").addEventListener("click", function () {
    $("transfer-to").value = "";
    transferTargets(null);
    send({ type: "colleagues" });
    $("transfer").hidden = false;
    $("transfer-reason").focus();
  });
  $("transfer-cancel").addEventListener("click", function () { $("transfer").hidden = true; });
  $("transfer").addEventListener("submit", function (e) {
    e.preventDefault();
    var to = $("transfer-to").value.split(":"), msg = { type: "transfer", conversation: current, reason: $("transfer-reason").value.trim() };
    if (to[0] === "agent") msg.to_agent = to[1]; else msg.to_department = to[1];
    var note = $("transfer-note").value.trim();
    if (note) msg.note = note;
    if (send(msg)) { $("transfer").hidden = true; $("transfer-reason").value = ""; $("transfer-note").value = ""; }
  });
  $("close-btn").addEventListener("click", function () {
    if (current) send({ type: "close", conversation: current, reason: "resolved" });
  });

  // ---- keyboard shortcuts ----------------------------------------------------------------------
  // Alt+↓/Alt+↑ next or previous chat, Alt+R the composer, Alt+T transfer, Alt+W close the chat,
  // ? (outside a text field) lists them. Alt keeps them clear of typing.
  function step(by) {
    if (!order.length) return;
    var i = order.indexOf(current);
    var next = order[(i < 0 ? 0 : (i + by + order.length) % order.length)];
    select(next);
  }
  document.addEventListener("keydown", function (e) {
    if ($("app").hidden) return;
    var target = /** @type {HTMLElement | null} */ (e.target);
    var typing = /^(INPUT|TEXTAREA|SELECT)$/.test((target && target.tagName) || "");
    if (e.altKey && !e.ctrlKey && !e.metaKey) {
      var k = e.key.toLowerCase();
      if (e.key === "ArrowDown") step(1);
      else if (e.key === "ArrowUp") step(-1);
      else if (k === "r" || e.code === "KeyR") { if (!$("compose").hidden) $("text").focus(); }
      else if (k === "t" || e.code === "KeyT") { if (!$("transfer-btn").disabled && current) $("transfer-btn").click(); }
      else if (k === "w" || e.code === "KeyW") { if (!$("close-btn").disabled && current) $("close-btn").click(); }
      else return;
      e.preventDefault();
    } else if (e.key === "?" && !typing) {
      e.preventDefault();
      var help = $("shortcuts");
      if (help.open) help.close(); else help.showModal();
    }
  });

  // ---- notifications: desktop and sound ------------------------------------------------------
  var audio = null;
  function beep() {
    try {
      var w = /** @type {any} */ (window);
      audio = audio || new (w.AudioContext || w.webkitAudioContext)();
      var o = audio.createOscillator(), g = audio.createGain();
      o.frequency.value = 880; g.gain.value = 0.08;
      o.connect(g); g.connect(audio.destination);
      o.start(); o.stop(audio.currentTime + 0.15);
    } catch (e) { /* no audio device */ }
  }
  var inboxNew = 0;  // offline messages announced since Conversations was last opened
  function renderInboxBadge() {
    $("go-inbox").textContent = T("Conversations") + (inboxNew ? " (" + inboxNew + T(" new)") : "");
  }
  // A sound and a desktop notification; a click opens the chat (`id`), or the inbox.
  function alertAgent(title, body, id) {
    if (id && id === current && !document.hidden) return;
    notified++;
    document.body.dataset.notified = String(notified);
    beep();
    if (window.Notification && Notification.permission === "granted") {
      try {
        var n = new Notification(title, { body: String(body).slice(0, 140), tag: id || "offline" });
        n.onclick = function () {
          window.focus(); n.close();
          if (id) select(id); else if (!$("go-inbox").hidden) { show("inbox"); inbox(); }
        };
      } catch (e) { /* some browsers allow notifications from service workers only */ }
    }
  }

  // ---- live visitors ------------------------------------------------------------------------
  function showTab(which) {
    var visitorsTab = which === "visitors";
    $("tab-chats").setAttribute("aria-selected", String(!visitorsTab));
    $("tab-visitors").setAttribute("aria-selected", String(visitorsTab));
    $("visitors-view").hidden = !visitorsTab;
    $("app").classList.toggle("visitors-mode", visitorsTab);
    $("right").hidden = visitorsTab;
    if (visitorsTab) { $("chat-view").hidden = true; $("empty").hidden = true; renderVisitors(); } else renderChat();
  }
  $("tab-chats").addEventListener("click", function () { showTab("chats"); });
  $("tab-visitors").addEventListener("click", function () { showTab("visitors"); });

  function renderVisitors() {
    var ids = Object.keys(visitors);
    $("visitor-count").textContent = ids.length ? "(" + ids.length + ")" : "";
    if ($("visitors-view").hidden) return;
    var body = $("visitors"), focused = /** @type {HTMLInputElement | null} */ (document.activeElement);
    // Do not redraw under a half-typed proactive message.
    if (focused && focused.tagName === "INPUT" && focused.value && focused.closest(".start-form")) return;
    body.textContent = "";
    ids.sort(function (a, b) { return visitors[b].time_on_site_secs - visitors[a].time_on_site_secs; }).forEach(function (id) {
      var v = visitors[id], tr = el("tr");
      tr.dataset.visitor = id;
      var who = el("td");
      who.appendChild(el("div", null, v.name || v.email || shortId(id)));
      who.appendChild(el("div", "muted", (v.returning ? "returning · " + v.visits + " visits" : "new") + (v.locale ? " · " + v.locale : "")));
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
          send({ type: "start_chat", visitor: id, client_id: rid(), text: t });
          inp.value = ""; inp.blur();
        });
        act.appendChild(f);
      }
      tr.appendChild(act);
      body.appendChild(tr);
    });
    $("no-visitors").hidden = ids.length > 0;
  }

  // ---- files in chats (REST: the same credentials as every other call) ----------------------
  function authHeaders(extra) {
    var h = extra || {};
    if (account) h["X-CSRF-Token"] = account.csrf; else h.Authorization = "Bearer " + token;
    return h;
  }
  function fileBlob(f) {
    return fetch("/v1/attachments/" + encodeURIComponent(f.id), { headers: authHeaders() }).then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.blob();
    });
  }
  // An image shows in the transcript (a click opens it full size); a PDF is a download button.
  function fileEl(f) {
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
    var f = input.files && input.files[0], conv = current;
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
  function api(path, opts) {
    opts = opts || {};
    var headers = { "Content-Type": "application/json" };
    if (account) headers["X-CSRF-Token"] = account.csrf; else headers.Authorization = "Bearer " + token;
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

  // ---- supervisor view (REST) -------------------------------------------------------------------
  function supervisor() {
    Promise.all([api("/v1/agents"), api("/v1/queues"), api("/v1/stats"), api("/v1/visitors")]).then(function (r) {
      // Who is in each chat, by name: the live visitors know their conversation.
      svNames = {};
      r[3].visitors.forEach(function (v) { if (v.in_chat) svNames[v.in_chat] = v.name || v.email || ""; });
      $("auth").hidden = true; $("bar").hidden = false;
      if (!account) {
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
  function secs(v) { return v == null ? "–" : dur(v); }
  var svNames = {}, svWatching = null, svTimer = null;
  /** Watches a live chat read-only, refreshed every two seconds while the panel is open. */
  function watchChat(id) {
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

  // ---- conversations: past chats and offline messages (REST /v1/tickets) --------------------------
  var ibCursor = null, ibCurrent = null, ibSeq = 0;
  function dayStart(value, plusDays) {
    if (!value) return null;
    var d = new Date(value + "T00:00:00");
    d.setDate(d.getDate() + (plusDays || 0));
    return d.getTime();
  }
  function inboxQuery() {
    var q = [], add = function (k, v) { if (v) q.push(k + "=" + encodeURIComponent(v)); };
    add("q", $("ib-q").value.trim()); add("status", $("ib-status").value); add("follow_up", $("ib-follow").value);
    add("department", $("ib-dept").value); add("agent", $("ib-agent").value.trim()); add("tag", $("ib-tag").value.trim().toLowerCase());
    add("rating", $("ib-rating").value);
    add("since", dayStart($("ib-since").value)); add("until", dayStart($("ib-until").value, 1));
    add("limit", 50);
    return q;
  }
  function inbox(more) {
    var sel = $("ib-dept");
    if (sel.options.length === 1) {
      var fill = function (depts) {
        if (sel.options.length > 1) return;
        depts.forEach(function (d) { var o = el("option", null, d.name || d.id); o.value = d.id; sel.appendChild(o); });
      };
      if (site.departments.length) fill(site.departments);
      // The admin token has no site of its own: every site's departments, once each.
      else api("/v1/sites").then(function (r) {
        var seen = {};
        fill([].concat.apply([], r.sites.map(function (x) { return x.departments; }))
          .filter(function (d) { return !seen[d.id] && (seen[d.id] = true); }));
      }, function () {});
    }
    var q = inboxQuery();
    if (more && ibCursor) q.push("cursor=" + encodeURIComponent(ibCursor));
    // Only the latest request fills the list: an earlier, slower answer must not overwrite a search.
    var seq = ++ibSeq;
    api("/v1/tickets?" + q.join("&")).then(function (r) {
      if (seq !== ibSeq) return;
      $("auth").hidden = true; $("bar").hidden = false;
      var tb = $("ib-rows");
      if (!more) tb.textContent = "";
      r.tickets.forEach(function (t) { tb.appendChild(inboxRow(t)); });
      ibCursor = r.next_cursor;
      $("ib-more").hidden = !ibCursor;
      $("ib-none").hidden = tb.children.length > 0;
    }, function (e) { toast("Could not load conversations: " + e.message); });
  }
  function inboxRow(t) {
    var tr = el("tr");
    tr.dataset.ticket = t.id;
    tr.tabIndex = 0;
    var who = (t.visitor && (t.visitor.name || t.visitor.email)) || T("Visitor");
    [new Date(t.closed_at || t.created_at).toLocaleString(), who, deptName(t.department),
     (t.agents || []).map(function (a) { return a.name; }).join(", ") || "–",
     T(t.status), T(t.follow_up || "–"), (t.tags || []).join(", ") || "–",
     t.rating ? t.rating.score + "★" : "–"].forEach(function (v) { tr.appendChild(el("td", null, v)); });
    var open = function () { openTicket(t.id); };
    tr.addEventListener("click", open);
    tr.addEventListener("keydown", function (e) { if (e.key === "Enter") open(); });
    return tr;
  }
  function openTicket(id) {
    api("/v1/tickets/" + encodeURIComponent(id)).then(function (t) {
      ibCurrent = t;
      document.querySelectorAll("#ib-rows tr").forEach(function (/** @type {HTMLElement} */ r) { r.setAttribute("aria-current", String(r.dataset.ticket === id)); });
      $("ib-ticket").hidden = false;
      var who = (t.visitor && (t.visitor.name || t.visitor.email)) || T("Visitor");
      $("ib-title").textContent = who + " · " + deptName(t.department);
      $("ib-meta").textContent = new Date(t.closed_at || t.created_at).toLocaleString() + " · " + t.status +
        (t.visitor && t.visitor.email ? " · " + t.visitor.email : "") + (t.rating ? " · rated " + t.rating.score + "/5" + (t.rating.comment ? " “" + t.rating.comment + "”" : "") : "");
      var off = $("ib-offline");
      off.hidden = !t.offline_message;
      off.textContent = t.offline_message ? T("Offline message from ") + t.offline_message.email + ":\n" + t.offline_message.text : "";
      $("ib-set-follow").value = t.follow_up || "open";
      $("ib-set-tags").value = (t.tags || []).join(", ");
      var box = $("ib-transcript");
      box.textContent = "";
      (t.transcript || []).forEach(function (ev) { appendEvent(box, ev); });
      // Answers sent by email, from the ticket's history.
      var replies = $("ib-replies");
      replies.textContent = "";
      (t.history || []).filter(function (h) { return h.kind === "email_reply"; }).forEach(function (h) {
        var d = el("div", "ev email");
        d.appendChild(el("div", "meta", T("Email to ") + h.reason + " · " + (h.agent ? h.agent.name : T("admin")) + " · " + hhmm(h.at)));
        d.appendChild(el("div", "text", h.note));
        replies.appendChild(d);
      });
      var to = (t.offline_message && t.offline_message.email) || (t.visitor && t.visitor.email);
      $("ib-reply").hidden = !to;
      $("ib-reply-label").textContent = to ? T("Answer ") + to + T(" by email") : "";
    }, function (e) { toast("Could not open it: " + e.message); });
  }
  $("ib-filters").addEventListener("submit", function (e) { e.preventDefault(); $("ib-ticket").hidden = true; inbox(false); });
  $("ib-more").addEventListener("click", function () { inbox(true); });
  $("ib-reply").addEventListener("submit", function (e) {
    e.preventDefault();
    if (!ibCurrent) return;
    var id = ibCurrent.id;
    api("/v1/tickets/" + encodeURIComponent(id) + "/reply", { method: "POST", body: { text: $("ib-reply-text").value } })
      .then(function () { $("ib-reply-text").value = ""; toast(T("Email sent.")); openTicket(id); },
        function (err) { toast("Not sent: " + err.message); });
  });
  $("ib-edit").addEventListener("submit", function (e) {
    e.preventDefault();
    if (!ibCurrent) return;
    var id = encodeURIComponent(ibCurrent.id);
    var tags = $("ib-set-tags").value.split(",").map(function (x) { return x.trim(); }).filter(Boolean);
    api("/v1/tickets/" + id + "/follow-up", { method: "PUT", body: { status: $("ib-set-follow").value } })
      .then(function () { return api("/v1/tickets/" + id + "/tags", { method: "PUT", body: { tags: tags } }); })
      .then(function (t) {
        var row = document.querySelector("#ib-rows tr[data-ticket='" + ibCurrent.id + "']");
        if (row) row.replaceWith(inboxRow(t));
        toast(T("Saved."));
        openTicket(t.id);
      }, function (err) { toast("Could not save: " + err.message); });
  });
  function renderSupervisor(agents, qs, stats) {
    var figs = $("figures");
    figs.textContent = "";
    [[T("Chats today"), stats.chats], [T("Median queue wait"), secs(stats.queue_wait_secs.median)],
     [T("90% queue wait"), secs(stats.queue_wait_secs.p90)], [T("Median first response"), secs(stats.first_response_secs.median)],
     [T("90% first response"), secs(stats.first_response_secs.p90)],
     [T("Average rating"), stats.rating.average == null ? "–" : stats.rating.average.toFixed(2) + " (" + stats.rating.count + ")"]
    ].forEach(function (f) {
      var d = el("div", "figure");
      d.appendChild(el("div", "muted", f[0]));
      d.appendChild(el("div", "v", f[1]));
      figs.appendChild(d);
    });
    var tb = $("sv-agents");
    tb.textContent = "";
    agents.forEach(function (a) {
      var tr = el("tr");
      tr.dataset.agent = a.id;
      tr.appendChild(el("td", null, a.name));
      tr.appendChild(el("td", null, T(a.status) + (a.connected ? "" : a.present ? T(" (reconnecting)") : T(" (not connected)"))));
      tr.appendChild(el("td", null, a.load + " / " + a.max_concurrent));
      var td = el("td", null, (a.chats || []).length ? "" : "–");
      (a.chats || []).forEach(function (id) {
        var chip = el("div", "sv-chat", (svNames[id] || T("Visitor ") + id.slice(-6)) + " ");
        chip.dataset.conversation = id;
        chip.appendChild(button(T("Watch"), function () { watchChat(id); }));
        // A signed-in supervisor takes a chat over: it moves to them with its whole history.
        if (account && a.id !== account.agent) {
          chip.appendChild(button(T("Take over"), function () {
            api("/v1/conversations/" + encodeURIComponent(id) + "/take-over", { method: "POST", body: { reason: "taken over by " + (me ? me.name : "a supervisor") } })
              .then(function () { show("app"); toast(T("The chat is yours now.")); }, function (err) { toast("Could not take it over: " + err.message); });
          }));
        }
        td.appendChild(chip);
      });
      tr.appendChild(td);
      tb.appendChild(tr);
    });
    var tq = $("sv-queues");
    tq.textContent = "";
    qs.forEach(function (q) {
      var tr = el("tr");
      tr.dataset.department = q.department;
      tr.appendChild(el("td", null, q.department));
      tr.appendChild(el("td", null, q.size));
      tr.appendChild(el("td", null, q.size ? dur(q.oldest_wait_secs) : "–"));
      tq.appendChild(tr);
    });
  }

  // ---- admin pages (the directory over REST) ------------------------------------------------
  var adminSite = null;   // the site being administered: its id and directory
  $("admin-tabs").addEventListener("click", function (e) {
    var pane = e.target.dataset && e.target.dataset.pane;
    if (!pane) return;
    document.querySelectorAll("#admin-tabs button").forEach(function (b) { b.setAttribute("aria-selected", String(b === e.target)); });
    document.querySelectorAll("#admin section.pane").forEach(function (/** @type {HTMLElement} */ s) { s.hidden = s.dataset.pane !== pane; });
  });
  function adminFailed(err) {
    $("admin-error").textContent = (err.field ? err.field + ": " : "") + err.message;
    if (err.message === "unauthorized") signInFailed(T("Your session ended; sign in again."));
  }
  /** Reloads the site's directory and redraws every pane. */
  function adminView() {
    $("auth").hidden = true; $("bar").hidden = false;
    api("/v1/sites").then(function (r) {
      var own = account ? r.sites.filter(function (s) { return s.id === account.site; })[0] : r.sites[0];
      adminSite = own;
      renderAdmin();
    }).catch(adminFailed);
  }
  /** Saves through `call`, then reloads the directory; shows the field of a refusal. */
  function save(call) {
    $("admin-error").textContent = "";
    return call.then(function (r) { adminView(); toast(T("Saved")); return r; }).catch(function (err) { adminFailed(err); throw err; });
  }
  function sitePath(rest) { return "/v1/sites/" + encodeURIComponent(adminSite.id) + (rest || ""); }
  function list(text) { return text.split(",").map(function (x) { return x.trim(); }).filter(Boolean); }
  function button(text, onClick) { var b = el("button", null, text); b.type = "button"; b.addEventListener("click", onClick); return b; }
  function rowOf(tbody, cells, actions) {
    var tr = el("tr");
    cells.forEach(function (c) { tr.appendChild(el("td", null, c)); });
    var td = el("td");
    (actions || []).forEach(function (a) { td.appendChild(a); td.appendChild(document.createTextNode(" ")); });
    tr.appendChild(td);
    tbody.appendChild(tr);
    return tr;
  }
  function remove(kind, id) {
    if (!confirm("Delete " + id + "?")) return;
    save(api(sitePath("/" + kind + "/" + encodeURIComponent(id)), { method: "DELETE" })).catch(function () {});
  }
  var DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
  function renderAdmin() {
    var s = adminSite;
    var tb = $("ad-agents"); tb.textContent = "";
    s.agents.forEach(function (a) {
      var tr = rowOf(tb, [a.name + " (" + a.id + ")", a.email || "–", a.role, a.departments.join(", "), a.max_concurrent, a.disabled ? "disabled" : "active"], [
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
        .map(function (k) { return k.slice(0, 3) + " " + d.hours[k].join(","); }).join("; ") : "always open";
      rowOf(td, [d.id, d.name || "", hours], [button(T("Edit"), function () { editDept(d); }), button(T("Delete"), function () { remove("departments", d.id); })])
        .dataset.department = d.id;
    });
    var tc = $("ad-canned"); tc.textContent = "";
    s.canned.forEach(function (c) {
      rowOf(tc, ["/" + c.shortcut, c.text], [button(T("Edit"), function () { $("cn-shortcut").value = c.shortcut; $("cn-text").value = c.text; }),
        button(T("Delete"), function () { remove("canned", c.shortcut); })]);
    });
    var tt = $("ad-triggers"); tt.textContent = "";
    s.triggers.forEach(function (t) {
      rowOf(tt, [t.id, t.url || "any page", t.time_on_page_secs + " s", t.message], [
        button(T("Edit"), function () { $("tr-id").value = t.id; $("tr-url").value = t.url || ""; $("tr-secs").value = t.time_on_page_secs;
          $("tr-message").value = t.message; $("tr-dept").value = t.department || ""; }),
        button(T("Delete"), function () { remove("triggers", t.id); })]);
    });
    $("st-name").value = s.name || "";
    $("st-origins").value = s.allowed_origins.join("\n");
    $("st-color").value = s.widget.color;
    $("st-title").value = s.widget.title || "";
    $("st-greeting").value = s.widget.greeting || "";
    $("st-preview").checked = !!s.widget.typing_preview;
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
  function showInvite(r) {
    if (!r || !r.invite) return;
    $("invite-box").hidden = false;
    $("invite-link").value = location.origin + r.invite.url;
  }
  function editAgent(a) {
    $("agent-form-title").textContent = T("Edit ") + a.name;
    $("ag-id").value = a.id; $("ag-id").readOnly = true;
    $("ag-name").value = a.name; $("ag-email").value = a.email || ""; $("ag-role").value = a.role;
    $("ag-depts").value = a.departments.join(", "); $("ag-max").value = a.max_concurrent; $("ag-disabled").checked = !!a.disabled;
    $("ag-save").textContent = T("Save agent");
  }
  $("ag-new").addEventListener("click", function () {
    $("agent-form").reset(); $("ag-id").readOnly = false;
    $("agent-form-title").textContent = T("Invite an agent"); $("ag-save").textContent = T("Invite");
  });
  $("agent-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var body = { id: $("ag-id").value.trim(), name: $("ag-name").value.trim(), role: $("ag-role").value,
      departments: list($("ag-depts").value), max_concurrent: Number($("ag-max").value), disabled: $("ag-disabled").checked };
    if ($("ag-email").value.trim()) body.email = $("ag-email").value.trim();
    var editing = $("ag-id").readOnly;
    var call = editing ? api(sitePath("/agents/" + encodeURIComponent(body.id)), { method: "PUT", body: body })
      : api(sitePath("/agents"), { method: "POST", body: body });
    save(call).then(function (r) { showInvite(r); if (!editing) $("ag-new").click(); }, function () {});
  });
  function editDept(d) {
    $("dp-id").value = d.id; $("dp-name").value = d.name || "";
    $("dp-tz").value = d.hours ? d.hours.timezone : "";
    DAYS.forEach(function (k) { $("dp-" + k).value = d.hours ? (d.hours[k] || []).join(", ") : ""; });
    $("dp-holidays").value = d.hours ? (d.hours.holidays || []).join(", ") : "";
  }
  $("dept-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var id = $("dp-id").value.trim();
    var old = adminSite.departments.filter(function (d) { return d.id === id; })[0];
    var body = Object.assign({}, old || {}, { id: id });
    if ($("dp-name").value.trim()) body.name = $("dp-name").value.trim(); else delete body.name;
    if ($("dp-tz").value.trim()) {
      body.hours = { timezone: $("dp-tz").value.trim(), holidays: list($("dp-holidays").value) };
      DAYS.forEach(function (k) { body.hours[k] = list($("dp-" + k).value); });
    } else {
      delete body.hours;
    }
    save(old ? api(sitePath("/departments/" + encodeURIComponent(id)), { method: "PUT", body: body })
      : api(sitePath("/departments"), { method: "POST", body: body })).catch(function () {});
  });
  /** Creates or replaces an entry by its id. */
  function upsert(kind, id, body) {
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
  function preview() {
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
      "smtp_url", "email_from", "sso_issuer", "sso_audience"]
      .forEach(function (k) { if (s[k] !== undefined && s[k] !== null) body[k] = s[k]; });
    body.allowed_origins = $("st-origins").value.split("\n").map(function (x) { return x.trim(); }).filter(Boolean);
    body.widget = Object.assign({}, s.widget, { color: $("st-color").value });
    if ($("st-title").value.trim()) body.widget.title = $("st-title").value.trim(); else delete body.widget.title;
    if ($("st-greeting").value.trim()) body.widget.greeting = $("st-greeting").value.trim(); else delete body.widget.greeting;
    body.widget.typing_preview = $("st-preview").checked;
    if ($("st-name").value.trim()) body.name = $("st-name").value.trim(); else delete body.name;
    save(api(sitePath(), { method: "PUT", body: body })).catch(function () {});
  });

  // ---- start --------------------------------------------------------------------------------
  if (location.hash.indexOf("#invite=") === 0) {
    $("login").hidden = true; $("token-signin").hidden = true; $("invite-form").hidden = false;
  } else if (token) {
    if (sessionStorage.getItem(MODE_KEY) === "supervisor") supervisor(); else connect();
  } else {
    // A session cookie from an earlier sign-in (HttpOnly: only the server can tell).
    fetch("/v1/auth/session").then(function (r) { return r.ok ? r.json() : null; })
      .then(function (who) { if (who && who.agent) signedInAs(who, false); })
      .catch(function () {});
  }
})();
