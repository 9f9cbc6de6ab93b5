"""Webhooks (Standard Webhooks): subscriptions per experiment and per-job callbacks, delivered
off the request path by a dispatcher (events -> delivery rows) and a sender (rows -> HTTP)."""
