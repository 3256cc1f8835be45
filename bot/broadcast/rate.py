"""Pacing: a token bucket that keeps the command under WhatsApp's throughput limit (80 messages/s
per business number by default; going over gets error 130429)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_RATE = 80.0
MIN_RATE = 1.0


@dataclass
class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up.

    `reserve` books the next token and says how long to wait for it. Booking ahead (the balance
    may go negative) lets concurrent senders share one bucket without a lock, in arrival order.
    """

    rate: float
    burst: float
    tokens: float
    updated: float

    @classmethod
    def full(cls, rate: float, now: float) -> TokenBucket:
        if rate <= 0:
            raise ValueError("rate must be positive")
        # A tenth of a second's worth: smooth sending rather than a burst at every pause.
        burst = max(1.0, rate / 10)
        return cls(rate=rate, burst=burst, tokens=burst, updated=now)

    def reserve(self, now: float) -> float:
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        self.tokens -= 1
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def slow_down(self, now: float, factor: float = 0.5) -> None:
        """WhatsApp said we are too fast: settle what was earned at the old rate, then go slower."""
        self.reserve(now)
        self.tokens += 1  # that was a settlement, not a booking
        self.rate = max(MIN_RATE, self.rate * factor)
        self.burst = max(1.0, self.rate / 10)
        self.tokens = min(self.tokens, self.burst)


class Pacer:
    """The async shell around a bucket.

    Several sends in flight hit the same throttling at once: one slow-down per second answers it,
    not one per send.
    """

    def __init__(
        self, rate: float, clock: Callable[[], float] = time.monotonic, slow_down_every: float = 1.0
    ) -> None:
        self._clock = clock
        self.bucket = TokenBucket.full(rate, clock())
        self._slow_down_every = slow_down_every
        self._slowed_at = -slow_down_every

    async def wait(self) -> None:
        delay = self.bucket.reserve(self._clock())
        if delay > 0:
            await asyncio.sleep(delay)

    def slow_down(self) -> None:
        now = self._clock()
        if now - self._slowed_at >= self._slow_down_every:
            self.bucket.slow_down(now)
            self._slowed_at = now

    @property
    def rate(self) -> float:
        return self.bucket.rate
