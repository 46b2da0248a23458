"""Voice: the application's answer to every call webhook, and the REST routes of calls.

``desk.py`` is the call desk (it composes ``inbound``, ``progress``, ``queue`` and ``tickets``,
which share ``offers``), ``wiring.py`` sets it up, ``routes.py`` holds the REST routes.
"""
