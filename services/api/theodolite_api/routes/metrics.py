"""``GET /metrics``: Prometheus' scrape, served by the internal listener only (scrapers hold no
API key; the public port never shows the deployment's state)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from theodolite.web.observed import metrics_response
from theodolite_api.deps import StateDep
from theodolite_api.observability.metrics import read_snapshot, scrape_state

router = APIRouter(include_in_schema=False)


@router.get("/metrics")
async def metrics(state: StateDep) -> Response:
    """This replica's request and job metrics, and the deployment's state read now."""
    return metrics_response(scrape_state(await read_snapshot(state)))
