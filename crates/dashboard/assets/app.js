// The dashboard's views: login, status, queue, one message with its trace, bindings. The view
// shown follows the location hash (#status, #queue, #message/ID, #bindings), so the browser's
// back button and reloads work.
"use strict";

const VIEWS = ["login", "status", "queue", "message", "bindings"];
const PER_PAGE = 50;
// The queue actions, in the order their buttons appear, and which ones ask first.
const ACTIONS = [
  { action: "retry", label: "Retry" },
  { action: "hold", label: "Hold" },
  { action: "release", label: "Release" },
  { action: "bounce", label: "Bounce", confirm: "Bounce message %s? The sender gets a failure notice and the message leaves the queue." },
  { action: "delete", label: "Delete", confirm: "Delete message %s? It leaves the queue silently and cannot be recovered." },
];

const queueView = { state: "", page: 1 };

function $(id) {
  return document.getElementById(id);
}

function show(view) {
  for (const name of VIEWS) $("view-" + name).hidden = name !== view;
  $("nav").hidden = view === "login";
  for (const name of ["status", "queue", "bindings"]) {
    $("nav-" + name).classList.toggle("current", name === view || (name === "queue" && view === "message"));
  }
}

function notice(text) {
  $("notice").textContent = text;
  $("notice").hidden = !text;
}

function error(text) {
  $("error").textContent = text;
  $("error").hidden = !text;
}

// What a failed call does: a refused token goes back to the login, anything else is shown.
function failed(e) {
  if (e.status === 401) {
    Api.forget();
    showLogin("The server refused the token; log in again.");
  } else {
    error(e.message + (e.field ? " (field: " + e.field + ")" : ""));
  }
}

function showLogin(message) {
  show("login");
  notice("");
  error("");
  $("login-error").textContent = message || "";
  $("login-error").hidden = !message;
  $("token").focus();
}

async function login(event) {
  event.preventDefault();
  const token = $("token").value.trim();
  Api.setToken(token);
  try {
    await Api.get("/v1/status");
  } catch (e) {
    Api.forget();
    const message = e.status === 401 ? "Wrong token: the server refused it." : e.message;
    showLogin(message);
    return;
  }
  $("token").value = "";
  $("login-error").hidden = true;
  if (!location.hash || location.hash === "#login") location.hash = "#status";
  else route();
}

async function route() {
  if (!Api.token()) {
    showLogin();
    return;
  }
  const hash = decodeURIComponent(location.hash.slice(1));
  error("");
  try {
    if (hash.startsWith("message/")) await showMessage(hash.slice("message/".length));
    else if (hash === "queue") await showQueue();
    else if (hash === "bindings") await showBindings();
    else await showStatus();
  } catch (e) {
    failed(e);
  }
}

async function showStatus() {
  const status = await Api.get("/v1/status");
  facts($("status-facts"), [
    ["Version", status.version],
    ["Host name", status.hostname],
    ["Up for", formatUptime(status.uptime_seconds || 0)],
    ["Open connections", status.connections ? status.connections.open : null],
  ]);
  fill($("status-listeners").tBodies[0], (status.listeners || []).map((l) =>
    el("tr", {}, el("td", {}, l.protocol), el("td", {}, l.mode || "—"), el("td", { class: "mono" }, l.address))));
  const q = status.queue || {};
  fill($("status-queue").tBodies[0], el("tr", { id: "status-queue-counts" },
    ["queued", "deferred", "held", "total"].map((k) => el("td", { class: "number", "data-count": k }, q[k] ?? 0))));
  show("status");
}

function actionButtons(id) {
  return el("div", { class: "actions" }, ACTIONS.map((a) =>
    el("button", { type: "button", "data-action": a.action, "data-id": id, class: a.confirm ? "danger" : null }, a.label)));
}

