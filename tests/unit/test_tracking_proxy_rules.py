"""The tracking proxy's rules: what a job may ask of MLflow through its own proxy.

MLflow's facts (which experiment a run is in, ...) come from a table here; the integration test
(tests/integration/test_tracking_proxy.py) runs the same rules against a real MLflow server.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from theodolite_worker.tracking_proxy.rules import TrackingRequest, TrackingRules, is_streamed
from theodolite_worker.tracking_proxy.scope import (
    Forward,
    JobScope,
    OwnedModels,
    Refusal,
    artifact_root,
)
from theodolite_worker.tracking_proxy.upstream import TrackingProxyError, Upstream

OWN_RUN, OTHER_RUN, FOREIGN_RUN = "a" * 32, "b" * 32, "c" * 32
OWN_EXPERIMENT, SHARED_EXPERIMENT, FOREIGN_EXPERIMENT = "1", "2", "9"
OWN_MODEL, FOREIGN_MODEL, PUBLISHED_MODEL = "m-own", "m-foreign", "m-published"


class Facts:
    """What MLflow would say: runs' experiments, experiment names, logged models, versions."""

    runs = {OWN_RUN: OWN_EXPERIMENT, OTHER_RUN: OWN_EXPERIMENT, FOREIGN_RUN: FOREIGN_EXPERIMENT}
    names = {"mine": OWN_EXPERIMENT, "theirs": FOREIGN_EXPERIMENT}
    models = {
        OWN_MODEL: OWN_EXPERIMENT,
        FOREIGN_MODEL: FOREIGN_EXPERIMENT,
        PUBLISHED_MODEL: FOREIGN_EXPERIMENT,
    }
    # Logged models that a registered version has as its source, with their artifact roots.
    registered = {PUBLISHED_MODEL: f"9/models/{PUBLISHED_MODEL}/artifacts"}
    versions = {"ours": [OTHER_RUN], "theirs": [FOREIGN_RUN], "unlinked": [""]}

    async def run_experiment(self, run_id: str) -> str | None:
        return self.runs.get(run_id)

    async def experiment_id_by_name(self, name: str) -> str | None:
        return self.names.get(name)

    async def logged_model_experiment(self, model_id: str) -> str | None:
        return self.models.get(model_id)

    async def registered_model_runs(self, name: str) -> list[str]:
        return self.versions.get(name, [])

    async def registered_model_root(self, model_id: str) -> str | None:
        return self.registered.get(model_id)


def rules() -> TrackingRules:
    scope = JobScope(
        run_id=OWN_RUN,
        experiment_id=OWN_EXPERIMENT,
        readable_experiments=frozenset({OWN_EXPERIMENT, SHARED_EXPERIMENT}),
        run_artifact_root=f"1/{OWN_RUN}/artifacts",
        readable_artifact_roots=("1", "2"),
    )
    owned = OwnedModels({OWN_MODEL: f"1/models/{OWN_MODEL}/artifacts"})
    return TrackingRules(scope, Facts(), owned)


async def judge(
    method: str, url_path: str, body: dict[str, Any] | None = None, **query: str
) -> Forward | Refusal:
    request = TrackingRequest(method, url_path, tuple(query.items()), body)
    return await rules().judge(request)


def refused(verdict: Forward | Refusal, status: int = 403) -> str:
    assert isinstance(verdict, Refusal), f"forwarded: {verdict}"
    assert verdict.status == status, verdict
    assert verdict.body()["error_code"] in ("PERMISSION_DENIED", "INVALID_PARAMETER_VALUE")
    return verdict.message


