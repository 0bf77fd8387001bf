"""A real MLflow tracking server process for tests: MLflow's REST API (the part LayerLab's client uses) over
HTTP, backed by MLflow's own SQLAlchemy tracking store.

``mlflow server`` needs the full ``mlflow`` package (Flask); the test environment has ``mlflow-skinny``, which
holds the REST client, the protobuf messages and the SQLAlchemy store but no server. This module serves those
messages with the standard library's HTTP server, so a test can kill the process (an outage) and start it
again on the same port and database. Artefacts are written by the client straight into the server's artefact
root (a local folder), as with ``mlflow server --default-artifact-root`` and no proxy. Run as::

    python tests/runs/mlflow_http_server.py --port 5123 --db sqlite:////tmp/m.db --artifacts /tmp/art
"""

from __future__ import annotations

import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from mlflow.entities import Metric, Param, RunStatus, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST
from mlflow.protos.service_pb2 import MlflowService
from mlflow.utils.proto_json_utils import message_to_json, parse_dict
from mlflow.utils.rest_utils import extract_all_api_info_for_service

_ENDPOINTS = {path: cls for cls, infos in extract_all_api_info_for_service(MlflowService, "/api/2.0").items()
              for path, _ in infos}


def _handlers(store):
    def get_experiment_by_name(req, resp):
        exp = store.get_experiment_by_name(req.experiment_name)
        if exp is None:
            raise MlflowException(f"no experiment {req.experiment_name!r}", error_code=RESOURCE_DOES_NOT_EXIST)
        resp.experiment.MergeFrom(exp.to_proto())

    def create_experiment(req, resp):
        resp.experiment_id = store.create_experiment(req.name, req.artifact_location or None,
                                                     [RunTag(t.key, t.value) for t in req.tags])

    def get_experiment(req, resp):
        resp.experiment.MergeFrom(store.get_experiment(req.experiment_id).to_proto())

    def search_runs(req, resp):
        runs = store.search_runs(list(req.experiment_ids), req.filter, req.run_view_type or ViewType.ACTIVE_ONLY,
                                 req.max_results or 1000, list(req.order_by), req.page_token or None)
        resp.runs.extend(r.to_proto() for r in runs)
        if runs.token:
            resp.next_page_token = runs.token

    def create_run(req, resp):
        run = store.create_run(req.experiment_id, req.user_id, req.start_time,
                               [RunTag(t.key, t.value) for t in req.tags], req.run_name or None)
        resp.run.MergeFrom(run.to_proto())

    def update_run(req, resp):
        status = req.status if isinstance(req.status, str) else RunStatus.to_string(req.status)
        info = store.update_run_info(req.run_id or req.run_uuid, RunStatus.from_string(status),
                                     req.end_time or None, req.run_name or None)
        resp.run_info.MergeFrom(info.to_proto())

    def log_batch(req, resp):
        store.log_batch(req.run_id, [Metric.from_proto(m) for m in req.metrics],
                        [Param.from_proto(p) for p in req.params], [RunTag.from_proto(t) for t in req.tags])

    def log_param(req, resp):
        store.log_param(req.run_id or req.run_uuid, Param(req.key, req.value))

    def log_metric(req, resp):
        store.log_metric(req.run_id or req.run_uuid, Metric(req.key, req.value, req.timestamp, req.step))

    def set_tag(req, resp):
        store.set_tag(req.run_id or req.run_uuid, RunTag(req.key, req.value))

    def delete_run(req, resp):
        store.delete_run(req.run_id)

    def get_run(req, resp):
        resp.run.MergeFrom(store.get_run(req.run_id or req.run_uuid).to_proto())

    def get_metric_history(req, resp):
        hist = store.get_metric_history(req.run_id or req.run_uuid, req.metric_key,
                                        max_results=req.max_results or None, page_token=req.page_token or None)
        resp.metrics.extend(m.to_proto() for m in hist)
        if getattr(hist, "token", None):
            resp.next_page_token = hist.token

    return {"GetExperimentByName": get_experiment_by_name, "CreateExperiment": create_experiment,
            "GetExperiment": get_experiment, "SearchRuns": search_runs, "CreateRun": create_run,
            "UpdateRun": update_run, "LogBatch": log_batch, "LogParam": log_param, "LogMetric": log_metric,
            "SetTag": set_tag, "DeleteRun": delete_run, "GetRun": get_run, "GetMetricHistory": get_metric_history}


def serve(port: int, db: str, artifacts: str) -> None:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(db, artifacts)
    handlers = _handlers(store)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet
            pass

        def _answer(self, code: int, body: str) -> None:
            data = body.encode("utf-8")
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, body: dict) -> None:
            path = urlsplit(self.path).path
            if path == "/health":
                return self._answer(200, '"OK"')
            cls = _ENDPOINTS.get(path)
            handler = handlers.get(cls.__name__) if cls is not None else None
            if handler is None:
                return self._answer(404, json.dumps({"error_code": "ENDPOINT_NOT_FOUND", "message": path}))
            req, resp = cls(), cls.Response()
            try:
                parse_dict(body, req)
                handler(req, resp)
            except MlflowException as e:
                print(f"{path}: {e}", file=sys.stderr, flush=True)
                return self._answer(e.get_http_status_code(), e.serialize_as_json())
            except Exception as e:  # a bug here: say which, as a server would
                import traceback

                traceback.print_exc()
                return self._answer(500, json.dumps({"error_code": "INTERNAL_ERROR", "message": repr(e)}))
            self._answer(200, message_to_json(resp))

        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            self._handle({k: v if len(v) > 1 or k.endswith("_ids") else v[0] for k, v in query.items()})

        def do_POST(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            self._handle(json.loads(self.rfile.read(n) or b"{}"))

        do_PATCH = do_POST

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--artifacts", required=True)
    a = p.parse_args()
    sys.exit(serve(a.port, a.db, a.artifacts))
