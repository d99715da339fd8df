"""A stand-in for ElevenLabs' HTTP API, run as a subprocess by the tests (so they can kill it).

    python -m tests.engines.elevenlabs_standin --concurrency 2   # prints "PORT <n>"

Serves what reautod uses, in ElevenLabs' shapes:
- POST /v1/text-to-speech/{voice_id}/stream/with-timestamps?output_format=ulaw_8000|pcm_8000|
  pcm_16000: newline-delimited JSON chunks {"audio_base64", "alignment", "normalized_alignment"}
  streamed with chunked encoding, `chars_per_chunk` characters per chunk, `chunk_ms` apart;
  `bytes_per_char` audio bytes per character (80 = 10 ms of ulaw_8000).
- GET /v1/user/subscription: the subscription (tier, character_count, character_limit, ...);
  characters streamed are added to character_count.
- Errors as ElevenLabs sends them, `{"detail": {"status": ..., "message": ...}}`: 401 without
  a valid `xi-api-key`; 429 `too_many_concurrent_requests` over the plan's concurrency; on
  request (POST /_standin/mode) 429 `system_busy` or 500 for the next N requests, 401
  `quota_exceeded` while the quota is spent; `stall_after` chunks then silence.
- GET /_standin/log: requests seen and the most requests ever in flight at once.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

API_KEY = "test-elevenlabs-key"
BYTES_PER_SAMPLE = {"ulaw_8000": 1, "pcm_8000": 2, "pcm_16000": 2}


class StandIn:
    def __init__(self, args: argparse.Namespace) -> None:
        self.concurrency = args.concurrency
        self.chars_per_chunk = args.chars_per_chunk
        self.chunk_ms = args.chunk_ms
        self.bytes_per_char = args.bytes_per_char
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.requests: list[dict[str, Any]] = []
        self.rejected_concurrency = 0
        self.mode: dict[str, Any] = {"busy_next": 0, "error_next": 0, "stall_after": None}
        self.character_count = 0
        self.character_limit = args.character_limit

    def subscription(self) -> dict[str, Any]:
        return {
            "tier": "creator", "character_count": self.character_count,
            "character_limit": self.character_limit, "max_character_limit_extension": 0,
            "max_credit_limit_extension": 0, "can_extend_character_limit": False,
            "allowed_to_extend_character_limit": False,
            "next_character_count_reset_unix": 1_900_000_000, "voice_slots_used": 1,
            "professional_voice_slots_used": 0, "professional_voice_slots_used_in_workspace": 0,
            "voice_limit": 30, "voice_add_edit_counter": 0, "professional_voice_limit": 1,
            "can_extend_voice_limit": False, "can_use_instant_voice_cloning": True,
            "can_use_professional_voice_cloning": True, "currency": "usd",
            "current_overage": {"amount": 0, "currency": "usd"}, "status": "active",
            "billing_period": "monthly_period", "character_refresh_period": "monthly_period",
            "open_invoices": [], "has_open_invoices": False,
        }


def error(status: str, message: str) -> dict[str, Any]:
    return {"detail": {"status": status, "message": message}}


def handler_for(s: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _json(self, code: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(length) or b"{}")

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == "/_standin/log":
                with s.lock:
                    self._json(200, {"requests": s.requests, "max_in_flight": s.max_in_flight,
                                     "rejected_concurrency": s.rejected_concurrency,
                                     "character_count": s.character_count})
            elif path == "/v1/user/subscription":
                if self.headers.get("xi-api-key") != API_KEY:
                    self._json(401, error("invalid_api_key", "Invalid API key"))
                else:
                    self._json(200, s.subscription())
            else:
                self._json(404, error("not_found", path))

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            body = self._body()
            if url.path == "/_standin/mode":
                with s.lock:
                    s.mode.update({k: v for k, v in body.items() if k in s.mode})
                    if "character_count" in body:
                        s.character_count = int(body["character_count"])
                self._json(200, s.mode)
                return
            parts = url.path.strip("/").split("/")
            if parts[:2] != ["v1", "text-to-speech"] or parts[3:] != ["stream", "with-timestamps"]:
                self._json(404, error("not_found", url.path))
                return
            if self.headers.get("xi-api-key") != API_KEY:
                self._json(401, error("invalid_api_key", "Invalid API key"))
                return
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            output = query.get("output_format", "mp3_44100_128")
            text = str(body.get("text", ""))
            with s.lock:
                s.requests.append({"voice_id": parts[2], "query": query, "body": body})
                if s.mode["busy_next"] > 0:
                    s.mode["busy_next"] -= 1
                    busy: tuple[int, dict[str, Any]] | None = (429, error(
                        "system_busy", "We are experiencing heavy traffic, please try again"))
                elif s.mode["error_next"] > 0:
                    s.mode["error_next"] -= 1
                    busy = (500, error("internal_error", "Internal server error"))
                elif s.character_count + len(text) > s.character_limit:
                    busy = (401, error("quota_exceeded", "This request exceeds your quota"))
                elif s.in_flight >= s.concurrency:
                    s.rejected_concurrency += 1
                    busy = (429, error("too_many_concurrent_requests",
                                       "Too many concurrent requests for your plan"))
                else:
                    busy = None
                    s.in_flight += 1
                    s.max_in_flight = max(s.max_in_flight, s.in_flight)
                    s.character_count += len(text)
            if busy is not None:
                self._json(*busy)
                return
            try:
                self._stream(text, output)
            finally:
                with s.lock:
                    s.in_flight -= 1

        def _stream(self, text: str, output: str) -> None:
            if output not in BYTES_PER_SAMPLE:
                raise ValueError(output)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            per_char = s.bytes_per_char * BYTES_PER_SAMPLE[output]
            step = s.chars_per_chunk
            for n, i in enumerate(range(0, len(text), step)):
                if s.mode["stall_after"] is not None and n >= s.mode["stall_after"]:
                    time.sleep(30)
                    return
                chars = list(text[i:i + step])
                audio = bytes([0x7F if output == "ulaw_8000" else 0x10]) * (per_char * len(chars))
                starts = [(i + k) * 0.01 for k in range(len(chars))]
                alignment = {"characters": chars, "character_start_times_seconds": starts,
                             "character_end_times_seconds": [t + 0.01 for t in starts]}
                line = json.dumps({"audio_base64": base64.b64encode(audio).decode(),
                                   "alignment": alignment,
                                   "normalized_alignment": alignment}).encode() + b"\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.flush()
                time.sleep(s.chunk_ms / 1000)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--chars-per-chunk", type=int, default=8)
    parser.add_argument("--chunk-ms", type=float, default=5.0)
    parser.add_argument("--bytes-per-char", type=int, default=80)
    parser.add_argument("--character-limit", type=int, default=100_000)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler_for(StandIn(args)))
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    sys.stdout.close()
    server.serve_forever()


if __name__ == "__main__":
    main()
