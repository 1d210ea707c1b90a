from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labeler import LabelPolicy, SigningKey, Status, TrustStore
from labeler.errors import ConfigError
from labeler.text import (
    add_text_label,
    end_fragment,
    find_text_labels,
    label_markdown,
    mark_text,
    read_text_mark,
    start_fragment,
    strip_text_mark,
)
from labeler.verification import verify_text


@pytest.fixture
def en(policy: LabelPolicy) -> LabelPolicy:
    return policy.with_changes(language="en")


def test_start_end_both_zh(policy: LabelPolicy) -> None:
    assert add_text_label("你好。", policy) == "【AI生成】你好。"
    assert add_text_label("你好。", policy, "end") == "你好。\n\n【AI生成】"
    assert add_text_label("你好。", policy, "both") == "【AI生成】你好。\n\n【AI生成】"


def test_english_and_trailing_newline_kept(en: LabelPolicy) -> None:
    assert add_text_label("Hello.\n", en, "both") == "[AI-generated] Hello.\n\n[AI-generated]\n"


@pytest.mark.parametrize(
    "doc, expected_start",
    [
        ("```python\nprint(1)\n```\n", "【AI生成】\n\n```python"),
        ("# Title\ntext", "【AI生成】\n\n# Title"),
        ("- a\n- b", "【AI生成】\n\n- a"),
        ("| a | b |\n|---|---|", "【AI生成】\n\n| a"),
        ("---\ntitle: x\n---\nBody", "---\ntitle: x\n---\n【AI生成】Body"),
        ("---\ntitle: x\n---\n```\ncode\n```", "---\ntitle: x\n---\n【AI生成】\n\n```"),
    ],
)
def test_markdown_aware_start(policy: LabelPolicy, doc: str, expected_start: str) -> None:
    assert add_text_label(doc, policy).startswith(expected_start)


@pytest.mark.parametrize("position", ["start", "end", "both"])
@pytest.mark.parametrize("text", ["你好", "# T\n\nbody\n", "---\na: 1\n---\nx", "", "```\nc\n```"])
def test_idempotent(policy: LabelPolicy, text: str, position: str) -> None:
    once = add_text_label(text, policy, position)  # type: ignore[arg-type]
    assert add_text_label(once, policy, position) == once  # type: ignore[arg-type]
    assert once.count("【AI生成】") in (1, 2)


def test_any_compliant_wording_counts_as_a_label(policy: LabelPolicy) -> None:
    assert find_text_labels("[人工智能合成] 文本") == (True, False)
    assert find_text_labels("text [AI-generated]") == (False, True)
    assert find_text_labels("[AI] text") == (False, False)  # a bare "AI" is not a label
    assert add_text_label("【由人工智能生成】正文", policy) == "【由人工智能生成】正文"


def test_stream_fragments(policy: LabelPolicy) -> None:
    text = start_fragment(policy) + "answer" + end_fragment(policy)
    assert find_text_labels(text) == (True, True)
    with pytest.raises(ConfigError):
        add_text_label("x", policy, "middle")  # type: ignore[arg-type]


# -- invisible marks ----------------------------------------------------------------------------


def test_mark_is_invisible_and_verifies(policy: LabelPolicy, trust: TrustStore) -> None:
    text = "大模型生成的回答：今天天气晴朗。"
    marked = mark_text(text, policy)
    assert strip_text_mark(marked) == text and marked != text
    verdict = verify_text(marked, trust)
    assert verdict.status is Status.VERIFIED and verdict.notice == "confirmed"
    assert verdict.record is not None and verdict.record.ContentProducer == policy.producer


def test_mark_survives_rewrapping_but_not_editing(policy: LabelPolicy, trust: TrustStore) -> None:
    marked = mark_text("The quick brown fox\njumps over the lazy dog.", policy)
    rewrapped = "  " + marked.replace("\n", "\r\n   ") + "\n"
    assert verify_text(rewrapped, trust).status is Status.VERIFIED
    edited = marked.replace("lazy", "busy")
    assert verify_text(edited, trust).status is Status.ALTERED


