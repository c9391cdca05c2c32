// The dashboard shell: login, the hash router, the connection indicator, and the one shared socket.

import { Api, SessionExpired } from "./api.js";
import { announce } from "./dom.js";
import { LiveConnection } from "./live.js";
import { AlertsView } from "./alerts.js";
import { ApiKeysView } from "./api_keys.js";
import { AlertHistoryView } from "./history.js";
import { MachinesView } from "./machines_admin.js";
import { MaintenanceView } from "./maintenance.js";
import { AccountView, UsersView } from "./users.js";
import { MachineView } from "./machine.js";
import { OverviewView } from "./overview.js";
import { RulesView } from "./rules.js";
import { Store } from "./store.js";
import { ChannelsView } from "./channels.js";
import { DeliveriesView } from "./deliveries.js";
import { PoliciesView } from "./policies.js";
import { SilencesView } from "./silences.js";

const $ = (id) => document.getElementById(id);
const LARGE_TEXT_KEY = "haltless.largeText";

const api = new Api();
const store = new Store();
let live = null;
let view = null;
let fleetReload = null;

async function loadConfig() {
  try {
    const response = await fetch("/ui/config.json");
    if (response.ok) return await response.json();
  } catch {
    // defaults below
  }
  return { heartbeat_interval: 15 };
}

// ---- connection indicator -------------------------------------------------------------------------------

let countdown = null;

function showConnection(status) {
  const node = $("connection");
  const label = node.querySelector(".label");
  node.dataset.state = status.state;
  clearInterval(countdown);
  if (status.state === "live") {
    label.textContent = "Live";
    node.title = "Receiving live events";
  } else if (status.state === "reconnecting") {
    const render = () => {
      const seconds = Math.max(0, Math.ceil((status.until - performance.now()) / 1000));
      label.textContent = seconds > 0 ? `Reconnecting in ${seconds} s…` : "Reconnecting…";
    };
    render();
    countdown = setInterval(render, 1000);
    node.title = `Connection lost: ${status.reason} (attempt ${status.attempt})`;
  } else {
    label.textContent = "Disconnected";
    node.title = status.reason ?? "";
  }
}

// ---- data -----------------------------------------------------------------------------------------------

async function loadFleet() {
  const page = await api.get("/machines", { include: "latest", limit: 1000 });
  store.setFleet(page.items);
}

async function loadAlerts() {
  const page = await api.get("/alerts", { state: "open", limit: 1000 });
  store.setAlerts(page.items);
}

function scheduleFleetReload() {
  clearTimeout(fleetReload);
  fleetReload = setTimeout(() => loadFleet().catch(() => {}), 500);
}

function updateAlertCount() {
  const count = store.alerts.size;
  const node = $("alert-count");
  node.textContent = String(count);
  node.dataset.count = String(count);
  node.setAttribute("aria-label", `${count} open alert${count === 1 ? "" : "s"}`);
}

store.subscribe((change) => {
  if (change.alerts) updateAlertCount();
  if (change.unknownMachine) scheduleFleetReload();
  for (const alert of change.newAlerts ?? []) {
    announce(`New ${alert.severity} alert on ${store.machineName(alert.machine_id)}: ${alert.message}`);
  }
});

// ---- router ---------------------------------------------------------------------------------------------

function route() {
  if (!store.me) return;
  const hash = location.hash.replace(/^#/, "") || "/";
  const parts = hash.split("/").filter(Boolean);
  const context = { store, api, live, reloadFleet: loadFleet, signedOut };
  let next;
  let nav = "overview";
  if (parts[0] === "machines" && parts[1]) next = new MachineView(context, decodeURIComponent(parts[1]));
  else if (parts[0] === "machines") [next, nav] = [new MachinesView(context), "machines"];
  else if (parts[0] === "maintenance") [next, nav] = [new MaintenanceView(context), "maintenance"];
  else if (parts[0] === "alerts") [next, nav] = [new AlertsView(context), "alerts"];
  else if (parts[0] === "history") [next, nav] = [new AlertHistoryView(context), "history"];
  else if (parts[0] === "rules") [next, nav] = [new RulesView(context), "rules"];
  else if (parts[0] === "users") [next, nav] = [new UsersView(context), "users"];
  else if (parts[0] === "api-keys") [next, nav] = [new ApiKeysView(context), "api-keys"];
  else if (parts[0] === "account") [next, nav] = [new AccountView(context), "account"];
  else if (parts[0] === "channels") [next, nav] = [new ChannelsView(context), "channels"];
  else if (parts[0] === "policies") [next, nav] = [new PoliciesView(context), "policies"];
  else if (parts[0] === "silences") [next, nav] = [new SilencesView(context), "silences"];
  else if (parts[0] === "notifications") [next, nav] = [new DeliveriesView(context), "notifications"];
  else next = new OverviewView(context);
  view?.unmount();
  view = next;
  const container = $("view");
  container.hidden = false;
  view.mount(container);
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === nav) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const heading = container.querySelector("h1");
  if (heading && document.activeElement !== document.body) heading.focus({ preventScroll: true });
  document.title = `${heading?.textContent ?? "Dashboard"} · Haltless`;
}

