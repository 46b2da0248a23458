"""Text messages: the SMS desk (``desk.py``: one unit of work per event; its decisions in
``inbound.py`` for a text that arrives and ``agent_texts.py`` for an agent's text), its wiring
(``wiring.py``) and its routes (``routes.py``: the API group and Twilio's messaging webhooks)."""