def test_mark_copied_to_other_text_is_altered(policy: LabelPolicy, trust: TrustStore) -> None:
    marked = mark_text("original answer", policy)
    mark = marked[1 : -len("riginal answer")]
    assert verify_text("x" + mark + "ther words", trust).status is Status.ALTERED


def test_unknown_key_is_untrusted_not_verified(policy: LabelPolicy) -> None:
    marked = mark_text("hello", policy)
    verdict = verify_text(marked, TrustStore([SigningKey.generate().public_key]))
    assert verdict.status is Status.UNTRUSTED and verdict.signature_valid is None


def test_remarking_replaces_the_mark(policy: LabelPolicy) -> None:
    twice = mark_text(mark_text("hello", policy), policy)
    assert read_text_mark(twice) is not None
    assert len(strip_text_mark(twice)) == len("hello")
    assert sum(1 for c in twice if 0xFE00 <= ord(c) <= 0xFE0F or ord(c) >= 0xE0100) < 200


def test_visible_only_text_is_suspected() -> None:
    verdict = verify_text("【AI生成】一段文字")
    assert verdict.status is Status.NO_LABEL and verdict.notice == "suspected"
    assert verify_text("plain").notice == "none"


def test_truncated_mark_is_malformed(policy: LabelPolicy) -> None:
    marked = mark_text("hello world", policy)
    assert verify_text(marked[:20]).status is Status.MALFORMED_LABEL


@given(st.text(max_size=200))
def test_mark_round_trip_property(text: str) -> None:
    policy = _PROPERTY_POLICY
    marked = mark_text(text, policy)
    assert strip_text_mark(marked) == strip_text_mark(text) or not text
    assert verify_text(marked, TrustStore([policy.signing_key.public_key])).status is Status.VERIFIED  # type: ignore[union-attr]


@given(
    st.text(
        alphabet=st.characters(min_codepoint=0xFE00, max_codepoint=0xFE0F) | st.sampled_from("aAIGC"),
        max_size=120,
    )
)
def test_verify_text_never_raises(text: str) -> None:
    verify_text(text)


_PROPERTY_POLICY = LabelPolicy(provider_name="ExampleAI", signing_key=SigningKey.generate())


# -- Markdown front matter ------------------------------------------------------------------------


def test_markdown_front_matter_round_trip(policy: LabelPolicy, trust: TrustStore) -> None:
    doc = "---\ntitle: Report\n---\n# Report\n\nBody text.\n"
    labeled = label_markdown(doc, policy)
    assert labeled.startswith('---\ntitle: Report\nAIGC: \'{"Label":"1"')
    assert "【AI生成】" in labeled
    verdict = verify_text(labeled, trust)
    assert verdict.status is Status.VERIFIED and verdict.label_source == "front-matter"
    assert label_markdown(labeled, policy) == labeled  # idempotent


def test_markdown_without_front_matter_and_crlf(policy: LabelPolicy, trust: TrustStore) -> None:
    doc = "Line one.\r\nLine two.\r\n"
    labeled = label_markdown(doc, policy, visible=None)
    assert labeled.startswith("---\r\nAIGC: '") and labeled.endswith(doc)
    assert verify_text(labeled, trust).ok


def test_markdown_edit_detected_and_label_edit_mismatch(policy: LabelPolicy, trust: TrustStore) -> None:
    labeled = label_markdown("# T\n\nBody.\n", policy)
    assert verify_text(labeled.replace("Body", "Edited"), trust).status is Status.ALTERED
    forged = labeled.replace('"Label":"1"', '"Label":"3"')
    assert verify_text(forged, trust).status is Status.LABEL_MISMATCH


def test_unsigned_markdown_label(policy: LabelPolicy) -> None:
    labeled = label_markdown("hi\n", policy.with_changes(signing_key=None))
    assert verify_text(labeled).status is Status.UNSIGNED
