"""Routing: the one owner of agent capacity, shared by the capabilities (it imports none of them).

- ``presence``: what agents are doing (states, the store's protocol, the in-memory store);
  ``redis_presence``: the same in Redis for several instances (its Lua scripts), and
  ``presence_store``, which picks one of the two.
- ``claim``: the one claim of an agent (an inbound call, an outbound reservation) and how many
  agents are free now or soon; ``roster``: who may take calls (active agents, skills).
- ``chat_load``: the chats each agent holds (their slots) and its correction from the database.
- ``free_agents``: the one listener to "an agent is free", which offers them to the takers the
  capabilities register, in order: inbound calls, chats, then the dialer.
"""