@pytest.mark.parametrize(
    ("endpoint", "body"),
    [
        ("runs/log-metric", {"key": "acc", "value": 0.9, "timestamp": 1, "step": 0}),
        ("runs/log-parameter", {"key": "lr", "value": "0.1"}),
        ("runs/log-batch", {"metrics": [], "params": [], "tags": [{"key": "k", "value": "v"}]}),
        ("runs/set-tag", {"key": "note", "value": "v"}),
        ("runs/delete-tag", {"key": "note"}),
        ("runs/log-inputs", {"datasets": []}),
        ("runs/outputs", {"models": [{"model_id": OWN_MODEL, "step": 0}]}),
    ],
)
async def test_a_job_writes_its_own_run_and_no_other(endpoint: str, body: dict[str, Any]) -> None:
    path = f"/api/2.0/mlflow/{endpoint}"
    own = await judge("POST", path, {"run_id": OWN_RUN, **body})
    assert own == Forward(path, body={"run_id": OWN_RUN, **body})
    for other in (OTHER_RUN, FOREIGN_RUN):
        assert other in refused(await judge("POST", path, {"run_id": other, **body}))
        # MLflow takes run_uuid when run_id is missing: the alias is checked too.
        refused(await judge("POST", path, {"run_uuid": other, **body}))
        both = {"run_id": OWN_RUN, "run_uuid": other, **body}
        refused(await judge("POST", path, both), status=400)
    refused(await judge("POST", path, body), status=400)
    for odd in ([OWN_RUN], {"id": OWN_RUN}, 7, None):
        refused(await judge("POST", path, {"run_id": odd, **body}), status=400)


async def test_the_workers_provenance_tags_cannot_be_forged_or_removed() -> None:
    cases: list[tuple[str, dict[str, Any]]] = [
        ("runs/set-tag", {"key": "theodolite.job_id", "value": "someone-else"}),
        ("runs/delete-tag", {"key": "theodolite.attempt"}),
        ("runs/log-batch", {"tags": [{"key": "ok", "value": "1"}, {"key": "theodolite.queue"}]}),
    ]
    for endpoint, body in cases:
        message = refused(
            await judge("POST", f"/api/2.0/mlflow/{endpoint}", {"run_id": OWN_RUN, **body})
        )
        assert "theodolite.* tags are the worker's" in message
    # The graph runner in the job records its steps: those tags are the job's own.
    steps = {"tags": [{"key": "theodolite.step.attack.status", "value": "completed"}]}
    path = "/api/2.0/mlflow/runs/log-batch"
    assert await judge("POST", path, {"run_id": OWN_RUN, **steps}) == Forward(
        path, body={"run_id": OWN_RUN, **steps}
    )


async def test_a_job_cannot_end_its_run_but_ending_it_does_not_fail_the_job() -> None:
    path = "/api/2.0/mlflow/runs/update"
    end = {"run_id": OWN_RUN, "status": "FINISHED", "end_time": 5, "run_name": "renamed"}
    assert await judge("POST", path, end) == Forward(
        path, body={"run_id": OWN_RUN, "run_name": "renamed"}
    )
    running = {"run_id": OWN_RUN, "status": "RUNNING"}
    assert await judge("POST", path, running) == Forward(path, body=running)
    refused(await judge("POST", path, {"run_id": OTHER_RUN, "status": "FAILED"}))


@pytest.mark.parametrize(
    ("method", "endpoint", "body"),
    [
        ("POST", "runs/create", {"experiment_id": OWN_EXPERIMENT}),
        ("POST", "runs/delete", {"run_id": OWN_RUN}),
        ("POST", "runs/restore", {"run_id": OWN_RUN}),
        ("POST", "experiments/create", {"name": "mine-too"}),
        ("POST", "experiments/delete", {"experiment_id": OWN_EXPERIMENT}),
        ("POST", "experiments/set-experiment-tag", {"experiment_id": OWN_EXPERIMENT}),
        ("POST", "experiments/search", {"max_results": 10}),
        ("GET", "experiments/search", None),
        ("DELETE", "registered-models/delete", {"name": "ours"}),
        ("POST", "registered-models/alias", {"name": "ours", "alias": "prod", "version": "1"}),
        ("POST", "model-versions/transition-stage", {"name": "ours", "version": "1"}),
        ("DELETE", "logged-models/" + OWN_MODEL, None),
        ("POST", "traces", {}),
        ("POST", "webhooks", {}),
    ],
)
async def test_everything_off_the_list_is_refused_naming_it(
    method: str, endpoint: str, body: dict[str, Any] | None
) -> None:
    message = refused(await judge(method, f"/api/2.0/mlflow/{endpoint}", body))
    assert message.startswith("theodolite tracking proxy: ")


