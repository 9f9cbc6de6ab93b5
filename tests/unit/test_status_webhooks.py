"""Webhook signatures (checked against the Standard Webhooks reference library), retry policy."""

import time
from datetime import UTC, datetime

import httpx
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from theodolite_api.settings import WebhookSettings
from theodolite_api.webhooks.callback_urls import new_webhook_secret
from theodolite_api.webhooks.sender import is_retryable, retry_after_s, retry_delay_s, webhook_id
from theodolite_api.webhooks.signing import signature, signed_headers


def test_signatures_verify_with_the_reference_library() -> None:
    secret = new_webhook_secret()
    body = '{"type":"job.succeeded","data":{"job_id":"x"}}'
    now = int(time.time())
    headers = signed_headers(secret, "msg_1", now, body)
    assert Webhook(secret).verify(body, headers)["type"] == "job.succeeded"
    expected = Webhook(secret).sign("msg_1", datetime.fromtimestamp(now, UTC), body)
    assert headers["webhook-signature"] == expected == signature(secret, "msg_1", now, body)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_webhook_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace("succeeded", "failed"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, {**headers, "webhook-id": "msg_2"})


def test_webhook_ids_are_stable() -> None:
    import uuid

    delivery = uuid.UUID("12345678123456781234567812345678")
    assert webhook_id(delivery) == webhook_id(delivery) == "msg_12345678123456781234567812345678"


def test_what_is_retried() -> None:
    assert is_retryable(None)  # no answer: timeout or connection error
    assert is_retryable(429) and is_retryable(500) and is_retryable(503)
    assert not any(is_retryable(code) for code in (301, 400, 401, 404, 410, 422))


def test_backoff_doubles_with_jitter_and_a_cap() -> None:
    settings = WebhookSettings(retry_base_s=2.0, retry_max_delay_s=30.0)
    for attempts, base in ((1, 2.0), (2, 4.0), (3, 8.0)):
        for _ in range(20):
            assert base * 0.8 <= retry_delay_s(settings, attempts) <= base * 1.2
    assert retry_delay_s(settings, 20) == 30.0


def test_retry_after_is_read_in_seconds_or_as_a_date() -> None:
    assert retry_after_s(httpx.Response(429, headers={"retry-after": "7"})) == 7.0
    date = httpx.Response(503, headers={"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert retry_after_s(date) == 0.0  # in the past
    assert retry_after_s(httpx.Response(503, headers={"retry-after": "soon"})) is None
    assert retry_after_s(httpx.Response(503)) is None
