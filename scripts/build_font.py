"""Build the small bundled font: Noto Sans CJK SC Bold, subset to what labels need.

    apt-get install fonts-noto-cjk && .venv/bin/python scripts/build_font.py

Input: Debian's fonts-noto-cjk (the SC face of NotoSansCJK-Bold.ttc). Output, under
labeler/fonts/: the subset OTF, OFL.txt (the font's licence, from Debian's copyright file) and
SOURCE.txt (input package version, characters, tool versions). Timestamps are not recalculated,
so the same input gives the same bytes.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

from fontTools import subset
from fontTools import version as fonttools_version
from fontTools.ttLib import TTCollection

SOURCE = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc")
COPYRIGHT = Path("/usr/share/doc/fonts-noto-cjk/copyright")
OUT = Path(__file__).resolve().parent.parent / "labeler" / "fonts"
FONT_NAME = "NotoSansCJKsc-Bold-labeler-subset.otf"

#: Label texts (zh/en defaults and common variants), filing-number words, punctuation.
CJK = "人工智能生成合成由本内容经标识网信算备号上线编号备案模型服务提供者深度疑似可能为（）【】：，。、·"
CHARACTERS = "".join(chr(c) for c in range(0x20, 0x7F)) + CJK


def main() -> int:
    if not SOURCE.exists():
        print(f"missing {SOURCE}: apt-get install fonts-noto-cjk", file=sys.stderr)
        return 1
    collection = TTCollection(str(SOURCE), recalcTimestamp=False)
    font = next(f for f in collection.fonts if f["name"].getDebugName(1) == "Noto Sans CJK SC")
    options = subset.Options()
    options.layout_features = ["kern", "palt", "vert"]
    options.name_IDs = ["*"]
    options.notdef_outline = True
    options.recalc_timestamp = False
    subsetter = subset.Subsetter(options)
    subsetter.populate(text=CHARACTERS)
    subsetter.subset(font)
    OUT.mkdir(parents=True, exist_ok=True)
    target = OUT / FONT_NAME
    font.save(str(target))

    text = COPYRIGHT.read_text(encoding="utf-8")
    block = re.search(r"^License: SIL-1\.1\n((?: .*\n)+)", text, re.M)
    assert block, "SIL-1.1 licence block not found in the Debian copyright file"
    licence = "\n".join(line[1:] if line != " ." else "" for line in block.group(1).splitlines())
    notice = "Copyright 2014-2021 Adobe (http://www.adobe.com/), with Reserved Font Name 'Source'.\n\n"
    (OUT / "OFL.txt").write_text(notice + licence.strip() + "\n", encoding="utf-8")

    package = (
        subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "fonts-noto-cjk"], capture_output=True, text=True
        ).stdout
        or "unknown"
    )
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    (OUT / "SOURCE.txt").write_text(
        f"{FONT_NAME}\n"
        f"  from: Debian fonts-noto-cjk {package}, {SOURCE.name}, face 'Noto Sans CJK SC'\n"
        f"  built by: scripts/build_font.py with fontTools {fonttools_version}\n"
        f"  characters: printable ASCII + {CJK}\n"
        f"  sha256: {digest}\n"
        "  licence: SIL Open Font License 1.1 (OFL.txt)\n",
        encoding="utf-8",
    )
    print(f"{target} ({target.stat().st_size} bytes, sha256 {digest[:16]}...)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
