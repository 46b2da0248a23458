"""Text messages: the SMS desk (``desk.py``), its wiring (``wiring.py``) and its routes (``routes.py``)."""
