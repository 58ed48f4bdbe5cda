// @ts-check
/** @file Calls between views. Views are peers: none imports another (the shell, state, strings,
 * dom and api are below them all). Each view binds here, when it loads, the functions other
 * views call (`Object.assign(views, { ... })` at its end); `main.js` loads every view before
 * anything runs, so a call never finds a slot unbound. */

/** @typedef {(...args: any[]) => any} Call */

/** @type {Call} */
function notLoaded() {
  throw new Error("a console view was called before it loaded");
}

/** @type {Record<string, Call>} */
export var views = {
  // admin.js
  adminView: notLoaded,
  // chats.js
  answerOffer: notLoaded,
  appendEvent: notLoaded,
  assigned: notLoaded,
  deptName: notLoaded,
  earlier: notLoaded,
  ended: notLoaded,
  markSeen: notLoaded,
  onEvent: notLoaded,
  renderChat: notLoaded,
  renderChats: notLoaded,
  renderMe: notLoaded,
  renderProfile: notLoaded,
  renderQueues: notLoaded,
  renderTyping: notLoaded,
  select: notLoaded,
  // compose.js
  transferTargets: notLoaded,
  // inbox.js
  inbox: notLoaded,
  // notify.js
  alertAgent: notLoaded,
  renderInboxBadge: notLoaded,
  // supervisor.js
  renderSla: notLoaded,
  supervisor: notLoaded,
  // visitors.js
  renderVisitors: notLoaded,
  showTab: notLoaded,
};
