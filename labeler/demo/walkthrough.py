"""`labeler demo`: generate an image, label it, verify it, then show what tampering does."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ..labeling import label_bytes
from ..signing import SigningKey, TrustStore
from ..verification import verify
from .identity import demo_policy
from .images import generate_image


def run_walkthrough(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    key = SigningKey.generate()
    policy = demo_policy(key)
    (out / "demo-signer.pub.pem").write_bytes(key.public_key.to_pem())
    trust = TrustStore([key.public_key])

    print("1. generate: a procedural 1024x1024 JPEG from the prompt 'a red kite over the sea'")
    original = generate_image("a red kite over the sea")
    (out / "generated.jpg").write_bytes(original)

    print(f"2. label as {policy.provider_name} (filing number {policy.filing_numbers[0]}, key {key.key_id})")
    labeled = label_bytes(original, policy)
    (out / "generated-labeled.jpg").write_bytes(labeled)
    print(f"   {len(original)} -> {len(labeled)} bytes; pixels untouched, label in XMP TC260:AIGC")

    verdict = verify(labeled, trust)
    print(f"3. verify: {verdict.status.value} (notice: {verdict.notice}; signature, trust, integrity ok)")
    print(f"   AIGC record: {verdict.record.to_json() if verdict.record else None}"[:160] + " ...")

    tampered = bytearray(labeled)
    tampered[len(tampered) // 2] ^= 0x01
    (out / "generated-tampered.jpg").write_bytes(bytes(tampered))
    print(f"4. one byte of the image changed: {verify(bytes(tampered), trust).status.value}")
    print(f"5. verified by an outsider without our key: {verify(labeled).status.value}")

    if shutil.which("exiftool"):
        shown = subprocess.run(
            [
                "exiftool",
                "-s",
                "-XMP-TC260:all",
                "-XMP-iptcExt:DigitalSourceType",
                str(out / "generated-labeled.jpg"),
            ],
            capture_output=True,
            text=True,
        ).stdout
        print("6. exiftool sees:\n" + "\n".join("   " + line[:150] for line in shown.splitlines()))
    print(f"files in {out}/; try: labeler verify --trust {out}/demo-signer.pub.pem {out}/*.jpg")
    return 0 if verdict.ok else 1