async def test_only_the_rest_api_is_served() -> None:
    for path in ("/", "/ajax-api/2.0/mlflow/runs/get", "/graphql", "/get-artifact", "/health"):
        refused(await judge("GET", path, run_id=OWN_RUN))
    for path in (
        "/api/2.0/mlflow/runs//get",
        "/api/2.0/mlflow/runs/../runs/delete",
        "/api/2.0/mlflow/./runs/get",
    ):
        refused(await judge("POST", path, {"run_id": OWN_RUN}), status=400)


async def test_logged_models_are_created_in_its_experiment_from_its_run() -> None:
    path = "/api/2.0/mlflow/logged-models"
    created = await judge("POST", path, {"experiment_id": OWN_EXPERIMENT, "source_run_id": OWN_RUN})
    assert isinstance(created, Forward) and created.records_logged_model
    assert isinstance(await judge("POST", path, {"experiment_id": OWN_EXPERIMENT}), Forward)
    refused(await judge("POST", path, {"experiment_id": SHARED_EXPERIMENT}))
    refused(
        await judge("POST", path, {"experiment_id": OWN_EXPERIMENT, "source_run_id": OTHER_RUN})
    )


async def test_only_the_logged_models_it_created_are_changed() -> None:
    for method, rest in [
        ("PATCH", ""),
        ("PATCH", "/tags"),
        ("POST", "/params"),
        ("DELETE", "/tags/k"),
    ]:
        own = await judge(method, f"/api/2.0/mlflow/logged-models/{OWN_MODEL}{rest}", {})
        assert isinstance(own, Forward), (method, rest)
        refused(await judge(method, f"/api/2.0/mlflow/logged-models/{FOREIGN_MODEL}{rest}", {}))
    assert isinstance(await judge("GET", f"/api/2.0/mlflow/logged-models/{OWN_MODEL}"), Forward)
    refused(await judge("GET", f"/api/2.0/mlflow/logged-models/{FOREIGN_MODEL}"))


async def test_a_runs_outputs_are_its_own_logged_models() -> None:
    path = "/api/2.0/mlflow/runs/outputs"
    foreign = {"run_id": OWN_RUN, "models": [{"model_id": FOREIGN_MODEL, "step": 0}]}
    assert "not created by this job" in refused(await judge("POST", path, foreign))
    refused(await judge("POST", path, {"run_id": OWN_RUN, "models": "m-own"}), status=400)


def test_a_created_logged_model_is_remembered_from_mlflows_answer() -> None:
    owned = OwnedModels()
    owned.remember(
        {
            "model": {
                "info": {
                    "model_id": "m-1",
                    "artifact_uri": "mlflow-artifacts:/1/models/m-1/artifacts",
                }
            }
        }
    )
    owned.remember({"unexpected": True})
    owned.remember(["not", "an", "object"])
    assert owned.roots == {"m-1": "1/models/m-1/artifacts"}


ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"


async def test_uploads_stay_in_its_run_and_its_logged_models() -> None:
    for path in (
        f"1/{OWN_RUN}/artifacts/report.json",
        f"1/{OWN_RUN}/artifacts/plots/roc.png",
        f"1/models/{OWN_MODEL}/artifacts/MLmodel",
    ):
        verdict = await judge("PUT", f"{ARTIFACTS}/{path}")
        assert verdict == Forward(f"{ARTIFACTS}/{path}", streamed=True)
    for path in (
        f"1/{OTHER_RUN}/artifacts/report.json",
        f"1/{OWN_RUN}/artifacts",  # the root itself is not a file in it
        f"1/{OWN_RUN}/metadata.json",
        f"1/models/{FOREIGN_MODEL}/artifacts/MLmodel",
        f"2/{OWN_RUN}/artifacts/x",
    ):
        assert "outside what this job may write" in refused(
            await judge("PUT", f"{ARTIFACTS}/{path}")
        )
    for sneaky in (
        f"1/{OWN_RUN}/artifacts/../../{OTHER_RUN}/artifacts/x",
        f"1/{OWN_RUN}/artifacts//x",
        f"1/{OWN_RUN}/artifacts/a\\..\\x",
    ):
        refused(await judge("PUT", f"{ARTIFACTS}/{sneaky}"), status=400)
    multipart = f"/api/2.0/mlflow-artifacts/mpu/create/1/{OWN_RUN}/artifacts/big.bin"
    assert isinstance(await judge("POST", multipart), Forward)
    refused(await judge("POST", f"/api/2.0/mlflow-artifacts/mpu/create/1/{OTHER_RUN}/artifacts/b"))


