"""cyclicsess: an async session store on Amazon DynamoDB.

::

    async with SessionStore("sessions") as store:
        sid = await store.create({"user": "ada"})
        session = await store.get(sid)

Everything public is importable from here; the framework adapters live in
``cyclicsess.aiohttp``, ``cyclicsess.asgi`` and ``cyclicsess.contrib.aiohttp_session``.
"""

from importlib.metadata import PackageNotFoundError, version

from ._connection import open_client
from ._dynamo import DynamoClient, RetryPolicy
from ._item import ITEM_SIZE_LIMIT, SessionRecord
from ._sigv4 import Credentials
from .codec import Codec, JsonCodec, MsgpackCodec
from .cookies import CookieOp, CookieSettings
from .errors import (
    AccessDenied,
    CodecError,
    ConditionalCheckFailed,
    ConfigurationError,
    CyclicSessError,
    DecodeError,
    DynamoDBError,
    EncodeError,
    ReplicatedWriteConflict,
    ResourceInUse,
    ResourceNotFound,
    ServerError,
    SessionConflict,
    SessionError,
    SessionMoveIncomplete,
    SessionNotFound,
    SessionTooLarge,
    SessionUnavailable,
    StoreUnavailable,
    Throttled,
    ValidationError,
)
from .ids import CookieSigner, is_well_formed, new_session_id
from .lifecycle import RequestSession, SessionConfig
from .session import Commit, Session
from .store import Clock, SessionStore

try:
    __version__ = version("cyclicsess")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "ITEM_SIZE_LIMIT",
    "AccessDenied",
    "Clock",
    "Codec",
    "CodecError",
    "Commit",
    "ConditionalCheckFailed",
    "ConfigurationError",
    "CookieOp",
    "CookieSettings",
    "CookieSigner",
    "Credentials",
    "CyclicSessError",
    "DecodeError",
    "DynamoClient",
    "DynamoDBError",
    "EncodeError",
    "JsonCodec",
    "MsgpackCodec",
    "ReplicatedWriteConflict",
    "RequestSession",
    "ResourceInUse",
    "ResourceNotFound",
    "RetryPolicy",
    "ServerError",
    "Session",
    "SessionConfig",
    "SessionConflict",
    "SessionError",
    "SessionMoveIncomplete",
    "SessionNotFound",
    "SessionRecord",
    "SessionStore",
    "SessionTooLarge",
    "SessionUnavailable",
    "StoreUnavailable",
    "Throttled",
    "ValidationError",
    "__version__",
    "is_well_formed",
    "new_session_id",
    "open_client",
]
