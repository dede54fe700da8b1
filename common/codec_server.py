"""Temporal's remote codec protocol over the project's payload codec (common/codec.py), so that the Temporal
Web UI and `temporal workflow show --codec-endpoint URL` show sealed histories decoded, to whoever can reach
this endpoint (and holds its token, when one is set).

    python -m common.codec_server       serves on CODEC_LISTEN (default 127.0.0.1:8089)

POST /decode and POST /encode take and return temporal.api.common.v1.Payloads as JSON ({"payloads": [...]});
the X-Namespace header names the namespace (one key serves them all). CORS answers the origins in
CODEC_CORS_ORIGINS (the Web UI's), so the browser may call it. With CODEC_TOKEN set, a request needs
`Authorization: Bearer <token>` (the Web UI sends it when configured to; `temporal` takes
--codec-auth "Bearer <token>").
"""

import asyncio
import hmac
import json
import logging
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from common import codec, logs

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 4 << 20


class CodecHandler(BaseHTTPRequestHandler):
    codec: codec.EncryptionCodec
    token: str = ""
    origins: frozenset[str] = frozenset()

    def do_OPTIONS(self) -> None:  # the browser's CORS preflight
        self._answer(204, b"")

    def do_POST(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")  # the Web UI adds ?preserveStorageRefs=true
        if path not in ("/encode", "/decode"):
            return self._answer(404, b'{"error": "POST /encode or /decode"}')
        if self.token and not hmac.compare_digest(self.headers.get("Authorization", ""), f"Bearer {self.token}"):
            return self._answer(401, b'{"error": "missing or wrong Authorization: Bearer <token>"}')
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            return self._answer(413, b'{"error": "body too large"}')
        try:
            payloads = json_format.Parse(self.rfile.read(length) or b"{}", Payloads())
            work = self.codec.decode if path == "/decode" else self.codec.encode
            done = asyncio.run(work(payloads.payloads))
        except (json_format.ParseError, ValueError) as err:
            return self._answer(400, json.dumps({"error": str(err)}).encode())
        body = json_format.MessageToJson(Payloads(payloads=done)).encode()
        self._answer(200, body)

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        origin = self.headers.get("Origin", "")
        if origin in self.origins:
            self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Access-Control-Allow-Credentials", "true")
            self.send_header("Access-Control-Allow-Methods", "POST, OPTIONS")
            self.send_header("Access-Control-Allow-Headers", "Content-Type, X-Namespace, Authorization")
            self.send_header("Vary", "Origin")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.info(
            "codec_request",
            extra={
                "fields": {
                    "request": self.requestline,
                    "status": args[1] if len(args) > 1 else "",
                    "namespace": self.headers.get("X-Namespace", ""),
                }
            },
        )


def serve(listen: str, key: bytes, token: str = "", origins: tuple[str, ...] = ()) -> ThreadingHTTPServer:
    """The codec endpoint, not yet serving: call serve_forever() (or run it in a thread)."""
    host, _, port = listen.rpartition(":")
    handler = type(
        "Handler", (CodecHandler,), {"codec": codec.EncryptionCodec(key), "token": token, "origins": frozenset(origins)}
    )
    return ThreadingHTTPServer((host or "127.0.0.1", int(port)), handler)


def main() -> None:
    logs.setup("codec_server", os.environ.get("LOG_LEVEL", "INFO"))
    key = codec.key_from_env()
    if key is None:
        raise SystemExit("PAYLOAD_KEY is not set: there is nothing to decode with")
    listen = os.environ.get("CODEC_LISTEN", "127.0.0.1:8089")
    origins = tuple(o.strip() for o in os.environ.get("CODEC_CORS_ORIGINS", "").split(",") if o.strip())
    server = serve(listen, key, os.environ.get("CODEC_TOKEN", ""), origins)
    log.info("codec_server_listening", extra={"fields": {"address": listen, "cors_origins": list(origins)}})
    server.serve_forever()


if __name__ == "__main__":
    main()
