"""Adapters for other libraries' session APIs.

Each module here imports the library it adapts; ``import cyclicsess`` imports
none of them. Install the matching extra, e.g. ``cyclicsess[aiohttp-session]``
for :mod:`cyclicsess.contrib.aiohttp_session`.
"""
