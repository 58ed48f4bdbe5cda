// @ts-check
/** @file What every view may ask of the page's shell: show a view, send on the agent socket,
 * and go back to the sign-in screen when the credentials are refused. */

import { $, toast } from "./dom.js";
import { S, TOKEN_KEY } from "./state.js";
import { T } from "./strings.js";

/** Shows one of the main views. */
export function show(view) {
  ["app", "supervisor", "admin", "inbox"].forEach(function (v) { $(v).hidden = v !== view; });
  $("go-chats").hidden = view === "app" || !S.signedIn;
}

/** On narrow screens the chat list, the chat and the visitor's details are stacked views:
 * which one shows ("list", "chat" or "details"). Wide screens show all three. */
export function pane(which) {
  $("app").dataset.pane = which;
}

export function signInFailed(text) {
  sessionStorage.removeItem(TOKEN_KEY);
  S.token = null; S.signedIn = false; S.account = null;
  if (S.ws) { S.ws.onclose = null; S.ws.close(); S.ws = null; }
  $("auth").hidden = false; $("bar").hidden = true; $("app").hidden = true; $("supervisor").hidden = true; $("admin").hidden = true;
  $("signin-error").textContent = text;
}

export function send(obj) {
  if (S.ws && S.ws.readyState === 1) { S.ws.send(JSON.stringify(obj)); return true; }
  toast(T("Not connected; try again in a moment."));
  return false;
}
