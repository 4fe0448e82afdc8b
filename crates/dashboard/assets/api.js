// The admin API as the dashboard uses it: the token, JSON calls, and the one way any data
// reaches the page (el, which only ever sets text, never markup).
"use strict";

const TOKEN_KEY = "postern-admin-token";

// An API error: the HTTP status and the server's message (and field, when it named one).
class ApiError extends Error {
  constructor(status, message, field) {
    super(message);
    this.status = status;
    this.field = field;
  }
}

const Api = {
  token() {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  setToken(token) {
    sessionStorage.setItem(TOKEN_KEY, token);
  },
  forget() {
    sessionStorage.removeItem(TOKEN_KEY);
  },

  // Calls METHOD PATH with an optional JSON body; resolves with the decoded answer, rejects
  // with an ApiError carrying the server's error message.
  async call(method, path, body) {
    const headers = { Authorization: "Bearer " + (Api.token() || "") };
    const init = { method, headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, "The server cannot be reached (" + e.message + ").", null);
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (e) {
        throw new ApiError(response.status, "The server answered " + response.status + " with something that is not JSON.", null);
      }
    }
    if (!response.ok) {
      const error = data && data.error ? data.error : {};
      const message = error.message || "The server answered " + response.status + ".";
      throw new ApiError(response.status, message, error.field || null);
    }
    return data;
  },
  get(path) {
    return Api.call("GET", path);
  },
};

// Builds an element: attrs set as attributes (data-*, class, href...; null leaves one out,
// booleans are written "true"/"false"), children appended as nodes or as text. Nothing is ever
// parsed as HTML.
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value !== null && value !== undefined) node.setAttribute(name, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// Replaces every child of node with children.
function fill(node, ...children) {
  node.replaceChildren();
  for (const child of children.flat(Infinity)) {
    if (child !== null && child !== undefined) node.append(child);
  }
}

// A definition list from [term, value] pairs.
function facts(dl, pairs) {
  fill(dl, pairs.map(([term, value]) => [el("dt", {}, term), el("dd", {}, value == null ? "—" : value)]));
}

function formatUptime(seconds) {
  let s = Math.floor(seconds);
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  const parts = [];
  if (d) parts.push(d + "d");
  if (d || h) parts.push(h + "h");
  if (d || h || m) parts.push(m + "m");
  parts.push(s + "s");
  return parts.join(" ");
}

function formatTime(rfc3339) {
  if (!rfc3339) return "—";
  const date = new Date(rfc3339);
  return isNaN(date) ? String(rfc3339) : date.toLocaleString();
}

function formatSize(bytes) {
  if (bytes == null) return "—";
  if (bytes < 1024) return bytes + " B";
  if (bytes < 1024 * 1024) return (bytes / 1024).toFixed(1) + " KiB";
  return (bytes / 1024 / 1024).toFixed(1) + " MiB";
}