async def test_downloads_and_listings_stay_in_readable_experiments() -> None:
    for path in (
        f"1/{OTHER_RUN}/artifacts/model.pkl",
        "2/x/artifacts/y",
        "1/models/m-9/artifacts/MLmodel",
    ):
        assert isinstance(await judge("GET", f"{ARTIFACTS}/{path}"), Forward)
    refused(await judge("GET", f"{ARTIFACTS}/9/{FOREIGN_RUN}/artifacts/model.pkl"))
    refused(await judge("GET", f"{ARTIFACTS}/10/x"))  # 1 is a prefix of 10 as a string only
    assert isinstance(await judge("GET", ARTIFACTS, path="2"), Forward)
    refused(await judge("GET", ARTIFACTS, path="9/x"))
    refused(await judge("GET", ARTIFACTS))  # a listing of the whole store
    refused(await judge("DELETE", f"{ARTIFACTS}/1/{OWN_RUN}/artifacts/report.json"))
    refused(await judge("GET", f"/api/2.0/mlflow-artifacts/presigned/1/{OWN_RUN}/artifacts/x"))
    assert is_streamed(f"{ARTIFACTS}/1/x") and not is_streamed("/api/2.0/mlflow/runs/get")


async def test_runs_are_read_in_readable_experiments_only() -> None:
    for endpoint in ("runs/get", "metrics/get-history", "artifacts/list"):
        path = f"/api/2.0/mlflow/{endpoint}"
        assert isinstance(await judge("GET", path, run_id=OWN_RUN, metric_key="m"), Forward)
        assert isinstance(await judge("GET", path, run_uuid=OTHER_RUN), Forward)
        refused(await judge("GET", path, run_id=FOREIGN_RUN))
        refused(await judge("GET", path, run_id="no-such-run"))
    twice = TrackingRequest(
        "GET", "/api/2.0/mlflow/runs/get", (("run_id", OWN_RUN), ("run_id", FOREIGN_RUN))
    )
    refused(await rules().judge(twice), status=400)
    bulk = "/api/2.0/mlflow/metrics/get-history-bulk-interval"
    readable = (("run_ids", OWN_RUN), ("run_ids", OTHER_RUN), ("metric_key", "m"))
    assert isinstance(await rules().judge(TrackingRequest("GET", bulk, readable)), Forward)
    one_foreign = (("run_ids", OWN_RUN), ("run_ids", FOREIGN_RUN))
    refused(await rules().judge(TrackingRequest("GET", bulk, one_foreign)))


async def test_searches_and_experiments_within_readable_experiments() -> None:
    for endpoint in ("runs/search", "logged-models/search"):
        path = f"/api/2.0/mlflow/{endpoint}"
        assert isinstance(await judge("POST", path, {"experiment_ids": ["1", "2"]}), Forward)
        refused(await judge("POST", path, {"experiment_ids": ["1", "9"]}))
        refused(await judge("POST", path, {"filter": "tags.x = 'y'"}))
        refused(await judge("POST", path, {"experiment_ids": [["1"]]}), status=400)
    get = "/api/2.0/mlflow/experiments/get"
    assert isinstance(await judge("GET", get, experiment_id="2"), Forward)
    refused(await judge("GET", get, experiment_id="9"))
    by_name = "/api/2.0/mlflow/experiments/get-by-name"
    assert isinstance(await judge("GET", by_name, experiment_name="mine"), Forward)
    refused(await judge("GET", by_name, experiment_name="theirs"))


