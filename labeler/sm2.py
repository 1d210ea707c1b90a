"""SM2 signatures with SM3 (GB/T 32918.2, GM/T 0009), through the system's OpenSSL 3 libcrypto.

``cryptography`` has no SM2 curve, pure-Python SM2 (gmssl) costs ~17 ms a signature, and the
Tongsuo binding is a second OpenSSL build; the OpenSSL 3 libcrypto that Python's own ``hashlib``
already loads has SM2 and SM3, so a small ctypes binding is both the fastest path and no new
dependency (measured in ``docs/signing.md``).

Wire forms match the rest of :mod:`labeler.signing`: the public key is the 33-byte compressed
point, the signature raw ``r || s`` (64 bytes); keys are PKCS#8 / SubjectPublicKeyInfo PEM as
``openssl genpkey -algorithm SM2`` writes them. The distinguishing ID defaults to GM/T 0009's
``1234567812345678``; ``$LABELER_SM2_ID`` or ``Sm2(distid=...)`` changes it (both sides must agree).
"""

from __future__ import annotations

import base64
import ctypes
import functools
import os
import re
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from .errors import SigningKeyError

__all__ = ["DEFAULT_ID", "Sm2", "Sm2PrivateKey", "available", "is_sm2_pem"]

DEFAULT_ID = b"1234567812345678"

#: SM2 domain parameters (GB/T 32918.5): field prime, curve b (a = p - 3) and order n.
_P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
_B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
_N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123

#: SubjectPublicKeyInfo DER up to the point: id-ecPublicKey, curve sm2 (1.2.156.10197.1.301).
_SPKI_HEAD_COMPRESSED = bytes.fromhex("3039301306072a8648ce3d020106082a811ccf5501822d032200")
_SPKI_HEAD_UNCOMPRESSED = bytes.fromhex("3059301306072a8648ce3d020106082a811ccf5501822d034200")
_SM2_OID = bytes.fromhex("06082a811ccf5501822d")

_c_p = ctypes.c_void_p


