"""The DynamoDB cost of session-store policies on replayed traffic: ``python -m bench.cost``."""