async def test_the_registry_is_read_and_versions_come_from_its_own_models() -> None:
    for endpoint in (
        "registered-models/get",
        "model-versions/get-download-uri",
        "model-versions/search",
    ):
        assert isinstance(await judge("GET", f"/api/2.0/mlflow/{endpoint}", name="theirs"), Forward)
    create = "/api/2.0/mlflow/model-versions/create"
    mine = {"name": "ours", "source": f"models:/{OWN_MODEL}", "model_id": OWN_MODEL}
    assert isinstance(await judge("POST", create, mine), Forward)
    new_name = {"name": "brand-new", "source": f"runs:/{OWN_RUN}/model", "run_id": OWN_RUN}
    assert isinstance(await judge("POST", create, new_name), Forward)
    from_artifacts = {"name": "ours", "source": f"mlflow-artifacts:/1/{OWN_RUN}/artifacts/model"}
    assert isinstance(await judge("POST", create, from_artifacts), Forward)
    for body in (
        {**mine, "name": "theirs"},  # a version added to another group's model
        {**mine, "name": "unlinked"},
        {"name": "ours", "source": f"models:/{FOREIGN_MODEL}"},
        {"name": "ours", "source": f"runs:/{OTHER_RUN}/model"},
        {"name": "ours", "source": f"mlflow-artifacts:/1/{OWN_RUN}/artifacts/../../{OTHER_RUN}"},
        {**mine, "run_id": OTHER_RUN},
        {**mine, "model_id": FOREIGN_MODEL},
    ):
        refused(await judge("POST", create, body))


async def test_a_registered_model_is_read_from_any_experiment_and_never_written() -> None:
    """A later job attacks a model another job registered (``models:/<name>/<version>``)."""
    published = f"{ARTIFACTS}/9/models/{PUBLISHED_MODEL}/artifacts"
    judging = rules()
    for request in (
        TrackingRequest("GET", f"/api/2.0/mlflow/logged-models/{PUBLISHED_MODEL}"),
        TrackingRequest("GET", ARTIFACTS, (("path", f"9/models/{PUBLISHED_MODEL}/artifacts"),)),
        TrackingRequest("GET", f"{published}/MLmodel"),
    ):
        assert isinstance(await judging.judge(request), Forward), request
    refused(await judging.judge(TrackingRequest("PUT", f"{published}/MLmodel")))
    refused(
        await judging.judge(
            TrackingRequest("PATCH", f"/api/2.0/mlflow/logged-models/{PUBLISHED_MODEL}", body={})
        )
    )
    # Only that model's folder: not the rest of its experiment.
    refused(await judging.judge(TrackingRequest("GET", f"{ARTIFACTS}/9/{FOREIGN_RUN}/artifacts/x")))
    unpublished = f"{ARTIFACTS}/9/models/{FOREIGN_MODEL}/artifacts/MLmodel"
    refused(await judging.judge(TrackingRequest("GET", unpublished)))
    # A path that names the published model inside another folder is not its folder.
    elsewhere = f"{ARTIFACTS}/9/{FOREIGN_RUN}/artifacts/models/{PUBLISHED_MODEL}/artifacts/MLmodel"
    refused(await judging.judge(TrackingRequest("GET", elsewhere)))


def test_a_scope_always_reads_its_own_experiment() -> None:
    with pytest.raises(ValueError, match="own experiment"):
        JobScope(OWN_RUN, OWN_EXPERIMENT, frozenset({"2"}), None)


async def test_a_scope_from_the_runs_artifact_uri_asks_mlflow_nothing() -> None:
    """The worker made the run and knows its artifact URI: no lookup lies on the job's start."""
    async with aiohttp.ClientSession() as session:
        nowhere = Upstream("http://127.0.0.1:9", session)  # nothing listens there
        scope = await nowhere.job_scope(
            OWN_RUN, OWN_EXPERIMENT, frozenset(), f"mlflow-artifacts:/1/{OWN_RUN}/artifacts"
        )
        assert scope.run_artifact_root == f"1/{OWN_RUN}/artifacts"
        assert scope.readable_artifact_roots == ("1",)
        assert await nowhere.run_experiment(OWN_RUN) == OWN_EXPERIMENT
        with pytest.raises(TrackingProxyError, match="did not answer"):
            await nowhere.job_scope(OWN_RUN, OWN_EXPERIMENT, frozenset({"2"}), None)


def test_artifact_roots_of_proxied_uris_only() -> None:
    assert artifact_root("mlflow-artifacts:/1/abc/artifacts") == "1/abc/artifacts"
    assert artifact_root("mlflow-artifacts://mlflow:5000/1/abc/artifacts") == "1/abc/artifacts"
    assert artifact_root("s3://bucket/1/abc/artifacts") is None
    assert artifact_root("mlflow-artifacts:/") is None
    assert artifact_root(None) is None
