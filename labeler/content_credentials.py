"""C2PA Content Credentials next to the GB label, through ``c2pa-python`` (extra ``c2pa``).

Order of operations, and why: the GB label (XMP) and our signature go in FIRST, the C2PA
manifest LAST. C2PA's hard binding hashes every byte but its own store, so it covers our
label too; our content digest skips the C2PA store (JPEG APP11 JUMBF, PNG ``caBX``, WebP
``C2PA``) just as C2PA skips itself. Both stay valid. The other order cannot work: writing our
XMP after C2PA changes bytes C2PA has hashed (tested).

The manifest carries ``c2pa.actions`` / ``c2pa.created`` with digitalSourceType
``trainedAlgorithmicMedia``, ``claim_generator_info`` = labeler + version, and a custom
``cn.tc260.aigc`` assertion with the GB record, provider, system, version and filing numbers.
Thumbnails are off unless asked for (they cost tens of ms and ~100 KB per image).
"""

from __future__ import annotations

import datetime as _dt
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__
from .errors import ConfigError, LabelerError, SigningKeyError
from .formats import detect, find_label
from .policy import LabelPolicy
from .xmp import DIGITAL_SOURCE_TYPE_AI

__all__ = ["C2paConfig", "C2paError", "add_content_credentials", "make_test_ca", "read_content_credentials"]

MIME = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
AIGC_ASSERTION = "cn.tc260.aigc"


class C2paError(LabelerError):
    """c2pa-python is missing, or it refused to sign or read."""


def _c2pa() -> Any:
    try:
        import c2pa
    except ImportError:
        raise C2paError("C2PA needs c2pa-python: pip install 'aigc-labeler[c2pa]'") from None
    return c2pa


@dataclass(frozen=True)
class C2paConfig:
    """How to sign manifests: a certificate chain (leaf first, PEM) and either the leaf's private
    key (PEM) or a ``sign(data) -> signature`` callback (an HSM or KMS)."""

    cert_chain: bytes
    private_key: bytes | None = None
    sign_callback: Callable[[bytes], bytes] | None = None
    algorithm: str = "es256"
    thumbnail: bool = False
    tsa_url: str | None = None

    def __post_init__(self) -> None:
        if (self.private_key is None) == (self.sign_callback is None):
            raise ConfigError("C2PA needs exactly one of private_key and sign_callback")
        if b"BEGIN CERTIFICATE" not in self.cert_chain:
            raise ConfigError("C2PA cert_chain must be PEM certificates, leaf first")

    @classmethod
    def from_files(
        cls, cert_file: str | os.PathLike[str], key_file: str | os.PathLike[str], **kw: Any
    ) -> C2paConfig:
        try:
            key_path = Path(key_file)
            if os.name == "posix" and key_path.stat().st_mode & 0o077:
                raise SigningKeyError(f"C2PA key {key_path} is readable by others; chmod 600 it")
            return cls(Path(cert_file).read_bytes(), key_path.read_bytes(), **kw)
        except OSError as exc:
            raise ConfigError(f"cannot read C2PA credentials: {exc.strerror}: {exc.filename}") from None

    def signer(self) -> Any:
        c2pa = _c2pa()
        alg = getattr(c2pa.C2paSigningAlg, self.algorithm.upper())
        if self.sign_callback is not None:
            return c2pa.Signer.from_callback(self.sign_callback, alg, self.cert_chain.decode(), self.tsa_url)
        info = c2pa.C2paSignerInfo(
            self.algorithm.encode(),
            self.cert_chain,
            self.private_key,
            self.tsa_url.encode() if self.tsa_url else None,
        )
        return c2pa.Signer.from_info(info)


