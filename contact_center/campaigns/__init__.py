"""Outbound campaigns: the campaign desk (``desk.py``: campaigns, call lists, the dial-time check
and the do-not-call list, one unit of work per request), its wiring (``wiring.py``) and its
routes (``routes.py`` for campaigns and their lists, ``dnc_routes.py`` for the do-not-call list
and the dial-time check)."""
