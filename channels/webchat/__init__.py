"""The web chat channel: the visitor WebSocket (``/ws/chat``) and its wire format.

- ``socket``: origin check at the handshake (403), the first ``hello`` frame with the visitor
  token, frames handed to the ``VisitorDesk`` port the application implements, and this
  instance's visitor sockets (fed from the event bus by the application).
- ``protocol``: the JSON frames both ways, parsed with pydantic; a bad frame gets an ``error``
  frame naming it and changes nothing.
- ``tokens``: visitor tokens signed with HMAC-SHA256 under a key derived from the secret key.

The widget itself (contact_center/static/chat/widget.js) renders every text with textContent.
"""