class _Lib:
    """The few libcrypto entry points SM2 needs, typed once."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        def fn(name: str, res: Any, *args: Any) -> Callable[..., Any]:
            f = getattr(lib, name)
            f.restype, f.argtypes = res, list(args)
            return f  # type: ignore[no-any-return]

        pp = ctypes.POINTER(ctypes.c_char_p)
        self.pkey_ctx_new_from_name = fn("EVP_PKEY_CTX_new_from_name", _c_p, _c_p, ctypes.c_char_p, _c_p)
        self.keygen_init = fn("EVP_PKEY_keygen_init", ctypes.c_int, _c_p)
        self.generate = fn("EVP_PKEY_generate", ctypes.c_int, _c_p, ctypes.POINTER(_c_p))
        self.pkey_ctx_new = fn("EVP_PKEY_CTX_new", _c_p, _c_p, _c_p)
        self.pkey_ctx_free = fn("EVP_PKEY_CTX_free", None, _c_p)
        self.pkey_free = fn("EVP_PKEY_free", None, _c_p)
        self.set1_id = fn("EVP_PKEY_CTX_set1_id", ctypes.c_int, _c_p, ctypes.c_char_p, ctypes.c_int)
        self.md_ctx_new = fn("EVP_MD_CTX_new", _c_p)
        self.md_ctx_free = fn("EVP_MD_CTX_free", None, _c_p)
        self.md_ctx_set_pkey_ctx = fn("EVP_MD_CTX_set_pkey_ctx", None, _c_p, _c_p)
        self.sm3 = fn("EVP_sm3", _c_p)()
        self.sign_init = fn("EVP_DigestSignInit", ctypes.c_int, _c_p, _c_p, _c_p, _c_p, _c_p)
        self.sign = fn(
            "EVP_DigestSign",
            ctypes.c_int,
            _c_p,
            ctypes.c_char_p,
            ctypes.POINTER(ctypes.c_size_t),
            ctypes.c_char_p,
            ctypes.c_size_t,
        )
        self.verify_init = fn("EVP_DigestVerifyInit", ctypes.c_int, _c_p, _c_p, _c_p, _c_p, _c_p)
        self.verify = fn(
            "EVP_DigestVerify",
            ctypes.c_int,
            _c_p,
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_char_p,
            ctypes.c_size_t,
        )
        self.d2i_pubkey = fn("d2i_PUBKEY", _c_p, _c_p, pp, ctypes.c_long)
        self.i2d_pubkey = fn("i2d_PUBKEY", ctypes.c_int, _c_p, ctypes.POINTER(ctypes.c_char_p))
        self.d2i_private = fn("d2i_AutoPrivateKey", _c_p, _c_p, pp, ctypes.c_long)
        self.to_pkcs8 = fn("EVP_PKEY2PKCS8", _c_p, _c_p)
        self.i2d_pkcs8 = fn("i2d_PKCS8_PRIV_KEY_INFO", ctypes.c_int, _c_p, ctypes.POINTER(ctypes.c_char_p))
        self.pkcs8_free = fn("PKCS8_PRIV_KEY_INFO_free", None, _c_p)
        self.is_a = fn("EVP_PKEY_is_a", ctypes.c_int, _c_p, ctypes.c_char_p)
        self.err_clear = fn("ERR_clear_error", None)
        self.free = fn("CRYPTO_free", None, _c_p, ctypes.c_char_p, ctypes.c_int)


def _find_libcrypto() -> ctypes.CDLL:
    """OpenSSL 3's libcrypto (on Linux usually the one ``hashlib`` already mapped)."""
    for name in ("libcrypto.so.3", "libcrypto.3.dylib", None):
        try:
            if name is None:  # the slow search (it runs ldconfig) only when the usual names fail
                from ctypes.util import find_library

                name = find_library("crypto") or "libcrypto.so.3"
            lib = ctypes.CDLL(name)
            lib.EVP_PKEY_CTX_set1_id  # noqa: B018  (OpenSSL 3 only)
            lib.EVP_sm3  # noqa: B018
            return lib
        except (OSError, AttributeError):
            continue
    raise OSError("no OpenSSL 3 libcrypto with SM2 found")


@functools.cache
def _lib() -> _Lib:
    try:
        return _Lib(_find_libcrypto())
    except OSError as exc:
        raise SigningKeyError(f"SM2 needs OpenSSL 3's libcrypto: {exc}") from None


def available() -> bool:
    """Whether SM2 can be used here (an OpenSSL 3 libcrypto with SM2 and SM3)."""
    try:
        _lib()
    except SigningKeyError:
        return False
    return True


class _Pkey:
    """An owned ``EVP_PKEY *``, freed with this object."""

    __slots__ = ("__weakref__", "_free", "ptr")

    def __init__(self, ptr: int | None, what: str) -> None:
        if not ptr:
            _lib().err_clear()
            raise SigningKeyError(what)
        self.ptr = ptr
        self._free = _lib().pkey_free  # held: at interpreter exit the module globals are gone

    def __del__(self) -> None:
        if getattr(self, "ptr", 0):
            self._free(self.ptr)
            self.ptr = 0


def _der_out(call: Callable[..., int], obj: int) -> bytes:
    """DER from an ``i2d_*`` function (it allocates; we copy and free)."""
    lib = _lib()
    out = ctypes.c_char_p()
    length = call(obj, ctypes.byref(out))
    if length <= 0:
        lib.err_clear()
        raise SigningKeyError("libcrypto could not encode the SM2 key")
    try:
        return ctypes.string_at(out, length)
    finally:
        lib.free(ctypes.cast(out, _c_p), b"", 0)


def _der_in(call: Callable[..., int | None], der: bytes) -> int | None:
    buf = ctypes.c_char_p(der)
    return call(None, ctypes.byref(buf), len(der))