def manifest_for(policy: LabelPolicy, aigc_json: str | None) -> dict[str, Any]:
    """The manifest definition: created by a trained model, plus the GB record as an assertion."""
    import json

    aigc: dict[str, Any] = {
        "provider": policy.provider_name,
        "system": policy.system_name,
        "system_version": policy.system_version,
        "filing_numbers": list(policy.filing_numbers),
    }
    if aigc_json:
        aigc["record"] = json.loads(aigc_json)
    return {
        "claim_generator_info": [{"name": "aigc-labeler", "version": __version__}],
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": DIGITAL_SOURCE_TYPE_AI,
                            "softwareAgent": {
                                "name": policy.system_name,
                                "version": policy.system_version or "unknown",
                            },
                        }
                    ]
                },
            },
            {"label": AIGC_ASSERTION, "data": aigc},
        ],
    }


def add_content_credentials(data: bytes, policy: LabelPolicy, config: C2paConfig) -> bytes:
    """Embed a signed C2PA manifest into a (GB-labelled) JPEG, PNG or WebP."""
    c2pa = _c2pa()
    found = find_label(data)
    fmt = found.format
    if fmt.name not in MIME:
        raise C2paError(f"C2PA is wired for JPEG, PNG and WebP here, not {fmt.name}")
    context = c2pa.Context.from_dict(
        {"builder": {"thumbnail": {"enabled": config.thumbnail}}, "verify": {"verify_after_sign": False}}
    )
    signer = config.signer()
    try:
        builder = c2pa.Builder(manifest_for(policy, found.record), context=context)
        out = io.BytesIO()
        builder.sign(signer, MIME[fmt.name], io.BytesIO(data), out)
        return out.getvalue()
    except c2pa.C2paError as exc:
        raise C2paError(f"C2PA signing failed: {exc}") from None
    finally:
        signer.close()


def read_content_credentials(data: bytes, trust_anchors_pem: str | None = None) -> dict[str, Any] | None:
    """The C2PA state as c2pa-python's Reader judges it (``Invalid`` / ``Valid`` / ``Trusted``
    with the given anchors), the active manifest's generator and our AIGC assertion; ``None``
    when the content has no manifest (or c2pa-python is not installed)."""
    try:
        c2pa = _c2pa()
    except C2paError:
        return None
    try:
        fmt = detect(data)
    except LabelerError:
        return None
    if fmt.name not in MIME:
        return None
    settings: dict[str, Any] = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
    if trust_anchors_pem:
        settings["trust"] = {"user_anchors": trust_anchors_pem}
    try:
        reader = c2pa.Reader.try_create(
            MIME[fmt.name], io.BytesIO(data), context=c2pa.Context.from_dict(settings)
        )
    except c2pa.C2paError as exc:
        return {"state": "Invalid", "problems": [str(exc)]}
    if reader is None:
        return None
    try:
        manifest = reader.get_active_manifest() or {}
        results = reader.get_validation_results() or {}
        aigc = next(
            (a.get("data") for a in manifest.get("assertions", []) if a.get("label") == AIGC_ASSERTION), None
        )
        failures = [f.get("code") for f in (results.get("activeManifest") or {}).get("failure", [])]
        return {
            "state": reader.get_validation_state(),
            "claim_generator": manifest.get("claim_generator_info"),
            "aigc": aigc,
            "failures": failures,
        }
    finally:
        reader.close()


def make_test_ca(out: Path, name: str = "labeler") -> dict[str, Path]:
    """A local test CA and a signer certificate C2PA validators accept (EC P-256, EKU
    emailProtection, signed by the CA: self-signed leaves are rejected). For tests and demos:
    production uses a certificate from a C2PA-recognised CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def subject(cn: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, cn),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "aigc-labeler test"),
            ]
        )

    now = _dt.datetime.now(_dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(subject(f"{name} test root CA"))
        .issuer_name(subject(f"{name} test root CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(days=1))
        .not_valid_after(now + _dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(subject(f"{name} C2PA signer"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(days=1))
        .not_valid_after(now + _dt.timedelta(days=825))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "ca": out / f"{name}-c2pa-ca.pem",
        "chain": out / f"{name}-c2pa-chain.pem",
        "key": out / f"{name}-c2pa.key",
    }
    pem = serialization.Encoding.PEM
    paths["ca"].write_bytes(ca.public_bytes(pem))
    paths["chain"].write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    fd = os.open(paths["key"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return paths
