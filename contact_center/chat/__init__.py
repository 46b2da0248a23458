"""Web chat: visitors on the site's widget, agents in the console, one customer record.

- ``desk``: the agents' side of a chat (send, read, close, block, transcripts) and the desk that
  holds the other two parts: ``visitor_socket`` (what visitors do, frame by frame, behind
  ``channels.webchat``'s socket) and ``queue`` (waiting chats handed to agents with room, and the
  ends of chats).
- ``events``: the chat's events on the bus (data; frames are built in
  ``channels.webchat.protocol``); ``views``: what each end is shown of a conversation;
  ``policy``: the settings the desk follows.
- ``routes``: REST routes, the visitor socket and the widget's files, the agents' typing;
  ``wiring``: ``setup_chat`` and what the chat starts with the application.

Chat load (who has room) is kept by ``contact_center.routing.chat_load``; conversations, messages and
blocks are stored by ``crm_core.services.chat``.
"""
