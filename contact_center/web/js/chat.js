// The console's chat area: my live chats side by side, fed by the agent socket's "chat.*" frames
// (chat.assigned, chat.message, chat.typing, chat.closed, each naming its conversation_id), with
// transcripts read from /api/v1/chats/{id}/transcript and replies sent to /chats/{id}/messages.
// The agent's typing goes to the visitor as {"type": "chat.typing"} messages on the same socket.
// Only used when the service has the chat API (looked up in its OpenAPI document).

import { api, apiDocument } from "./api.js";
import { errorText, h, notify, replace, timeAgo } from "./dom.js";

const TYPING_MS = 5000;
const TYPING_IDLE_MS = 3000; // the agent stopped typing this long ago: the visitor stops seeing it

function messageLine(message, me) {
  // Socket frames carry {from, text, at, agent_name}; the transcript {sender, body, created_at}.
  const sender = message.from || message.sender;
  const who = sender === "agent" ? (message.agent_id === me.id || !message.agent_name ? "You" : message.agent_name) : "Visitor";
  return h(
    "li",
    { class: `chat-${sender}`, dataset: { message: message.message_id ?? message.id } },
    h("strong", { text: `${who}: ` }),
    h("span", { class: "chat-text", text: message.text ?? message.body }),
    " ",
    timeAgo(message.at || message.created_at),
  );
}

export async function startChatPanel(container, socket, me) {
  const doc = await apiDocument();
  if (!doc.paths || !doc.paths["/api/v1/chats"]) {
    replace(container, h("p", { class: "empty", text: "Web chat is not set up on this service." }));
    return { available: false };
  }
  const chats = new Map();

  function chatBox(id, info = {}) {
    let chat = chats.get(id);
    if (chat) return chat;
    if (chats.size === 0) container.replaceChildren();
    const log = h("ol", { class: "transcript", "aria-live": "polite", "aria-label": "Transcript" });
    const typing = h("p", { class: "typing muted", hidden: true, text: "The visitor is typing…" });
    const input = h("input", { "aria-label": "Reply to the visitor", maxlength: 20000, autocomplete: "off" });
    const form = h("form", { class: "chat-reply" }, input, h("button", { type: "submit", text: "Send" }));
    const title = h("h3", { text: info.name || `Chat ${id}` });
    const close = h("button", { type: "button", class: "link", text: "End chat" });
    const box = h(
      "article",
      { class: "chat", dataset: { chat: id } },
      title,
      h(
        "p",
        { class: "meta-line" },
        info.customerId ? h("a", { href: `/customers/${info.customerId}`, target: "_blank", rel: "noopener", text: "Open customer" }) : null,
        close,
      ),
      log,
      typing,
      form,
    );
    chat = { box, log, typing, form, input, title, timer: null, typingSent: false, idle: null };
    const sendTyping = (state) => {
      if (chat.typingSent === state) return;
      chat.typingSent = state;
      if (socket.ws?.readyState === WebSocket.OPEN) {
        socket.ws.send(JSON.stringify({ type: "chat.typing", conversation_id: id, typing: state }));
      }
    };
    input.addEventListener("input", () => {
      clearTimeout(chat.idle);
      if (!input.value.trim()) return sendTyping(false);
      sendTyping(true);
      chat.idle = setTimeout(() => sendTyping(false), TYPING_IDLE_MS);
    });
    input.addEventListener("blur", () => sendTyping(false));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const text = input.value.trim();
      clearTimeout(chat.idle);
      sendTyping(false);
      if (!text) return;
      try {
        await api.post(`/chats/${id}/messages`, { text, client_id: `console-${crypto.randomUUID()}` });
        input.value = "";
      } catch (error) {
        notify(errorText(error), "error");
      }
    });
    close.addEventListener("click", async () => {
      try {
        await api.post(`/chats/${id}/close`);
      } catch (error) {
        notify(errorText(error), "error");
      }
    });
    chats.set(id, chat);
    container.append(box);
    return chat;
  }

  function ended(chat) {
    chat.form.hidden = true;
    chat.box.classList.add("ended");
    chat.log.append(h("li", { class: "muted", text: "Chat ended." }));
  }

  async function loadTranscript(id, info) {
    const chat = chatBox(id, info);
    try {
      const transcript = await api.get(`/chats/${id}/transcript`);
      chat.log.replaceChildren(...transcript.messages.map((m) => messageLine(m, me)));
      if (transcript.chat.customer_id && !info.customerId) chat.title.textContent = transcript.chat.visitor_name || chat.title.textContent;
    } catch (error) {
      notify(errorText(error), "error");
    }
  }

  async function loadMine() {
    const mine = await api.get("/chats");
    for (const c of mine.items.filter((item) => item.agent_id === me.id)) {
      await loadTranscript(c.id, { name: c.visitor_name, customerId: c.customer_id });
    }
  }

  socket.on("frame", (frame) => {
    if (!frame.type || !frame.type.startsWith("chat.") || frame.scope === "team") return;
    if (frame.agent_id !== undefined && frame.agent_id !== me.id) return;
    const id = frame.conversation_id;
    if (id === undefined || id === null) return;
    if (frame.type === "chat.assigned") {
      const name = frame.card?.display_name || frame.visitor?.name;
      loadTranscript(id, { name, customerId: frame.card?.customer_id });
      notify(`New chat${name ? ` with ${name}` : ""}.`);
      return;
    }
    const chat = chatBox(id);
    if (frame.type === "chat.typing") {
      chat.typing.hidden = !frame.typing;
      clearTimeout(chat.timer);
      chat.timer = setTimeout(() => (chat.typing.hidden = true), TYPING_MS);
    } else if (frame.type === "chat.message" && frame.message) {
      chat.typing.hidden = true;
      // Shown once by id, in id order: a message may come again, or late, after a bus outage.
      const messageId = Number(frame.message.message_id);
      if (!chat.log.querySelector(`[data-message="${messageId}"]`)) {
        const later = [...chat.log.children].find((li) => Number(li.dataset.message) > messageId);
        chat.log.insertBefore(messageLine(frame.message, me), later || null);
      }
    } else if (frame.type === "chat.closed") {
      ended(chat);
    }
  });
  socket.on("reconnected", () => loadMine().catch(() => {}));
  await loadMine().catch(() => {});
  return { available: true };
}
