"""`landmark serve`: the REST API answers before the page has loaded; the page is mounted once Gradio has imported;
--api-only never imports Gradio; /docs works offline; a wrong method on an API path is a JSON 405."""

from __future__ import annotations

import threading
import time

from starlette.testclient import TestClient

from landmark_lib.serve import server

from helpers import run_python


def test_the_api_answers_while_the_page_loads_then_the_page_is_mounted(service, monkeypatch) -> None:
    loaded = threading.Event()
    real = server._build_page

    def slow_page(service):
        loaded.wait(30)  # Gradio still importing
        return real(service)

    monkeypatch.setattr(server, "_build_page", slow_page)
    lines = []
    with TestClient(server.staged_app(service, log=lines.append)) as client:
        assert client.get("/v1/health").json()["status"] == "ok"
        waiting = client.get("/")
        assert waiting.status_code == 503 and waiting.headers["retry-after"] == "1"
        assert 'http-equiv="refresh"' in waiting.text and "REST API already" in waiting.text
        loaded.set()
        deadline = time.monotonic() + 60
        while client.get("/").status_code == 503:
            assert time.monotonic() < deadline, "the page was never mounted"
            time.sleep(0.05)
        page = client.get("/")
        assert page.status_code == 200 and "gradio" in page.text.lower()
        assert client.get("/config").status_code == 200  # Gradio's own routes answer under the mount
    assert lines and lines[0].startswith("page ready after")


def test_wrong_method_and_unknown_api_paths_answer_json(service) -> None:
    with TestClient(server.staged_app(service, api_only=True)) as client:
        wrong = client.get("/v1/tag")
        assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
        assert wrong.json() == {"detail": "GET is not allowed on /v1/tag; use POST."}
        missing = client.get("/v1/nothing")
        assert missing.status_code == 404 and "see /docs" in missing.json()["detail"]


def test_docs_are_served_from_local_files(service) -> None:
    with TestClient(server.staged_app(service, api_only=True)) as client:
        docs = client.get("/docs")
        assert docs.status_code == 200 and "/docs/assets/swagger-ui-bundle.js" in docs.text
        assert "http://" not in docs.text and "https://" not in docs.text  # nothing from a CDN
        script = client.get("/docs/assets/swagger-ui-bundle.js")
        assert script.status_code == 200 and len(script.content) > 100_000
        assert client.get("/docs/assets/swagger-ui.css").status_code == 200


API_ONLY = """
import sys
from starlette.testclient import TestClient
from landmark_lib.cli import main
from landmark_lib.serve import server

def serve(service, host, port, share=False, api_only=False):
    with TestClient(server.staged_app(service, api_only)) as client:
        print(client.get("/v1/health").json()["status"], client.get("/").status_code)

server.serve = serve
assert main(["serve", "--model", sys.argv[1], "--api-only"]) == 0
print("gradio" in sys.modules)
"""


def test_api_only_never_imports_gradio(model_dir) -> None:
    result = run_python(API_ONLY, str(model_dir))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-3:] == ["ok", "404", "False"]
