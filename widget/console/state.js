// @ts-check
/** @file What the console knows: the credentials, the socket, the agent, their chats, queues
 * and live visitors. One object, shared by every view (a module's own variables stay in it). */

export var TOKEN_KEY = "switchboard:console-token", MODE_KEY = "switchboard:console-mode";

export var S = {
  /** The agent's API token or the admin token; "" when the session cookie authenticates. */
  token: sessionStorage.getItem(TOKEN_KEY),
  /** Signed in with a password: who it is and the CSRF token every change sends back (the
   * session cookie itself is HttpOnly, never read here). @type {any} */
  account: null,
  /** Service-level warnings heard since the page opened, newest first (at most 50). @type {any[]} */
  sla: [],
  /** @type {WebSocket | null} */
  ws: null,
  attempts: 0,
  /** @type {any} */
  retry: null,
  signedIn: false,
  /** Signing in (not reloading or reconnecting) puts the agent online. */
  goOnline: false,
  /** @type {any} */
  me: null,
  /** @type {any} */
  site: { departments: [], agents: [], canned: [] },
  /** Conversation id -> {id, department, state, visitor, events[], lastSeq, unread, history, ended}.
   * @type {Record<string, any>} */
  chats: {},
  /** Conversation ids, oldest assignment first. @type {string[]} */
  order: [],
  /** The conversation in view. @type {string | null} */
  current: null,
  /** Department -> {size, oldest_wait_secs, at}. @type {Record<string, any>} */
  queues: {},
  /** Visitor id -> live record (+ `seen`, when it arrived here). @type {Record<string, any>} */
  visitors: {},
  /** Client id -> text sent and not yet acknowledged. @type {Record<string, string>} */
  pending: {},
  typingSent: false,
  /** @type {any} */
  typingTimer: null,
  /** @type {Record<string, any>} */
  remoteTyping: {},
  /** Desktop notifications shown (tests read document.body.dataset.notified). */
  notified: 0,
  /** Offline messages announced since Conversations was last opened. */
  inboxNew: 0,
  /** The visitor the agent just started a chat with from the Visitors tab: their chat opens
   * when it arrives. @type {string | null} */
  startedFor: null,
};
