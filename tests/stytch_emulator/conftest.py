"""Fixtures: one emulator per module on a free port, reset before each test,
with a clock the tests can move, and the real SDK pointed at it (the helpers
the tests call are in helpers.py)."""
from __future__ import annotations

import time

import pytest

from authz_server.stytch_emulator import start_emulator
from tests.stytch_emulator.helpers import sdk_client


class Clock:
    """Real time plus an offset, so fresh JWTs still verify with PyJWT's own clock."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture(scope="module")
def clock():
    return Clock()


@pytest.fixture(scope="module")
def _running(clock):
    handle = start_emulator(clock=clock)
    yield handle
    handle.stop()


@pytest.fixture
def emu(_running, clock):
    clock.offset = 0.0
    _running.emulator.store.reset()
    return _running


@pytest.fixture
def client(emu):
    return sdk_client(emu)
