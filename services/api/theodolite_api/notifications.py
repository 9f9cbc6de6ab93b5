"""Notifications: how the api tells the outside what happened to jobs. As the lifespan starts
them: this replica's live hub (server-sent event streams), the webhook dispatcher on its durable
queue and the webhook sender."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import httpx

from theodolite import topology
from theodolite_api.auth.worker_keys import event_signers, worker_secret
from theodolite_api.state import AppState
from theodolite_api.streams.job_stream import StreamSources
from theodolite_api.streams.live import LiveHub
from theodolite_api.streams.senders import ClaimHolders
from theodolite_api.webhooks.dispatcher import WebhookDispatcher
from theodolite_api.webhooks.sender import WebhookSender

USER_AGENT = "Theodolite-Webhooks/0.1 (+https://www.standardwebhooks.com)"


@dataclass
class Notifications:
    hub: LiveHub
    stream_sources: StreamSources
    dispatcher: WebhookDispatcher
    sender: WebhookSender


@asynccontextmanager
async def notifications(state: AppState) -> AsyncIterator[Notifications]:
    """Start everything; stop it on exit."""
    settings = state.settings
    signers = event_signers(worker_secret(settings))
    async with AsyncExitStack() as stack:
        hub = LiveHub(
            state.broker,
            signers=signers,
            holders=ClaimHolders(state.sessions),
            backlog=settings.events.backlog,
        )
        await hub.start()
        stack.push_async_callback(hub.close)
        http = await stack.enter_async_context(
            httpx.AsyncClient(
                # Never follow a redirect: the URL was checked, where it points to was not.
                follow_redirects=False,
                timeout=settings.webhooks.timeout_s,
                limits=httpx.Limits(max_connections=settings.webhooks.concurrency * 2),
                headers={"user-agent": USER_AGENT},
            )
        )
        sender = WebhookSender(sessions=state.sessions, http=http, settings=settings.webhooks)
        dispatcher = WebhookDispatcher(
            sessions=state.sessions,
            settings=settings.webhooks,
            signers=signers,
            on_new_deliveries=sender.notify,
        )
        queue = await state.broker.declare_quorum_queue(topology.WEBHOOK_EVENTS_QUEUE)
        for pattern in topology.WEBHOOK_EVENTS_BINDINGS:
            await queue.bind(topology.EVENTS_EXCHANGE.name, routing_key=pattern)
        await stack.enter_async_context(sender)
        consumption = await state.broker.consume(
            topology.WEBHOOK_EVENTS_QUEUE, dispatcher.consumer, prefetch=16
        )
        stack.push_async_callback(consumption.close)
        yield Notifications(
            hub=hub,
            stream_sources=StreamSources(
                sessions=state.sessions, hub=hub, settings=settings.events
            ),
            dispatcher=dispatcher,
            sender=sender,
        )
