"""A small signing service, standing in for a KMS: it holds the private key, the labelling
server only asks it for signatures (``labeler.remote_signer.HttpSigner``).

    python examples/remote_signer/signing_service.py --key keys/labeler.pem --port 8900

``POST /sign`` with the bytes to sign -> the raw signature; ``GET /public-key`` -> the PEM (pin
it on the labelling side; don't fetch it per request). With ``$SIGNER_TOKEN`` set, requests must
carry ``Authorization: Bearer <token>``. Listens on loopback only: put TLS in front for more.
"""

from __future__ import annotations

import argparse
import hmac
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from labeler.signing import SigningKey

#: Signing inputs are a token payload or a batch header: a few hundred bytes.
MAX_BODY = 64 * 1024


def make_server(
    key: SigningKey, host: str = "127.0.0.1", port: int = 0, token: str | None = None
) -> ThreadingHTTPServer:
    """The service for ``key`` (not yet serving: call ``serve_forever``)."""
    public_pem = key.public_key.to_pem()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: one connection per signing thread

        def log_message(self, format: str, *args: object) -> None:
            pass  # a signing service logs who asked, not what: left to the deployment

        def _answer(self, status: int, body: bytes, kind: str = "application/octet-stream") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _authorized(self) -> bool:
            if token is None:
                return True
            given = self.headers.get("Authorization", "")
            return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())

        def do_GET(self) -> None:
            if self.path != "/public-key":
                self._answer(404, b"not found\n", "text/plain")
            else:
                self._answer(200, public_pem, "application/x-pem-file")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or -1)
            if self.path != "/sign":
                self._answer(404, b"not found\n", "text/plain")
            elif not self._authorized():
                self._answer(401, b"unauthorized\n", "text/plain")
            elif not 0 < length <= MAX_BODY:
                self.close_connection = True
                self._answer(413, b"body missing or too large\n", "text/plain")
            else:
                self._answer(200, key.sign(self.rfile.read(length)))

    return ThreadingHTTPServer((host, port), Handler)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--key", required=True, help="private key PEM (mode 600), e.g. from labeler keygen")
    parser.add_argument("--port", type=int, default=8900)
    args = parser.parse_args()
    server = make_server(SigningKey.from_file(args.key), port=args.port, token=os.environ.get("SIGNER_TOKEN"))
    print(
        f"signing with key {SigningKey.from_file(args.key).key_id} on http://127.0.0.1:{server.server_port}/sign"
    )
    server.serve_forever()


if __name__ == "__main__":
    main()
