// @ts-check
/*! Switchboard agent console: no dependencies, no build step. Each view is a module beside
 * this one; views never import each other (they call through `views.js`), and every text is
 * rendered with textContent: nothing a visitor or agent writes becomes HTML. */

// Every view binds its calls and registers its handlers when it loads: all of them load before
// the start below runs.
import "./session.js";
import "./chats.js";
import "./compose.js";
import "./notify.js";
import "./visitors.js";
import "./supervisor.js";
import "./inbox.js";
import "./admin.js";
import "./push.js";
import { $ } from "./dom.js";
import { connect, signedInAs } from "./session.js";
import { MODE_KEY, S } from "./state.js";
import { supervisor } from "./supervisor.js";

// ---- start --------------------------------------------------------------------------------
if (location.hash.indexOf("#invite=") === 0) {
  $("login").hidden = true; $("token-signin").hidden = true; $("invite-form").hidden = false;
} else if (S.token) {
  if (sessionStorage.getItem(MODE_KEY) === "supervisor") supervisor(); else connect();
} else {
  // A session cookie from an earlier sign-in (HttpOnly: only the server can tell).
  fetch("/v1/auth/session").then(function (r) { return r.ok ? r.json() : null; })
    .then(function (who) { if (who && who.agent) signedInAs(who, false); })
    .catch(function () {});
}
