"""Sign through a service over HTTP, as with a KMS or an HSM gateway: the private key never
reaches the labelling server.

The wire protocol is the smallest a signing service can offer: ``POST <url>`` with the bytes to
sign (``application/octet-stream``, optionally ``Authorization: Bearer <token>``), answered
``200`` with the raw signature in the algorithm's form (64 bytes for Ed25519, ES256 and SM2). The
public key is pinned up front (a PEM file the operator got from the KMS), so a verifier's trust
does not depend on what the service says; every signature is checked against it before use
(:meth:`labeler.signing.SigningKey.from_signer`). ``examples/remote_signer/`` has a service.

What is sent is the record's signing input (a few hundred bytes: the token payload, or a batch
header naming a Merkle root), never the content.
"""

from __future__ import annotations

import http.client
import threading
import urllib.parse

from .errors import SigningKeyError
from .signing import PublicKey, SigningKey

__all__ = ["HttpSigner", "remote_key"]

#: Largest signature we accept from a service (DER ECDSA is ~72 bytes; room for more).
MAX_SIGNATURE = 1024


class HttpSigner:
    """A :class:`labeler.signing.Signer` that asks an HTTP signing service. Thread-safe: each
    thread keeps its own keep-alive connection (``SigningKey.sign_async`` signs in threads)."""

    def __init__(
        self, url: str, public_key: PublicKey, *, token: str | None = None, timeout: float = 5.0
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SigningKeyError(f"remote signer URL must be http(s)://host/path, not {url!r}")
        if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "::1", "localhost") and token:
            raise SigningKeyError(
                "refusing to send a bearer token over plain http to another host; use https"
            )
        self.url, self.timeout = url, timeout
        self._public_key = public_key
        self._parts = parts
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._headers = {"Content-Type": "application/octet-stream"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._local = threading.local()

    def __repr__(self) -> str:  # the token stays out of logs
        return f"HttpSigner(url={self.url!r}, key_id={self._public_key.key_id!r})"

    @property
    def public_key(self) -> PublicKey:
        return self._public_key

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self._parts.scheme == "https" else http.client.HTTPConnection
            conn = cls(self._parts.hostname or "", self._parts.port, timeout=self.timeout)
            self._local.conn = conn
        return conn

    def sign(self, data: bytes) -> bytes:
        """The service's signature over ``data``; one retry when a kept-alive connection was
        closed by the other side in the meantime."""
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request("POST", self._path, body=data, headers=self._headers)
                response = conn.getresponse()
                body = response.read(MAX_SIGNATURE + 1)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                conn.close()
                self._local.conn = None
                if attempt == 2:
                    raise SigningKeyError(f"remote signer {self.url} closed the connection") from None
                continue
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                self._local.conn = None
                raise SigningKeyError(f"remote signer {self.url} unreachable: {type(exc).__name__}") from None
            if response.status != 200 or len(body) > MAX_SIGNATURE:
                conn.close()
                self._local.conn = None
                raise SigningKeyError(f"remote signer {self.url} answered {response.status}")
            return body
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def remote_key(
    url: str, public_key_pem: bytes, *, token: str | None = None, timeout: float = 5.0
) -> SigningKey:
    """A :class:`SigningKey` (for ``LabelPolicy(signing_key=...)``) signing through ``url``."""
    return SigningKey.from_signer(
        HttpSigner(url, PublicKey.from_pem(public_key_pem), token=token, timeout=timeout)
    )
