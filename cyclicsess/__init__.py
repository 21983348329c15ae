"""cyclicsess: an async session store on Amazon DynamoDB.

::

    async with SessionStore("sessions") as store:
        sid = await store.create({"user": "ada"})
        session = await store.get(sid)

Everything public is importable from here.
"""

from importlib.metadata import PackageNotFoundError, version

from ._connection import open_client
from ._dynamo import DynamoClient, RetryPolicy
from ._item import ITEM_SIZE_LIMIT, SessionRecord
from ._sigv4 import Credentials
from .codec import Codec, JsonCodec, MsgpackCodec
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
    SessionNotFound,
    SessionTooLarge,
    StoreUnavailable,
    Throttled,
    ValidationError,
)
from .ids import CookieSigner, is_well_formed, new_session_id
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
    "ConditionalCheckFailed",
    "ConfigurationError",
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
    "ResourceInUse",
    "ResourceNotFound",
    "RetryPolicy",
    "ServerError",
    "SessionConflict",
    "SessionError",
    "SessionNotFound",
    "SessionRecord",
    "SessionStore",
    "SessionTooLarge",
    "StoreUnavailable",
    "Throttled",
    "ValidationError",
    "__version__",
    "is_well_formed",
    "new_session_id",
    "open_client",
]