// ---- session --------------------------------------------------------------------------------------------

/** The session ended on purpose (signed out everywhere): forget the tokens and show the login. */
async function signedOut(message) {
  await api.logout();
  showLogin(message);
}

function showLogin(message = "") {
  live?.stop();
  view?.unmount();
  view = null;
  store.me = null;
  $("topbar").hidden = true;
  $("view").hidden = true;
  $("login-view").hidden = false;
  $("login-error").textContent = message;
  $("login-email").focus();
}

async function start(config) {
  try {
    store.me = await api.get("/auth/me");
  } catch (error) {
    if (error instanceof SessionExpired || error.status === 401) return showLogin("Your session has ended. Sign in again.");
    return showLogin(`Could not reach the server: ${error.message}`);
  }
  $("login-view").hidden = true;
  $("topbar").hidden = false;
  $("whoami").textContent = `${store.me.email} (${store.me.role})`;
  for (const node of document.querySelectorAll("[data-role-min]")) node.hidden = !store.can(node.dataset.roleMin);
  live ??= new LiveConnection(api, {
    heartbeatInterval: config.heartbeat_interval,
    onBatch: (events) => store.applyBatch(events),
    onStatus: (status) => {
      showConnection(status);
      // Events missed while away are not replayed: re-read the state over REST after every reconnect.
      if (status.state === "live" && status.reconnected) {
        Promise.all([loadFleet(), loadAlerts()])
          .then(() => view?.load?.())
          .catch(() => {});
      }
    },
  });
  window.__haltless = { store, stats: live.stats, live };
  live.start();
  try {
    await Promise.all([loadFleet(), loadAlerts()]);
  } catch (error) {
    announce(`Could not load the fleet: ${error.message}`);
  }
  // A page opened while the fleet loaded stays as it is (mounting it again would wipe what was typed in it).
  if (!view) route();
}

function setLargeText(on) {
  document.documentElement.classList.toggle("large-text", on);
  $("large-text").setAttribute("aria-pressed", String(on));
  localStorage.setItem(LARGE_TEXT_KEY, on ? "1" : "0");
}

// ---- login lockout ----------------------------------------------------------------------------------------

let lockout = null;

/** Too many failed sign-ins: say how long to wait, count down, and keep the button off until then. */
function lockedOut(button, seconds) {
  const until = performance.now() + seconds * 1000;
  clearInterval(lockout);
  const render = () => {
    const left = Math.max(0, Math.ceil((until - performance.now()) / 1000));
    if (left === 0) {
      clearInterval(lockout);
      lockout = null;
      button.disabled = false;
      $("login-error").textContent = "You can try to sign in again now.";
      return;
    }
    const wait = left >= 120 ? `${Math.ceil(left / 60)} min` : `${left} s`;
    $("login-error").textContent = `Too many failed sign-ins. Try again in ${wait}.`;
  };
  button.disabled = true;
  render();
  lockout = setInterval(render, 1000);
}

async function main() {
  const config = await loadConfig();
  setLargeText(localStorage.getItem(LARGE_TEXT_KEY) === "1");
  $("large-text").addEventListener("click", () => {
    setLargeText(!document.documentElement.classList.contains("large-text"));
    route(); // charts take their font size when they are built
  });
  api.onSessionExpired = () => showLogin("Your session has ended. Sign in again.");
  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = event.currentTarget.querySelector("button[type=submit]");
    button.disabled = true;
    $("login-error").textContent = "";
    try {
      await api.login($("login-email").value.trim(), $("login-password").value);
      $("login-password").value = "";
      await start(config);
    } catch (error) {
      if (error.status === 429 && error.retryAfter) return lockedOut(button, error.retryAfter);
      $("login-error").textContent = error.status === 401 ? "Wrong email or password." : error.message;
    } finally {
      if (!lockout) button.disabled = false;
    }
  });
  $("logout").addEventListener("click", async () => {
    await api.logout();
    showLogin();
  });
  window.addEventListener("hashchange", route);
  if (api.loggedIn) await start(config);
  else showLogin();
}

main();
