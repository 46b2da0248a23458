"""Garbage-collector settings for the long-running service.

With CPython's defaults a busy service with thousands of sockets promotes many short-lived objects
(requests, frames, rows) into the old generation, and every full collection then walks the whole
heap: pauses of 200-300 ms that every caller and visitor feels as latency. Objects made while
starting up live for the process, so they are frozen out of collection, and the youngest
generation is collected less often, so that most request garbage is freed before it is promoted.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000
MIDDLE_THRESHOLD = 20
OLD_THRESHOLD = 100


def tune_for_service() -> None:
    """Call once the service has started: freeze what start-up made, then raise the thresholds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
