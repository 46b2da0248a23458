/*
 * contact-center chat widget. Embed with one tag on any page of an allowed origin:
 *
 *   <script src="https://SERVICE/chat/widget.js" data-title="Chat with us" async></script>
 *
 * Options (data- attributes): data-title (panel title), data-prechat="false" (skip the
 * name/email/phone form), data-position="left" (launcher on the left), data-open="true"
 * (open the panel at once).
 *
 * Everything a person typed is shown with textContent: never as HTML.
 */
(() => {
  "use strict";

  const script = document.currentScript;
  if (!script || window.__contactCenterChat) return;
  window.__contactCenterChat = true;

  const base = new URL(script.src, window.location.href);
  const wsUrl = (base.protocol === "https:" ? "wss://" : "ws://") + base.host + "/ws/chat";
  const options = {
    title: script.dataset.title || "Chat with us",
    prechat: script.dataset.prechat !== "false",
    position: script.dataset.position === "left" ? "left" : "right",
    open: script.dataset.open === "true",
  };
  const storeKey = "cc-chat:" + base.origin;
  // Errors after which a message is sent again rather than marked as failed.
  const RETRYABLE = new Set(["rate_limited", "unavailable"]);

  // --- what survives a reload: the visitor token, unsent messages, the panel's state ----------

  function load() {
    try {
      return JSON.parse(window.localStorage.getItem(storeKey) || "{}") || {};
    } catch (_) {
      return {};
    }
  }
  const saved = load();
  const state = {
    token: typeof saved.token === "string" ? saved.token : null,
    pending: Array.isArray(saved.pending) ? saved.pending : [],
    open: Boolean(saved.open) || options.open,
  };
  function save() {
    try {
      window.localStorage.setItem(
        storeKey,
        JSON.stringify({ token: state.token, pending: state.pending, open: state.open })
      );
    } catch (_) {
      /* private mode: the chat still works until the page closes */
    }
  }

  function newId() {
    if (window.crypto && typeof window.crypto.randomUUID === "function" && window.isSecureContext) {
      return window.crypto.randomUUID();
    }
    const bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // --- DOM: built with createElement and textContent only --------------------------------------

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else if (value === true) node.setAttribute(key, "");
      else if (value !== false && value != null) node.setAttribute(key, String(value));
    }
    for (const child of children || []) node.append(child);
    return node;
  }

  function field(label, input) {
    return el("label", { class: "cc-field" }, [el("span", { text: label }), input]);
  }

  const host = el("div", { id: "cc-chat-host" });
  const root = host.attachShadow({ mode: "open" });
  root.append(el("link", { rel: "stylesheet", href: new URL("widget.css", base).href }));

  const launcher = el("button", { type: "button", class: "cc-launcher", text: options.title });
  const title = el("span", { class: "cc-title", text: options.title });
  const endButton = el("button", { type: "button", class: "cc-end", text: "End chat", hidden: true });
  const minimise = el("button", { type: "button", class: "cc-min", "aria-label": "Minimise", text: "\u2013" });
  const status = el("div", { class: "cc-status", "aria-live": "polite" });
  const errorLine = el("p", { class: "cc-error", role: "alert", hidden: true });

  const preName = el("input", { name: "name", autocomplete: "name", maxlength: 200 });
  const preEmail = el("input", { name: "email", type: "email", autocomplete: "email", maxlength: 320 });
  const prePhone = el("input", { name: "phone", type: "tel", autocomplete: "tel", maxlength: 40 });
  const preTranscript = el("input", { name: "transcript", type: "checkbox" });
  const startButton = el("button", { type: "submit", class: "cc-start", text: "Start chat" });
  const prechat = el("form", { class: "cc-prechat", hidden: true }, [
    el("p", { text: "Tell us who you are (optional), then start the chat." }),
    field("Name", preName),
    field("Email", preEmail),
    field("Phone", prePhone),
    el("label", { class: "cc-check" }, [preTranscript, el("span", { text: "Email me the transcript" })]),
    startButton,
  ]);

  const offName = el("input", { name: "name", autocomplete: "name", maxlength: 200 });
  const offEmail = el("input", { name: "email", type: "email", autocomplete: "email", maxlength: 320 });
  const offPhone = el("input", { name: "phone", type: "tel", autocomplete: "tel", maxlength: 40 });
  const offText = el("textarea", { name: "message", rows: 4, required: true });
  const offButton = el("button", { type: "submit", class: "cc-leave", text: "Send message" });
  const offline = el("form", { class: "cc-offline", hidden: true }, [
    el("p", {
      class: "cc-offline-note",
      text: "Nobody can chat right now. Leave a message and we will answer by email or text.",
    }),
    field("Name", offName),
    field("Email", offEmail),
    field("Phone", offPhone),
    field("Message", offText),
    offButton,
  ]);
  const left = el("div", { class: "cc-thanks", hidden: true }, [el("p", { class: "cc-thanks-text" })]);

  const messages = el("ol", { class: "cc-messages" });
  const typing = el("div", { class: "cc-typing", hidden: true });
  const input = el("textarea", { class: "cc-input", rows: 2, "aria-label": "Message" });
  const sendButton = el("button", { type: "submit", class: "cc-send", text: "Send" });
  const compose = el("form", { class: "cc-compose" }, [input, sendButton]);
  const chatView = el("div", { class: "cc-chat", hidden: true }, [messages, typing, compose]);

  const transcriptEmail = el("input", { name: "email", type: "email", maxlength: 320 });
  const transcriptButton = el("button", { type: "submit", text: "Email me the transcript" });
  const transcriptForm = el("form", { class: "cc-transcript" }, [
    field("Email", transcriptEmail),
    transcriptButton,
  ]);
  const againButton = el("button", { type: "button", class: "cc-again", text: "Start a new chat" });
  const ended = el("div", { class: "cc-ended", hidden: true }, [
    el("p", { text: "The chat has ended." }),
    transcriptForm,
    againButton,
  ]);

  const panel = el(
    "section",
    { class: "cc-panel", role: "dialog", "aria-label": options.title, hidden: true },
    [
      el("header", { class: "cc-header" }, [title, endButton, minimise]),
      status,
      errorLine,
      prechat,
      offline,
      left,
      chatView,
      ended,
    ]
  );
  root.append(el("div", { class: "cc-root cc-" + options.position }, [launcher, panel]));

  const views = { prechat, offline, left, chat: chatView, ended };
  let view = null;
  function show(name) {
    view = name;
    for (const [key, node] of Object.entries(views)) node.hidden = key !== name;
    endButton.hidden = name !== "chat";
  }
  function setStatus(text, kind) {
    status.textContent = text || "";
    status.dataset.kind = kind || "";
  }
  function showError(text) {
    errorLine.textContent = text || "";
    errorLine.hidden = !text;
  }

  // --- the socket -------------------------------------------------------------------------------

  let ws = null;
  let welcomed = false;
  let everWelcomed = false;
  let stopped = false;
  let attempts = 0;
  let mode = "online";
  let maxChars = 2000;
  let conversation = null;

  function send(frame) {
    if (ws && ws.readyState === WebSocket.OPEN && welcomed) {
      ws.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  function connect() {
    if (stopped) return;
    ws = new WebSocket(wsUrl);
    ws.addEventListener("open", () => {
      ws.send(JSON.stringify({ type: "hello", token: state.token }));
    });
    ws.addEventListener("message", (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      if (frame && typeof frame.type === "string") receive(frame);
    });
    ws.addEventListener("close", (event) => {
      welcomed = false;
      if (event.code === 4403 || stopped) {
        blocked();
        return;
      }
      if (!everWelcomed) {
        // Refused at the handshake (this site is not allowed) or the service is down.
        setStatus("Chat is not available right now.", "unavailable");
        launcher.classList.add("cc-unavailable");
      } else {
        setStatus("Reconnecting\u2026", "reconnecting");
      }
      attempts += 1;
      const delay = Math.min(30000, 500 * 2 ** Math.min(attempts, 6)) * (0.5 + Math.random() / 2);
      window.setTimeout(connect, delay);
    });
  }

  function blocked() {
    stopped = true;
    show(null);
    setStatus("This chat is closed.", "blocked");
    launcher.classList.add("cc-unavailable");
  }

  // --- messages ---------------------------------------------------------------------------------

  function messageNode(clientId) {
    for (const node of messages.children) if (node.dataset.clientId === clientId) return node;
    return null;
  }

  function render(message) {
    let node = messageNode(message.id);
    if (!node) {
      node = el("li", { class: "cc-msg cc-from-" + message.from }, [
        el("div", { class: "cc-who", text: message.from === "agent" ? message.agent_name || "Agent" : "You" }),
        el("div", { class: "cc-text", text: message.text }),
        el("div", { class: "cc-meta" }),
      ]);
      node.dataset.clientId = message.id;
      messages.append(node);
      messages.scrollTop = messages.scrollHeight;
    }
    if (message.message_id) {
      node.dataset.messageId = String(message.message_id);
      node.classList.remove("cc-pending");
      if (!node.classList.contains("cc-read")) node.querySelector(".cc-meta").textContent = "Sent";
    } else if (message.pending) {
      node.classList.add("cc-pending");
      node.querySelector(".cc-meta").textContent = "Sending\u2026";
    }
    return node;
  }

  function markRead(upTo) {
    for (const node of messages.querySelectorAll(".cc-from-visitor")) {
      if (Number(node.dataset.messageId || 0) && Number(node.dataset.messageId) <= upTo) {
        node.classList.add("cc-read");
        node.querySelector(".cc-meta").textContent = "Read";
      }
    }
  }

  let lastReadSent = 0;
  function sendRead() {
    if (panel.hidden || document.visibilityState !== "visible" || view !== "chat") return;
    let newest = 0;
    for (const node of messages.querySelectorAll(".cc-from-agent")) {
      newest = Math.max(newest, Number(node.dataset.messageId || 0));
    }
    if (newest > lastReadSent && send({ type: "read", up_to: newest })) lastReadSent = newest;
  }

  function flushPending() {
    if (!conversation) return;
    for (const message of state.pending) send({ type: "message", id: message.id, text: message.text });
  }

  function dropPending(clientId) {
    state.pending = state.pending.filter((m) => m.id !== clientId);
    save();
  }

  function describe(conv) {
    if (!conv) return;
    if (conv.status === "waiting") {
      setStatus(
        conv.position
          ? "All our agents are busy. You are number " + conv.position + " in line."
          : "Waiting for an agent\u2026",
        "queue"
      );
    } else if (conv.status === "active") {
      setStatus("You are chatting with " + (conv.agent_name || "an agent") + ".", "active");
    }
  }

  function startChatView(conv) {
    conversation = conv;
    show("chat");
    describe(conv);
    if (conv.agent_read_id) markRead(conv.agent_read_id);
  }

  function idleView() {
    conversation = null;
    if (mode === "online") {
      show("prechat");
      setStatus("");
      if (!options.prechat && !panel.hidden) send({ type: "start" });
    } else {
      show("offline");
      setStatus("");
    }
  }

  // --- frames from the service ------------------------------------------------------------------

  function receive(frame) {
    switch (frame.type) {
      case "welcome":
        welcomed = true;
        everWelcomed = true;
        attempts = 0;
        launcher.classList.remove("cc-unavailable");
        state.token = frame.token;
        save();
        mode = frame.mode;
        maxChars = frame.max_message_chars || maxChars;
        input.maxLength = maxChars;
        offText.maxLength = maxChars;
        if (frame.conversation) {
          messages.replaceChildren();
          for (const message of frame.history || []) render(message);
          for (const message of state.pending) render({ id: message.id, from: "visitor", text: message.text, pending: true });
          startChatView(frame.conversation);
          flushPending();
          if (state.open) openPanel();
          sendRead();
        } else if (view === "chat" || view === "ended") {
          show("ended");
        } else {
          state.pending = [];
          save();
          idleView();
          if (state.open) openPanel();
        }
        break;
      case "started":
        startButton.disabled = false;
        if (!conversation) {
          messages.replaceChildren();
          startChatView(frame.conversation);
        }
        flushPending();
        break;
      case "queue":
        if (conversation && conversation.status === "waiting") {
          conversation.position = frame.position;
          describe(conversation);
        }
        break;
      case "assigned":
        if (conversation) {
          conversation.status = "active";
          conversation.agent_name = frame.agent_name;
          describe(conversation);
        }
        break;
      case "ack":
        dropPending(frame.id);
        render({ id: frame.id, message_id: frame.message_id });
        break;
      case "message":
        render(frame);
        if (frame.from === "agent") {
          typing.hidden = true;
          sendRead();
        } else {
          dropPending(frame.id);
        }
        break;
      case "typing":
        typing.textContent = ((conversation && conversation.agent_name) || "The agent") + " is typing\u2026";
        typing.hidden = !frame.typing;
        window.clearTimeout(receive.typingTimer);
        if (frame.typing) receive.typingTimer = window.setTimeout(() => (typing.hidden = true), 8000);
        break;
      case "read":
        markRead(frame.up_to);
        break;
      case "closed":
        conversation = null;
        state.pending = [];
        save();
        typing.hidden = true;
        show("ended");
        setStatus("The chat has ended.", "closed");
        break;
      case "offline":
        startButton.disabled = false;
        mode = "offline";
        show("offline");
        break;
      case "message_left":
        offButton.disabled = false;
        offline.reset();
        show("left");
        left.querySelector(".cc-thanks-text").textContent =
          "Thank you. We received your message (ticket #" + frame.ticket_number + ") and will answer soon.";
        break;
      case "transcript":
        transcriptButton.disabled = false;
        setStatus("The transcript will be emailed to " + frame.email + ".", "transcript");
        break;
      case "blocked":
        blocked();
        break;
      case "error":
        startButton.disabled = false;
        offButton.disabled = false;
        transcriptButton.disabled = false;
        if (frame.id && RETRYABLE.has(frame.code)) {
          // Not stored yet: it stays pending and goes again (same id, so never twice).
          const node = messageNode(frame.id);
          if (node) node.querySelector(".cc-meta").textContent = "Not sent yet, trying again\u2026";
          window.setTimeout(() => {
            const message = state.pending.find((m) => m.id === frame.id);
            if (message) send({ type: "message", id: message.id, text: message.text });
          }, 5000);
        } else if (frame.id) {
          dropPending(frame.id);
          const node = messageNode(frame.id);
          if (node) {
            node.classList.remove("cc-pending");
            node.classList.add("cc-failed");
            node.querySelector(".cc-meta").textContent = "Not sent: " + frame.message;
          }
        } else {
          showError(frame.message);
        }
        break;
      default:
        break;
    }
  }

  // --- what the visitor does --------------------------------------------------------------------

  function openPanel() {
    panel.hidden = false;
    launcher.hidden = true;
    state.open = true;
    save();
    if (view === "prechat" && !options.prechat) send({ type: "start" });
    sendRead();
  }

  launcher.addEventListener("click", openPanel);
  minimise.addEventListener("click", () => {
    panel.hidden = true;
    launcher.hidden = false;
    state.open = false;
    save();
  });
  endButton.addEventListener("click", () => send({ type: "close" }));
  againButton.addEventListener("click", () => {
    messages.replaceChildren();
    idleView();
  });

  prechat.addEventListener("submit", (event) => {
    event.preventDefault();
    showError("");
    startButton.disabled = true;
    const sent = send({
      type: "start",
      name: preName.value.trim() || null,
      email: preEmail.value.trim() || null,
      phone: prePhone.value.trim() || null,
      transcript: preTranscript.checked,
    });
    if (!sent) {
      startButton.disabled = false;
      showError("Not connected yet; try again in a moment.");
    }
  });

  offline.addEventListener("submit", (event) => {
    event.preventDefault();
    showError("");
    offButton.disabled = true;
    const sent = send({
      type: "leave_message",
      name: offName.value.trim() || null,
      email: offEmail.value.trim() || null,
      phone: offPhone.value.trim() || null,
      text: offText.value,
    });
    if (!sent) {
      offButton.disabled = false;
      showError("Not connected yet; try again in a moment.");
    }
  });

  transcriptForm.addEventListener("submit", (event) => {
    event.preventDefault();
    transcriptButton.disabled = true;
    if (!send({ type: "transcript", email: transcriptEmail.value.trim() })) transcriptButton.disabled = false;
  });

  let typingSentAt = 0;
  let typingTimer = 0;
  function stopTyping() {
    window.clearTimeout(typingTimer);
    if (typingSentAt) send({ type: "typing", typing: false });
    typingSentAt = 0;
  }
  input.addEventListener("input", () => {
    if (!conversation) return;
    const now = Date.now();
    if (now - typingSentAt > 3000) {
      send({ type: "typing", typing: true });
      typingSentAt = now;
    }
    window.clearTimeout(typingTimer);
    typingTimer = window.setTimeout(stopTyping, 4000);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      compose.requestSubmit();
    }
  });

  compose.addEventListener("submit", (event) => {
    event.preventDefault();
    showError("");
    const text = input.value.trim();
    if (!text) return;
    if (text.length > maxChars) {
      showError("Messages are at most " + maxChars + " characters.");
      return;
    }
    const message = { id: newId(), text };
    state.pending.push(message);
    save();
    render({ id: message.id, from: "visitor", text, pending: true });
    input.value = "";
    stopTyping();
    send({ type: "message", id: message.id, text });
  });

  document.addEventListener("visibilitychange", sendRead);

  function mount() {
    document.body.append(host);
    connect();
  }
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
