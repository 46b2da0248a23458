"""Logging set-up: periodic jobs do not flood the log at INFO."""

from __future__ import annotations

import logging

import pytest

from contact_center.logging_setup import configure_logging
from contact_center.settings import Settings


def test_scheduler_runs_stay_out_of_an_info_log(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.getLogger("apscheduler").level)
    try:
        configure_logging(settings.with_overrides(logging={"level": "INFO"}))
        assert logging.getLogger("contact_center.voice.queue").isEnabledFor(logging.INFO)
        executor = logging.getLogger("apscheduler.executors.default")
        assert not executor.isEnabledFor(logging.INFO)
        assert executor.isEnabledFor(logging.WARNING)
        configure_logging(settings.with_overrides(logging={"level": "DEBUG"}))
        assert not executor.isEnabledFor(logging.INFO)
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        logging.getLogger("apscheduler").setLevel(saved[2])