async function showQueue() {
  const params = new URLSearchParams({ page: queueView.page, per_page: PER_PAGE });
  if (queueView.state) params.set("state", queueView.state);
  const answer = await Api.get("/v1/queue?" + params);
  for (const button of $("queue-states").querySelectorAll("button")) {
    button.classList.toggle("current", button.dataset.state === queueView.state);
  }
  const messages = answer.messages || [];
  fill($("queue-messages").tBodies[0], messages.map((m) =>
    el("tr", { "data-id": m.id, "data-state": m.state },
      el("td", { class: "mono" }, el("a", { href: "#message/" + encodeURIComponent(m.id) }, m.id)),
      el("td", { class: "state-" + m.state }, m.state),
      el("td", {}, m.sender === "" ? "<>" : m.sender),
      el("td", {}, (m.recipients || []).join(", ")),
      el("td", { class: "number" }, formatSize(m.size)),
      el("td", {}, formatTime(m.arrival)),
      el("td", {}, formatTime(m.next_attempt)),
      el("td", {}, actionButtons(m.id)))));
  const total = answer.total ?? messages.length;
  const pages = Math.max(1, Math.ceil(total / (answer.per_page || PER_PAGE)));
  $("queue-summary").textContent = total === 0
    ? "No message" + (queueView.state ? " is " + queueView.state : " in the queue") + "."
    : total + " message" + (total === 1 ? "" : "s") + (queueView.state ? " " + queueView.state : "") +
      (pages > 1 ? ", page " + queueView.page + " of " + pages : "") + ".";
  $("queue-prev").disabled = queueView.page <= 1;
  $("queue-next").disabled = queueView.page >= pages;
  show("queue");
}

// Runs a queue action on message id (after asking, for the ones that lose the message).
async function queueAction(action, id) {
  const spec = ACTIONS.find((a) => a.action === action);
  if (!spec) return;
  if (spec.confirm && !window.confirm(spec.confirm.replace("%s", id))) return;
  const path = "/v1/queue/" + encodeURIComponent(id);
  try {
    const answer = action === "delete" ? await Api.call("DELETE", path) : await Api.call("POST", path + "/" + action);
    notice(action === "delete" ? "Message " + id + " deleted." : "Message " + id + ": " + action + " done, now " + answer.state + ".");
  } catch (e) {
    failed(e);
    return;
  }
  if (action === "delete" || action === "bounce") {
    if (location.hash.startsWith("#message/")) location.hash = "#queue";
    else await route();
  } else {
    await route();
  }
}

async function showMessage(id) {
  const path = "/v1/queue/" + encodeURIComponent(id);
  // The message may have left the queue; its trace stays while the logs keep it.
  const [message, trace] = await Promise.all([
    Api.get(path).catch((e) => (e.status === 404 ? null : Promise.reject(e))),
    Api.get(path + "/trace").catch((e) => (e.status === 404 ? null : Promise.reject(e))),
  ]);
  if (!message && !trace) throw new ApiError(404, "No message " + id + " in the queue or in the logs.", "id");
  $("message-id").textContent = id;
  fill($("message-actions"), message ? actionButtons(id) : el("span", {}, "No longer in the queue."));
  const m = message || {};
  facts($("message-facts"), message ? [
    ["State", m.state],
    ["Sender", m.sender === "" ? "<>" : m.sender],
    ["Size", formatSize(m.size)],
    ["Arrival", formatTime(m.arrival)],
    ["Next attempt", formatTime(m.next_attempt)],
  ] : []);
  fill($("message-recipients").tBodies[0], (m.recipients_detail || []).map((r) =>
    el("tr", {}, el("td", {}, r.address), el("td", {}, r.status), el("td", { class: "mono" }, r.reply || "—"))));
  fill($("message-history").tBodies[0], (m.history || []).map((h) =>
    el("tr", {}, el("td", {}, formatTime(h.at)), el("td", {}, h.what))));
  fill($("message-headers").tBodies[0], (m.headers || []).map(([name, value]) =>
    el("tr", {}, el("td", { class: "mono" }, name), el("td", { class: "mono" }, value))));
  const t = trace || { entries: [] };
  $("trace-final").textContent = trace ? "Final state: " + (t.final_state || "still in the queue") + "." : "No trace recorded.";
  fill($("message-trace").tBodies[0], (t.entries || []).map((entry) => {
    const { at, kind, ...rest } = entry;
    const details = Object.entries(rest).map(([k, v]) => k + ": " + (typeof v === "string" ? v : JSON.stringify(v)));
    return el("tr", { "data-kind": kind }, el("td", {}, formatTime(at)), el("td", {}, kind), el("td", { class: "mono" }, details.join("; ")));
  }));
  show("message");
}

