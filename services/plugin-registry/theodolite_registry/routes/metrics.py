"""``GET /metrics``: Prometheus' scrape (the registry's port is reached only inside the
deployment: no key to hold)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from theodolite.web.observed import metrics_response

router = APIRouter(include_in_schema=False)


@router.get("/metrics")
async def metrics() -> Response:
    """This replica's request and publish metrics."""
    return metrics_response()
