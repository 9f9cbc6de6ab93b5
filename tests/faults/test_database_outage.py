"""When PostgreSQL is briefly down the api answers 503 (not 500), and recovers by itself."""

from __future__ import annotations

import contextlib
import time

import httpx
import pytest

from tests.fixtures.postgres_cluster import PostgresCluster
from theodolite.devstack import (
    _rabbitmqctl,
    free_ports,
    isolated_config,
    start_api,
    start_object_store,
    stop_process,
)
from theodolite.devstack.services import bootstrap_admin

pytestmark = [pytest.mark.faults]


def test_the_api_answers_503_while_the_database_is_down_and_recovers(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    (pg_port,) = free_ports(1)
    cluster = PostgresCluster.create(pg_port)
    config = isolated_config(tmp_path_factory.mktemp("dbdown"))
    config.postgres_url = cluster.url
    vhost = config.broker_url.rsplit("/", 1)[1]
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    stack_exit = contextlib.ExitStack()
    try:
        start_object_store(config)
        start_api(config)
        bootstrap_admin(config)  # the key every /api/v1 request needs
        api = stack_exit.enter_context(
            httpx.Client(base_url=config.api_url, headers=config.auth_headers(), timeout=30)
        )
        assert api.get("/api/v1/experiments").status_code == 200

        cluster.stop()
        during = [api.get("/api/v1/experiments"), api.post("/api/v1/queues", json={"name": "q1"})]
        ready = api.get("/readyz")
        assert [r.status_code for r in during] == [503, 503]
        assert during[0].headers["content-type"] == "application/problem+json"
        assert ready.status_code == 503 and ready.json()["problems"][0]["field"] == "database"

        cluster.start()
        deadline = time.monotonic() + 30
        while api.get("/api/v1/experiments").status_code != 200:
            assert time.monotonic() < deadline, "the api did not recover"
            time.sleep(0.5)
        assert api.get("/readyz").status_code == 200
        assert api.post("/api/v1/queues", json={"name": "q1"}).status_code == 201
    finally:
        stack_exit.close()
        stop_process(config, "api")
        stop_process(config, "s3")
        _rabbitmqctl("delete_vhost", vhost)
        cluster.remove()