async function showBindings() {
  let answer;
  try {
    answer = await Api.get("/v1/bindings");
  } catch (e) {
    // A server whose API has no bindings endpoints yet: say where to look instead.
    if (e.status !== 404) throw e;
    fill($("bindings-events"), el("p", { id: "bindings-missing" },
      "This server's admin API has no bindings endpoint (" + e.message + "); `postern binding list` shows them."));
    show("bindings");
    return;
  }
  // Grouped by event, keeping the server's chain order inside each and the events' first
  // appearance between them.
  const byEvent = new Map();
  for (const b of answer.bindings || []) {
    if (!byEvent.has(b.event)) byEvent.set(b.event, []);
    byEvent.get(b.event).push(b);
  }
  fill($("bindings-events"), [...byEvent].map(([event, bindings]) => [
    el("h3", {}, event),
    el("table", { "data-event": event },
      el("thead", {}, el("tr", {}, ["#", "Priority", "Name", "Sink", "Rule", "Enabled", "Calls", "Mean latency", "Failures", ""].map((h) => el("th", {}, h)))),
      el("tbody", {}, bindings.map((b, i) => {
        const stats = b.stats || {};
        return el("tr", { "data-binding": b.id, "data-name": b.name, class: b.enabled ? null : "disabled" },
          el("td", { class: "number" }, i + 1),
          el("td", { class: "number" }, b.priority),
          el("td", {}, b.name || el("span", { class: "mono" }, b.id)),
          el("td", { class: "mono" }, b.sink),
          el("td", { class: "mono" }, b.rule || "—"),
          el("td", { "data-enabled": b.enabled }, b.enabled ? "yes" : "no"),
          el("td", { class: "number" }, stats.calls ?? 0),
          el("td", { class: "number" }, stats.mean_ms == null ? "—" : Number(stats.mean_ms).toFixed(2) + " ms"),
          el("td", { class: "number" }, stats.failures ?? 0),
          el("td", {}, el("button", { type: "button", "data-toggle": b.id, "data-enable": !b.enabled }, b.enabled ? "Disable" : "Enable")));
      }))),
  ]));
  if (byEvent.size === 0) fill($("bindings-events"), el("p", {}, "No binding is registered."));
  show("bindings");
}

async function toggleBinding(id, enable) {
  try {
    const b = await Api.call("PATCH", "/v1/bindings/" + encodeURIComponent(id), { enabled: enable });
    notice("Binding " + (b.name || b.id) + (b.enabled ? " enabled." : " disabled."));
  } catch (e) {
    failed(e);
    return;
  }
  await route();
}

function start() {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", () => {
    Api.forget();
    location.hash = "#login";
    showLogin("Logged out.");
  });
  $("queue-states").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-state]");
    if (!button) return;
    queueView.state = button.dataset.state;
    queueView.page = 1;
    route();
  });
  $("queue-prev").addEventListener("click", () => { queueView.page -= 1; route(); });
  $("queue-next").addEventListener("click", () => { queueView.page += 1; route(); });
  document.addEventListener("click", (event) => {
    const action = event.target.closest("button[data-action]");
    if (action) queueAction(action.dataset.action, action.dataset.id);
    const toggle = event.target.closest("button[data-toggle]");
    if (toggle) toggleBinding(toggle.dataset.toggle, toggle.dataset.enable === "true");
  });
  window.addEventListener("hashchange", () => {
    notice("");
    route();
  });
  route();
}

start();
