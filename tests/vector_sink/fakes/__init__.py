"""Test doubles of cloud vector databases that cannot run here. They check the wire contract the
real client libraries speak (paths, field names, encodings, filter language), not the servers'
behaviour at scale: a green test against a fake is no proof that the live service agrees."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any


class JsonRequestHandler(BaseHTTPRequestHandler):
    """What both fakes' HTTP handlers share: quiet, JSON request bodies in, JSON replies out."""

    def log_message(self, *args: Any) -> None:
        pass

    def _json_body(self) -> Any:
        """The request's JSON body; None when it has none."""
        length = int(self.headers.get("content-length") or 0)
        return json.loads(self.rfile.read(length)) if length else None

    def _reply(self, status: int, body: Any = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
