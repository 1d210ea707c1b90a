"""Sign the records that become ready in the same event-loop turn with one signature.

A busy server finishes many responses per turn of its event loop. Each asks :class:`BatchSigner`
for a token and waits; at the end of the turn the signer signs all waiting payloads at once
(:func:`provenance.sign_payloads`: one Ed25519 signature over a Merkle root), and every
response goes on with its own token. The wait is one loop turn, not a timer, so a lone
request is not delayed and gets an ordinary single-signature token.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable

from .provenance import sign_payloads
from .signing import SigningKey

__all__ = ["BatchSigner"]

logger = logging.getLogger("labeler.batch_signing")

_Waiter = tuple[bytes, "asyncio.Future[str]", "Callable[[], None] | None"]


class BatchSigner:
    """Tokens for payloads, signed together per event-loop turn. One signer serves any number of
    event loops (each batches on its own)."""

    def __init__(self, key: SigningKey) -> None:
        self.key = key
        self._pending: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[_Waiter]] = (
            weakref.WeakKeyDictionary()
        )
        #: the loop and batch of the latest submit, until that batch is flushed
        self._current: tuple[asyncio.AbstractEventLoop, list[_Waiter]] | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # remote batches in flight (kept referenced)
        #: batches signed and payloads in them, for the curious and for tests
        self.batches = 0
        self.signed = 0

    def __repr__(self) -> str:
        return f"BatchSigner(key={self.key!r}, batches={self.batches}, signed={self.signed})"

    async def sign(self, payload: bytes) -> str:
        """The token for ``payload`` (from :func:`provenance.encode_payload` with this key)."""
        return await self.submit(payload)

    def submit(self, payload: bytes, settled: Callable[[], None] | None = None) -> asyncio.Future[str]:
        """The future token for ``payload``, settled at the end of this loop turn. Not a
        coroutine: a caller deep in an app's call chain can queue now and wait where it is cheap.
        ``settled`` is called right after the future is (a done-callback without a loop trip)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str] = loop.create_future()
        current = self._current
        if current is not None and current[0] is loop:  # this turn's batch (no weakref lookup)
            pending = current[1]
        else:
            known = self._pending.get(loop)
            if known is None:
                known = self._pending[loop] = []
                loop.call_soon(self._flush, loop)
            self._current = loop, known
            pending = known
        pending.append((payload, future, settled))
        return future

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._current is not None and self._current[0] is loop:
            self._current = None
        batch = [waiter for waiter in self._pending.pop(loop, []) if not waiter[1].done()]
        if not batch:
            return  # every waiter went away (cancelled requests)
        if getattr(self.key, "remote", False):  # a KMS round trip must not hold up the loop: a thread
            task = loop.create_task(self._flush_remote(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        try:
            tokens = sign_payloads([waiter[0] for waiter in batch], self.key)
        except Exception as exc:  # a key plug-in failed: every waiter learns it
            self._fail(batch, exc)
            return
        self._settle(batch, tokens)

    async def _flush_remote(self, batch: list[_Waiter]) -> None:
        try:
            tokens = await asyncio.to_thread(sign_payloads, [waiter[0] for waiter in batch], self.key)
        except Exception as exc:
            self._fail(batch, exc)
            return
        self._settle(batch, tokens)

    def _fail(self, batch: list[_Waiter], exc: Exception) -> None:
        logger.warning("batch signing failed: %s", type(exc).__name__)
        for _, future, settled in batch:
            if not future.done():
                future.set_exception(exc)
                if settled is not None:
                    settled()

    def _settle(self, batch: list[_Waiter], tokens: list[str]) -> None:
        self.batches += 1
        self.signed += len(batch)
        for (_, future, settled), token in zip(batch, tokens, strict=True):
            if not future.done():
                future.set_result(token)
                if settled is not None:
                    settled()
