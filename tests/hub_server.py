"""A Hugging Face Hub server on 127.0.0.1 for push tests.

It speaks the part of the Hub HTTP API that ``huggingface_hub`` 1.33 uses
for ``create_repo``, ``create_commit`` and ``create_tag`` with the legacy
LFS transfer (the client's Xet transfer is turned off with
``HF_HUB_DISABLE_XET=1``):

- ``POST /api/repos/create``: JSON ``{name, organization, type, visibility}``;
- ``POST /api/<type>s/<repo>/preupload/<revision>``: chooses ``lfs`` or
  ``regular`` per file, as the Hub does from the file's extension;
- ``POST /<type>s/<repo>.git/info/lfs/objects/batch``: returns a basic
  transfer upload URL per object;
- ``PUT /lfs-upload/<oid>``: stores the object after checking its SHA-256;
- ``POST /api/<type>s/<repo>/commit/<revision>``: NDJSON of a header and
  ``file`` (base64) or ``lfsFile`` (SHA-256 reference) lines;
- ``POST /api/<type>s/<repo>/tag/<revision>``: JSON ``{tag}``;
- ``POST /api/validate-yaml``: checks the YAML header of a ``README.md``.

Other ``GET`` requests (the client's optional registry look-ups) get 404.

Every request must carry ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
LFS_SUFFIXES = (".tar", ".parquet", ".png", ".mp4", ".npy")


@dataclass
class HubState:
    """What the server has received: repositories, files, tags and requests."""

    token: str
    repos: dict[str, dict] = field(default_factory=dict)
    files: dict[str, dict[str, bytes]] = field(default_factory=dict)
    tags: dict[str, list[str]] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    cards: list[dict] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _split_repo(path: str, marker: str) -> tuple[str, str]:
    """Split ``/api/datasets/<org>/<name>/<marker>/<rest>`` into repo id and rest."""
    head, rest = path.split(f"/{marker}/", 1)
    parts = head.strip("/").split("/")
    return "/".join(parts[-2:]), rest


class HubHandler(BaseHTTPRequestHandler):
    state: HubState
    base_url: str

    def log_message(self, format, *args):  # keep pytest output clean
        pass

    def _reply(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def _authorised(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {self.state.token}":
            return True
        self._reply(401, {"error": "Invalid credentials in Authorization header"})
        return False

    def do_POST(self) -> None:
        self.state.requests.append(f"POST {self.path}")
        path = self.path.split("?", 1)[0]
        if path.endswith("/info/lfs/objects/batch"):
            return self._lfs_batch()
        if not self._authorised():
            return
        if path == "/api/repos/create":
            return self._create_repo()
        if "/preupload/" in path:
            return self._preupload(path)
        if "/commit/" in path:
            return self._commit(path)
        if "/tag/" in path:
            return self._tag(path)
        if path == "/api/validate-yaml":
            return self._validate_yaml()
        self._reply(404, {"error": f"unknown endpoint {path}"})

    def do_GET(self) -> None:
        self.state.requests.append(f"GET {self.path}")
        self._reply(404, {"error": f"unknown endpoint {self.path}"})

    def do_PUT(self) -> None:
        self.state.requests.append(f"PUT {self.path}")
        oid = self.path.rsplit("/", 1)[-1]
        data = self._body()
        if hashlib.sha256(data).hexdigest() != oid:
            return self._reply(400, {"error": "sha256 mismatch"})
        with self.state.lock:
            self.state.blobs[oid] = data
        self._reply(200, {})

    def _create_repo(self) -> None:
        payload = json.loads(self._body())
        repo_id = f"{payload['organization']}/{payload['name']}"
        with self.state.lock:
            self.state.repos[repo_id] = payload
            self.state.files.setdefault(repo_id, {})
        self._reply(200, {"url": f"{self.base_url}/datasets/{repo_id}"})

    def _preupload(self, path: str) -> None:
        repo_id, _ = _split_repo(path, "preupload")
        if repo_id not in self.state.repos:
            return self._reply(404, {"error": "Repository not found"})
        files = json.loads(self._body())["files"]
        modes = [
            {
                "path": f["path"],
                "uploadMode": "lfs"
                if f["path"].endswith(LFS_SUFFIXES) and f["size"]
                else "regular",
                "shouldIgnore": False,
            }
            for f in files
        ]
        self._reply(200, {"files": modes})

    def _lfs_batch(self) -> None:
        if not self._authorised():
            return
        request = json.loads(self._body())
        objects = [
            {
                "oid": o["oid"],
                "size": o["size"],
                "actions": {
                    "upload": {"href": f"{self.base_url}/lfs-upload/{o['oid']}"}
                },
            }
            for o in request["objects"]
        ]
        self._reply(200, {"transfer": "basic", "objects": objects})

    def _commit(self, path: str) -> None:
        repo_id, _ = _split_repo(path, "commit")
        if repo_id not in self.state.repos:
            return self._reply(404, {"error": "Repository not found"})
        received: dict[str, bytes] = {}
        for line in self._body().decode().splitlines():
            item = json.loads(line)
            value = item["value"]
            if item["key"] == "file":
                received[value["path"]] = base64.b64decode(value["content"])
            elif item["key"] == "lfsFile":
                if value["oid"] not in self.state.blobs:
                    return self._reply(
                        400, {"error": f"LFS object {value['oid']} was not uploaded"}
                    )
                received[value["path"]] = self.state.blobs[value["oid"]]
        with self.state.lock:
            self.state.files[repo_id].update(received)
        oid = hashlib.sha1(repr(sorted(received)).encode()).hexdigest()
        self._reply(
            200,
            {
                "commitOid": oid,
                "commitUrl": f"{self.base_url}/datasets/{repo_id}/commit/{oid}",
            },
        )

    def _validate_yaml(self) -> None:
        content = json.loads(self._body())["content"]
        parts = content.split("---\n")
        try:
            header = yaml.safe_load(parts[1]) if content.startswith("---\n") else None
        except yaml.YAMLError as exc:
            return self._reply(400, {"errors": [{"message": str(exc)}]})
        if not isinstance(header, dict):
            return self._reply(
                400, {"errors": [{"message": "README.md has no YAML header"}]}
            )
        self.state.cards.append(header)
        self._reply(200, {"errors": [], "warnings": []})

    def _tag(self, path: str) -> None:
        repo_id, _ = _split_repo(path, "tag")
        tag = json.loads(self._body())["tag"]
        with self.state.lock:
            self.state.tags.setdefault(repo_id, []).append(tag)
        self._reply(200, {})


class HubServer:
    """Run ``HubHandler`` in a background thread; use as a context manager."""

    def __init__(self, token: str) -> None:
        self.state = HubState(token=token)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), HubHandler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        handler = type(
            "BoundHubHandler",
            (HubHandler,),
            {"state": self.state, "base_url": self.url},
        )
        self._server.RequestHandlerClass = handler
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


def push_command(
    export_dir: Path,
    repo_id: str,
    hf_home: Path,
    endpoint: str,
    token: str | None,
    *flags: str,
) -> subprocess.CompletedProcess:
    """Run `aas push` in a fresh process against ``endpoint`` with the legacy LFS transfer."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(hf_home), HF_HUB_DISABLE_XET="1")
    if token is not None:
        env["HF_TOKEN"] = token
    command = [
        sys.executable,
        "-m",
        "aas.cli",
        "push",
        f"--export_dir={export_dir}",
        f"--repo_id={repo_id}",
    ]
    return subprocess.run(
        [*command, *flags],
        env=env,
        cwd=REPO_ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
