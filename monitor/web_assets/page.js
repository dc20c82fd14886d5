// The index page's own script (textual-serve's inline script, moved here: the page allows no inline script).
"use strict";

// Start / Restart load the page again, without textual-serve's "delay" parameter.
function startUrl() {
  const url = new URL(window.location.href);
  url.searchParams.delete("delay");
  return url.pathname + "?" + url.searchParams.toString();
}

document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("button[data-restart]")) {
    button.addEventListener("click", () => {
      window.location.href = startUrl();
    });
  }
});

// When the server closes the tab's websocket with a reason (too many tabs, the monitor stopped, the app could
// not start), the "Session ended." dialog says it. textual.js opens the socket on window.onload, after this runs.
const NativeWebSocket = window.WebSocket;
window.WebSocket = class extends NativeWebSocket {
  constructor(...args) {
    super(...args);
    this.addEventListener("close", (event) => {
      const message = document.querySelector(".closed-dialog .message");
      if (message && event.reason) {
        message.textContent = event.reason;
      }
    });
  }
};