def _compressed_point(spki: bytes) -> bytes:
    """The 33-byte compressed point at the end of a SubjectPublicKeyInfo DER (libcrypto keeps
    the form it parsed, so both forms occur)."""
    if spki.startswith(_SPKI_HEAD_COMPRESSED):
        return spki[-33:]
    return bytes([2 | (spki[-1] & 1)]) + spki[-64:-32]


def _uncompressed(point: bytes) -> bytes:
    """04 || x || y from 02/03 || x (p = 3 mod 4, so the square root is one power)."""
    x = int.from_bytes(point[1:], "big")
    y = pow((pow(x, 3, _P) - 3 * x + _B) % _P, (_P + 1) // 4, _P)
    if y & 1 != point[0] & 1:
        y = _P - y
    return b"\x04" + point[1:] + y.to_bytes(32, "big")


def _spki_for(public_raw: bytes) -> bytes:
    if len(public_raw) == 33 and public_raw[0] in (2, 3):
        return _SPKI_HEAD_COMPRESSED + public_raw
    if len(public_raw) == 65 and public_raw[0] == 4:
        return _SPKI_HEAD_UNCOMPRESSED + public_raw
    raise SigningKeyError("not an SM2 public point")


@functools.lru_cache(maxsize=256)
def _public_pkey(public_raw: bytes) -> _Pkey:
    """The parsed public key, cached: verifying many records of one signer parses it once."""
    lib = _lib()
    pkey = _Pkey(_der_in(lib.d2i_pubkey, _spki_for(public_raw)), "not a point on the SM2 curve")
    if lib.is_a(pkey.ptr, b"SM2") != 1:
        raise SigningKeyError("not an SM2 public key")
    return pkey


class Sm2PrivateKey:
    """An SM2 private key held by libcrypto. Its ``repr`` never shows key material."""

    __slots__ = ("_pkey", "public_raw")

    def __init__(self, pkey: _Pkey) -> None:
        if _lib().is_a(pkey.ptr, b"SM2") != 1:
            raise SigningKeyError("not an SM2 private key")
        self._pkey = pkey
        self.public_raw = _compressed_point(_der_out(_lib().i2d_pubkey, pkey.ptr))

    def __repr__(self) -> str:
        return "Sm2PrivateKey(...)"

    @property
    def ptr(self) -> int:
        return self._pkey.ptr

    @classmethod
    def generate(cls) -> Sm2PrivateKey:
        lib = _lib()
        ctx = lib.pkey_ctx_new_from_name(None, b"SM2", None)
        try:
            out = _c_p()
            if not ctx or lib.keygen_init(ctx) != 1 or lib.generate(ctx, ctypes.byref(out)) != 1:
                out = _c_p()
            return cls(_Pkey(out.value, "libcrypto could not generate an SM2 key"))
        finally:
            lib.pkey_ctx_free(ctx)

    @classmethod
    def from_der(cls, der: bytes) -> Sm2PrivateKey:
        return cls(_Pkey(_der_in(_lib().d2i_private, der), "not an SM2 private key"))

    def pkcs8_der(self) -> bytes:
        lib = _lib()
        info = lib.to_pkcs8(self.ptr)
        if not info:
            lib.err_clear()
            raise SigningKeyError("libcrypto could not encode the SM2 key")
        try:
            return _der_out(lib.i2d_pkcs8, info)
        finally:
            lib.pkcs8_free(info)


def is_sm2_pem(pem: bytes) -> bool:
    """Whether a PEM key names the SM2 curve (what ``cryptography`` cannot load)."""
    der = pem_der(pem)
    return der is not None and _SM2_OID in der[:40]


def pem_der(pem: bytes) -> bytes | None:
    match = re.search(rb"-----BEGIN ([A-Z ]+)-----(.*?)-----END \1-----", pem, re.S)
    if match is None:
        return None
    try:
        return base64.b64decode(b"".join(match.group(2).split()), validate=True)
    except ValueError:
        return None


def to_pem(der: bytes, label: str) -> bytes:
    body = base64.encodebytes(der).replace(b"\n", b"")
    lines = b"\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return b"-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label.encode(), lines, label.encode())


