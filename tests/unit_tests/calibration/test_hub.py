"""Tests for Calibrator.from_pretrained and push_to_hub, against a local stub hub.

The stub is a threaded ``http.server`` on 127.0.0.1 that speaks the few
endpoints huggingface_hub uses to create a repository, commit files and
download a snapshot. Nothing leaves the machine.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from langchain_adaptive.calibration import Calibrator, IsotonicCalibrator, PlattCalibrator
from langchain_adaptive.calibration._base import CONFIG_NAME, WEIGHTS_NAME
from langchain_adaptive.errors import CalibrationError
from tests.unit_tests.calibration.conftest import Synthetic

hub = pytest.importorskip("huggingface_hub")

COMMIT = "c0ffee" + "0" * 34
GRID = np.linspace(0.0, 1.0, 51)


class StubHub:
    """Just enough of the Hub's HTTP API for create_repo, upload_folder, snapshot_download."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.calls: list[tuple[str, str, str | None]] = []
        self.created: list[dict[str, Any]] = []
        self.refuse_create = False
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return None

            def _send(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _json(self, code: int, value: Any) -> None:
                self._send(code, json.dumps(value).encode(), {"Content-Type": "application/json"})

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                stub.calls.append(("POST", self.path, self.headers.get("Authorization")))
                if self.path == "/api/repos/create":
                    if stub.refuse_create:
                        return self._json(401, {"error": "Invalid credentials"})
                    request = json.loads(body)
                    stub.created.append(request)
                    return self._json(
                        200, {"url": f"{stub.url}/{request['organization']}/{request['name']}"}
                    )
                if self.path.startswith("/api/validate-yaml"):
                    return self._json(200, {"errors": [], "warnings": []})
                if "/preupload/" in self.path:
                    files = json.loads(body)["files"]
                    return self._json(
                        200,
                        {
                            "files": [
                                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                for f in files
                            ]
                        },
                    )
                if "/commit/" in self.path:
                    for line in body.decode().splitlines():
                        item = json.loads(line)
                        if item["key"] == "file":
                            content = base64.b64decode(item["value"]["content"])
                            stub.files[item["value"]["path"]] = content
                    return self._json(
                        200,
                        {"commitUrl": f"{stub.url}/me/cal/commit/{COMMIT}", "commitOid": COMMIT},
                    )
                return self._json(404, {"error": "not in the stub"})

            def do_GET(self) -> None:
                stub.calls.append((self.command, self.path, self.headers.get("Authorization")))
                parts = self.path.split("?")[0].strip("/").split("/")
                if parts[:2] == ["api", "models"] and parts[2:4] != ["me", "cal"]:
                    headers = {"X-Error-Code": "RepoNotFound", "Content-Type": "application/json"}
                    return self._send(404, b'{"error": "Repository not found"}', headers)
                if parts[:2] == ["api", "models"] and parts[4:5] == ["revision"]:
                    siblings = [{"rfilename": name} for name in stub.files]
                    return self._json(200, {"id": "me/cal", "sha": COMMIT, "siblings": siblings})
                if parts[:2] == ["api", "models"] and parts[4:5] == ["tree"]:
                    return self._json(
                        200,
                        [
                            {"type": "file", "path": name, "size": len(data), "oid": _oid(data)}
                            for name, data in stub.files.items()
                        ],
                    )
                if len(parts) == 5 and parts[2] == "resolve" and parts[4] in stub.files:
                    data = stub.files[parts[4]]
                    headers = {"ETag": f'"{_oid(data)}"', "X-Repo-Commit": COMMIT}
                    return self._send(200, data, headers)
                return self._json(404, {"error": "not in the stub"})

            do_HEAD = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _oid(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


@pytest.fixture
def stub() -> Iterator[StubHub]:
    server = StubHub()
    yield server
    server.close()


@pytest.fixture(scope="module")
def platt(train_data: Synthetic) -> PlattCalibrator:
    return PlattCalibrator(metadata={"policy": "SmolLM2", "prm": "judge"}).fit(
        train_data.raw, None, train_data.successes, train_data.trials
    )


def _same(a: Calibrator, b: Calibrator) -> None:
    np.testing.assert_array_equal(a.predict_quantiles(GRID), b.predict_quantiles(GRID))


def _fake_cache(cache: Path, repo_id: str, calibrator: Calibrator) -> None:
    """The hub cache layout: refs/main names a commit whose snapshot holds the files."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    calibrator.save(repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)


# -- local directories and the offline cache ---------------------------------------------


def test_from_pretrained_reads_a_local_directory(platt: PlattCalibrator, tmp_path: Path) -> None:
    platt.save(tmp_path / "cal")
    _same(Calibrator.from_pretrained(tmp_path / "cal"), platt)
    _same(PlattCalibrator.from_pretrained(str(tmp_path / "cal")), platt)
    with pytest.raises(CalibrationError, match="fitted for policy"):
        Calibrator.from_pretrained(tmp_path / "cal", expect={"policy": "other"})


def test_a_missing_local_path_is_not_sent_to_the_hub(tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match="no calibrator directory"):
        Calibrator.from_pretrained(tmp_path / "missing")
    with pytest.raises(CalibrationError, match="no calibrator directory"):
        Calibrator.from_pretrained("./missing")


def test_from_pretrained_reads_the_offline_cache(platt: PlattCalibrator, tmp_path: Path) -> None:
    _fake_cache(tmp_path, "me/cal", platt)
    loaded = Calibrator.from_pretrained("me/cal", cache_dir=tmp_path, local_files_only=True)
    _same(loaded, platt)
    pinned = Calibrator.from_pretrained(
        "me/cal", revision=COMMIT, cache_dir=tmp_path, local_files_only=True
    )
    _same(pinned, platt)
    with pytest.raises(CalibrationError, match="holds a 'platt' calibrator"):
        IsotonicCalibrator.from_pretrained("me/cal", cache_dir=tmp_path, local_files_only=True)


def test_nothing_cached_offline_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match="not in the local Hugging Face cache") as info:
        Calibrator.from_pretrained("me/never-downloaded", cache_dir=tmp_path, local_files_only=True)
    assert "run once with network access" in str(info.value)


def test_an_invalid_repo_id_is_a_calibration_error(tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match="neither a calibrator directory nor"):
        Calibrator.from_pretrained("not a repo!!", cache_dir=tmp_path, local_files_only=True)


# -- the stub hub ------------------------------------------------------------------------


def test_push_then_download_then_read_offline(
    platt: PlattCalibrator, stub: StubHub, tmp_path: Path
) -> None:
    url = platt.push_to_hub("me/cal", token="hf_test", private=True, endpoint=stub.url)
    assert url.endswith(COMMIT)
    (created,) = stub.created
    assert (created["organization"], created["name"]) == ("me", "cal")
    assert created.get("visibility") == "private" or created.get("private") is True
    assert {"calibrator.json", "calibrator.safetensors", "README.md"} == set(stub.files)
    assert json.loads(stub.files[CONFIG_NAME])["metadata"]["policy"] == "SmolLM2"
    assert 'Calibrator.from_pretrained("me/cal")' in stub.files["README.md"].decode()
    assert all(auth == "Bearer hf_test" for method, _, auth in stub.calls if method == "POST")

    cache = tmp_path / "cache"
    online = Calibrator.from_pretrained(
        "me/cal", cache_dir=cache, endpoint=stub.url, token=False, expect={"policy": "SmolLM2"}
    )
    _same(online, platt)
    downloaded = [path for method, path, _ in stub.calls if method == "GET" and "resolve" in path]
    assert sorted(p.rsplit("/", 1)[1] for p in downloaded) == [CONFIG_NAME, WEIGHTS_NAME]

    stub.close()  # the hub is gone: the cache alone must serve the calibrator
    offline = Calibrator.from_pretrained("me/cal", cache_dir=cache, local_files_only=True)
    _same(offline, platt)


def test_a_refused_push_is_a_calibration_error(platt: PlattCalibrator, stub: StubHub) -> None:
    stub.refuse_create = True
    with pytest.raises(CalibrationError, match="cannot push calibrator to 'me/cal'"):
        platt.push_to_hub("me/cal", token="hf_wrong", endpoint=stub.url)


def test_an_unfitted_calibrator_is_not_pushed(stub: StubHub) -> None:
    with pytest.raises(CalibrationError, match="not fitted"):
        IsotonicCalibrator().push_to_hub("me/cal", token="hf_test", endpoint=stub.url)
    assert stub.calls == []


def test_a_missing_repo_online_is_a_calibration_error(stub: StubHub, tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match="cannot download calibrator 'me/absent'"):
        Calibrator.from_pretrained("me/absent", cache_dir=tmp_path, endpoint=stub.url, token=False)


def test_a_repo_without_calibrator_files_is_named(stub: StubHub, tmp_path: Path) -> None:
    stub.files["README.md"] = b"# not a calibrator"
    with pytest.raises(CalibrationError, match=r"'me/cal' has no calibrator\.json"):
        Calibrator.from_pretrained("me/cal", cache_dir=tmp_path, endpoint=stub.url, token=False)
