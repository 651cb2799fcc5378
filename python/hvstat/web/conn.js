// The /ws connection: connect, authenticate when there is a token, subscribe, hand messages on; on
// any close, retry with a growing delay (0.5 s doubling up to 15 s, with jitter so that a restarted
// server is not hit by every dashboard at once), and start again from the hello. A close with
// 4401 (authentication failed) is not retried: the page asks for a token, then calls connect().
// Protocol: docs/websocket.md; authentication: docs/api.md.

const CLOSE_UNAUTHORIZED = 4401;

const FIRST_DELAY = 0.5;
const MAX_DELAY = 15;

export class Live {
  // handlers: onHello(msg), onMessage(msg), onState({state, attempt, retryAt, code, reason}),
  // token() -> the API token or null.
  constructor(url, handlers) {
    this.url = url;
    this.h = handlers;
    this.ws = null;
    this.base = [];
    this.extra = [];
    this.attempt = 0;
    this.timer = null;
    this.state = "connecting";
  }

  start() {
    this.connect();
    // A laptop waking up or a tab coming back: try at once rather than at the end of the delay.
    window.addEventListener("online", () => this.retryNow());
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && this.state === "retrying") this.retryNow();
    });
  }

  // `base` topics are always valid; `extra` ones (a guest's detail) may not be (it vanished). Each
  // subscribe replaces everything, all or nothing, so the base goes first on its own: a failing
  // extra then leaves the base in place instead of the connection's default (every full stream).
  setTopics(base, extra = []) {
    this.base = base;
    this.extra = extra;
    this.sendTopics();
  }

  sendTopics() {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(JSON.stringify({ type: "subscribe", topics: this.base }));
    if (this.extra.length) this.ws.send(JSON.stringify({ type: "subscribe", topics: [...this.base, ...this.extra] }));
  }

  connect() {
    clearTimeout(this.timer);
    this.timer = null;
    this.setState("connecting");
    const ws = new WebSocket(this.url);
    this.ws = ws;
    // The token goes in the first message, not in the URL (which ends up in logs and history).
    ws.onopen = () => {
      const token = this.h.token();
      if (token) ws.send(JSON.stringify({ type: "auth", token }));
    };
    ws.onmessage = (ev) => {
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (msg.type === "hello") {
        this.attempt = 0;
        this.setState("open");
        this.sendTopics();
        this.h.onHello(msg);
      } else {
        this.h.onMessage(msg);
      }
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (ev.code === CLOSE_UNAUTHORIZED) this.setState("auth", { code: ev.code, reason: ev.reason });
      else this.retry(ev.code, ev.reason);
    };
  }

  retry(code, reason) {
    this.attempt += 1;
    const delay = Math.min(MAX_DELAY, FIRST_DELAY * 2 ** (this.attempt - 1)) * (0.8 + 0.4 * Math.random());
    this.retryAt = Date.now() + delay * 1000;
    this.setState("retrying", { code, reason });
    this.timer = setTimeout(() => this.connect(), delay * 1000);
  }

  retryNow() {
    if (this.state !== "retrying") return;
    this.connect();
  }

  setState(state, extra = {}) {
    this.state = state;
    this.h.onState({ state, attempt: this.attempt, retryAt: this.retryAt, ...extra });
  }
}