def public_spki_der(public_raw: bytes) -> bytes:
    """SubjectPublicKeyInfo DER with the uncompressed point, as OpenSSL writes it."""
    _public_pkey(public_raw)  # refuses a point off the curve
    return _SPKI_HEAD_UNCOMPRESSED + _uncompressed(public_raw)


def public_raw_from_spki(der: bytes) -> bytes:
    pkey = _Pkey(_der_in(_lib().d2i_pubkey, der), "not an SM2 public key")
    if _lib().is_a(pkey.ptr, b"SM2") != 1:
        raise SigningKeyError("not an SM2 public key")
    return _compressed_point(der)


class Sm2:
    """The ``SM2`` plug-in for :data:`labeler.signing.ALGORITHMS` (SM3withSM2)."""

    name = "SM2"

    def __init__(self, distid: bytes | None = None) -> None:
        if distid is None:
            distid = os.environb.get(b"LABELER_SM2_ID", DEFAULT_ID) if os.name == "posix" else DEFAULT_ID
        if not distid or len(distid) > 8191:  # ENTL is 16 bits of *bits*
            raise SigningKeyError("SM2 distinguishing ID must be 1..8191 bytes")
        self.distid = distid

    def __repr__(self) -> str:
        return f"Sm2(distid={self.distid!r})"

    def generate(self) -> object:
        return Sm2PrivateKey.generate()

    def accepts_private(self, key: object) -> bool:
        return isinstance(key, Sm2PrivateKey)

    def public_raw(self, private: object) -> bytes:
        assert isinstance(private, Sm2PrivateKey)
        return private.public_raw

    def _digest_ctx(self, pkey: int, init: Callable[..., int]) -> tuple[int, int]:
        lib = _lib()
        md, pctx = lib.md_ctx_new(), lib.pkey_ctx_new(pkey, None)
        if (
            not md
            or not pctx
            or lib.set1_id(pctx, self.distid, len(self.distid)) != 1
            or (lib.md_ctx_set_pkey_ctx(md, pctx), init(md, None, lib.sm3, None, pkey))[1] != 1
        ):
            lib.md_ctx_free(md)
            lib.pkey_ctx_free(pctx)
            lib.err_clear()
            raise SigningKeyError("libcrypto could not set up SM2")
        return md, pctx

    def sign(self, private: object, data: bytes) -> bytes:
        assert isinstance(private, Sm2PrivateKey)
        lib = _lib()
        md, pctx = self._digest_ctx(private.ptr, lib.sign_init)
        try:
            sig = ctypes.create_string_buffer(80)
            length = ctypes.c_size_t(len(sig))
            if lib.sign(md, sig, ctypes.byref(length), data, len(data)) != 1:
                lib.err_clear()
                raise SigningKeyError("SM2 signing failed")
        finally:
            lib.md_ctx_free(md)
            lib.pkey_ctx_free(pctx)
        r, s = decode_dss_signature(sig.raw[: length.value])
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def verify(self, public_raw: bytes, signature: bytes, data: bytes) -> bool:
        if len(public_raw) != 33 or len(signature) != 64:
            return False
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        if not (0 < r < _N and 0 < s < _N):
            return False
        try:
            pkey = _public_pkey(public_raw)
            lib = _lib()
            md, pctx = self._digest_ctx(pkey.ptr, lib.verify_init)
        except SigningKeyError:
            return False
        try:
            der = encode_dss_signature(r, s)
            ok: bool = lib.verify(md, der, len(der), data, len(data)) == 1
        finally:
            lib.md_ctx_free(md)
            lib.pkey_ctx_free(pctx)
        if not ok:
            lib.err_clear()
        return ok
