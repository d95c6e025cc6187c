"use strict";
// Shared by every page: the API key a visitor pastes (kept in this browser's localStorage, sent as a Bearer
// token only on the page's own requests that need it) and who the server says that key is.

const KEY_STORAGE = "nasscore.apiKey";

const nasscore = {
  key() {
    return window.localStorage.getItem(KEY_STORAGE) || "";
  },

  authHeaders() {
    const key = nasscore.key();
    return key ? { Authorization: `Bearer ${key}` } : {};
  },

  // The server's error body is {"detail": "field: message", "errors": [...]}.
  async errorText(response) {
    try {
      const body = await response.json();
      if (body && body.detail) return body.detail;
    } catch (_) {
      // not JSON: fall through to the status line
    }
    return `HTTP ${response.status} ${response.statusText}`;
  },

  // {auth, name, scope} of the stored key (scope null: keys are on and none is stored), or {error}.
  async fetchPrincipal() {
    const response = await fetch("/dashboard/whoami", { headers: nasscore.authHeaders() });
    if (!response.ok) return { error: await nasscore.errorText(response) };
    return response.json();
  },

  principal: null,

  async refreshPrincipal() {
    nasscore.principal = await nasscore.fetchPrincipal();
    showKeyStatus(nasscore.principal);
    document.dispatchEvent(new CustomEvent("nasscore:principal", { detail: nasscore.principal }));
    return nasscore.principal;
  },

  formatDuration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    const whole = Math.round(seconds);
    if (whole < 60) return `${whole} s`;
    if (whole < 3600) return `${Math.floor(whole / 60)} min ${whole % 60} s`;
    return `${Math.floor(whole / 3600)} h ${Math.floor((whole % 3600) / 60)} min`;
  },

  formatRate(perSecond) {
    if (perSecond === null || perSecond === undefined) return "—";
    return perSecond >= 1 ? `${perSecond.toFixed(1)}/s` : `${(60 * perSecond).toFixed(1)}/min`;
  },

  formatTimestamp(iso) {
    if (!iso) return "—";
    return new Date(iso).toISOString().slice(0, 19).replace("T", " ");
  },
};
window.nasscore = nasscore;

function showKeyStatus(principal) {
  const status = document.getElementById("key-status");
  const message = document.getElementById("key-message");
  if (!status) return;
  let text;
  if (principal.error) {
    text = "API key: not accepted";
    message.textContent = principal.error;
  } else if (principal.name) {
    text = `API key: ${principal.name} (${principal.scope})`;
    message.textContent = "";
  } else if (principal.auth === "off") {
    text = "API key: not needed";
    message.textContent = "This server requires no keys: every visitor may write.";
  } else {
    text = "API key: none";
    message.textContent = "";
  }
  status.textContent = text;
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("key-form");
  const input = document.getElementById("key-input");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (key) window.localStorage.setItem(KEY_STORAGE, key);
    input.value = "";
    nasscore.refreshPrincipal();
  });
  document.getElementById("key-forget").addEventListener("click", () => {
    window.localStorage.removeItem(KEY_STORAGE);
    input.value = "";
    nasscore.refreshPrincipal();
  });
  nasscore.refreshPrincipal();
});
