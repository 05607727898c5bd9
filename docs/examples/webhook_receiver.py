"""A minimal Texture Portal webhook receiver (Python standard library only).

Run:  TEXTURE_WEBHOOK_SECRET=whsec_... python webhook_receiver.py 8080

It verifies every delivery exactly as docs/integrators.md describes, answers 2xx quickly, and skips events it
has already seen (by the envelope's `key`). Real receivers store the key durably and process the event from a
queue; this one keeps keys in memory.
"""

import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE_SECONDS = 300


def verify_signature(secret: str, body: bytes, signature: str, timestamp: str, now: float | None = None) -> bool:
    """True when `signature` is the hex HMAC-SHA256 of the raw `body` keyed with `secret`, and `timestamp`
    (Unix seconds, the Texture-Timestamp header) is within five minutes of now."""
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature or ""):
        return False
    try:
        sent = int(timestamp)
    except (TypeError, ValueError):
        return False
    return abs((now if now is not None else time.time()) - sent) <= TOLERANCE_SECONDS


def make_handler(secret: str, on_event=None):
    seen: set[str] = set()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))  # the raw bytes, before parsing
            if not verify_signature(
                secret, body, self.headers.get("Texture-Signature", ""), self.headers.get("Texture-Timestamp", "")
            ):
                self.send_response(401)
                self.end_headers()
                return
            envelope = json.loads(body)
            if envelope["key"] not in seen:  # deliveries can repeat: dedupe on the key
                seen.add(envelope["key"])
                if on_event is not None:
                    on_event(envelope)
            self.send_response(204)
            self.end_headers()

        def log_message(self, format, *args):
            pass

    return Handler


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    secret = os.environ["TEXTURE_WEBHOOK_SECRET"]
    server = ThreadingHTTPServer(
        ("127.0.0.1", port), make_handler(secret, on_event=lambda e: print(e["type"], e["key"]))
    )
    print(f"Listening on http://127.0.0.1:{port}/")
    server.serve_forever()


if __name__ == "__main__":
    main()
