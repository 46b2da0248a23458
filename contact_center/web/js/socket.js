// The agent WebSocket (/ws/agent): reconnects by itself with exponential backoff, tells the page
// when it is offline and when it is back, and hands every frame to the listeners of its type.

const PING_MS = 20000;
const MAX_BACKOFF_MS = 15000;

export class LiveSocket extends EventTarget {
  constructor(path = "/ws/agent") {
    super();
    this.path = path;
    this.ws = null;
    this.attempt = 0;
    this.online = false;
    this.everConnected = false;
    this.stopped = false;
    this.retryAt = null;
  }

  start() {
    this.stopped = false;
    this.connect();
    window.addEventListener("online", () => this.retryNow());
    return this;
  }

  on(type, handler) {
    this.addEventListener(type, (event) => handler(event.detail));
    return this;
  }

  retryNow() {
    if (this.online || this.stopped) return;
    clearTimeout(this.timer);
    this.connect();
  }

  async connect() {
    this.retryAt = null;
    // Ask the API first: it tells a dead service (retry) from an expired session (sign in).
    let me;
    try {
      me = await fetch("/api/v1/auth/me", { credentials: "same-origin", headers: { Accept: "application/json" } });
    } catch {
      return this.scheduleRetry();
    }
    if (me.status === 401) {
      window.dispatchEvent(new CustomEvent("session-expired"));
      return;
    }
    if (!me.ok) return this.scheduleRetry();
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}${this.path}`);
    this.ws = ws;
    ws.addEventListener("open", () => {
      const wasOffline = this.everConnected && !this.online;
      this.attempt = 0;
      this.online = true;
      this.everConnected = true;
      this.status(true);
      if (wasOffline) this.emit("reconnected", {});
      this.pinger = setInterval(() => ws.readyState === WebSocket.OPEN && ws.send("ping"), PING_MS);
    });
    ws.addEventListener("message", (event) => {
      if (event.data === "pong") return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      this.emit("frame", frame);
      if (frame.type) this.emit(frame.type, frame);
    });
    ws.addEventListener("close", () => {
      clearInterval(this.pinger);
      if (this.ws !== ws) return;
      this.ws = null;
      this.online = false;
      this.status(false);
      if (!this.stopped) this.scheduleRetry();
    });
  }

  scheduleRetry() {
    const base = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.attempt);
    const delay = base / 2 + Math.random() * (base / 2);
    this.attempt += 1;
    this.retryAt = Date.now() + delay;
    this.online = false;
    this.status(false);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  status(online) {
    this.emit("status", { online, retryAt: this.retryAt, connectedBefore: this.everConnected });
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
