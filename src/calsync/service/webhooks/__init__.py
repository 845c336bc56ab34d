"""Webhooks: a tenant's subscriptions (``manage``), their signed messages (``signing``) and
the worker's delivery of them (``delivery``)."""
