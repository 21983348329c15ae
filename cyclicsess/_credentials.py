"""Credentials for signing: botocore's, refreshed in the background while they last.

botocore refreshes temporary credentials (container, instance metadata, SSO,
assumed roles) inside the call that finds them close to expiry, and waits for
the refresh however long the credentials endpoint takes; in the last ten
minutes of their life a failed refresh fails the call. Here one refresh runs
at a time, shared by every call, and calls keep signing with the credentials
in hand while those are valid for at least :data:`VALID_MARGIN_S` more; only
calls that have nothing valid to sign with wait for the refresh, and no
longer than their budget.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ._shared import SharedRun
from ._sigv4 import FrozenCredentials

__all__ = ["VALID_MARGIN_S", "CredentialCache", "CredentialSource", "CredentialsTimeout"]

log = logging.getLogger("cyclicsess.credentials")

#: An async callable returning current credentials (a static set, in tests).
CredentialSource = Callable[[], Awaitable[FrozenCredentials]]

#: Credentials this close to expiry are not signed with: a request must reach
#: DynamoDB, and any retries of it too, while they are still valid.
VALID_MARGIN_S = 60.0
#: After a failed background refresh, the next one waits this long.
RETRY_REFRESH_AFTER_S = 5.0
#: How often the source is asked whether a refresh is due.
CHECK_EVERY_S = 1.0


class CredentialsTimeout(Exception):
    """No valid credentials could be had within the time given."""


class CredentialCache:
    """The credentials to sign with, from a botocore credentials object.

    Args:
        source: what ``get_credentials()`` of an aiobotocore session returns
            (static credentials, or refreshable ones with ``refresh_needed``),
            or an async callable returning frozen credentials, awaited on
            every call (for tests and benchmarks).
    """

    def __init__(self, source: Any) -> None:
        self._source = source
        self._fetch: CredentialSource = (
            source.get_frozen_credentials if hasattr(source, "get_frozen_credentials") else source
        )
        self._refreshable = hasattr(source, "refresh_needed")
        self._static_callable = not hasattr(source, "get_frozen_credentials")
        self._frozen: FrozenCredentials | None = None
        self._checked_until = 0.0  # loop time until which _frozen needs no check
        self._refresh_not_before = 0.0
        self._refresh = SharedRun(self._refreshed)

    async def get(self, timeout: float) -> FrozenCredentials:
        """Credentials valid for a while yet, waiting at most ``timeout`` seconds.

        Raises:
            CredentialsTimeout: nothing valid came within ``timeout``.
            Exception: whatever the refresh raised (a credentials endpoint
                that failed), when there is nothing valid to sign with.
        """
        if self._static_callable:
            return await self._fetch()
        loop = asyncio.get_running_loop()
        now = loop.time()
        frozen = self._frozen
        if frozen is not None and now < self._checked_until:
            return frozen
        if frozen is not None and not self._refresh_due():
            self._checked_until = now + CHECK_EVERY_S
            return frozen
        if frozen is not None and self._still_valid():
            if now >= self._refresh_not_before:  # at most one try per interval
                self._refresh_not_before = now + RETRY_REFRESH_AFTER_S
                self._refresh.task()
            return frozen
        try:
            return await asyncio.wait_for(asyncio.shield(self._refresh.task()), timeout)
        except asyncio.TimeoutError:
            raise CredentialsTimeout(
                f"no valid AWS credentials within {timeout:.2g}s: the credentials "
                "endpoint is slow or unreachable"
            ) from None

    def _refresh_due(self) -> bool:
        """Whether botocore would refresh now (its advisory window)."""
        return self._refreshable and bool(self._source.refresh_needed())

    def _still_valid(self) -> bool:
        return not self._source.refresh_needed(VALID_MARGIN_S)

    async def _refreshed(self) -> FrozenCredentials:
        try:
            frozen = await self._fetch()
        except Exception as exc:
            log.warning("refreshing AWS credentials failed: %s", exc)
            raise
        self._frozen = frozen
        self._checked_until = 0.0
        return frozen
