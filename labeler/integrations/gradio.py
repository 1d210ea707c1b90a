"""Label a Gradio app with one call: ``label_app(demo, policy)``.

Gradio sends what an app's functions return as its own queue/SSE events, not OpenAI JSON, so
:class:`~labeler.middleware.LabelingMiddleware` can't see them. This module labels them where
they are made instead: it wraps the event functions of the ``gr.Blocks`` (``demo.fns``) and, for
a ``gr.ChatInterface``, its chat function, so that

* chat answers (``gr.ChatInterface`` responses, assistant messages in ``gr.Chatbot`` outputs)
  carry the visible text label. A streamed answer (a generator yielding the cumulative message)
  gets the start label on every yield, so the user sees it once, from the first token on, and
  nothing is held back; an end label (``text_position="end"``/``"both"``) comes as one last yield
  after the generator finishes;
* pictures (``gr.Image``, ``gr.Gallery`` outputs; image files in chat messages) carry the visible
  label, the implicit label and the signature (:func:`labeler.labeling.label_with_record`) before
  Gradio caches and serves them: what a user downloads verifies;
* the page shows the label, provider, system and filing numbers persistently, above everything
  else (a ``gr.HTML`` block with ``elem_id="aigc-label"``).

Call it after the app is built and before ``launch()``. Functions that can't be wrapped this way
(``@gr.render`` bodies, component-instance updates such as ``return gr.Image(value=...)``, image
URLs) are documented in docs/integrations-gradio.md.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import dataclasses
import functools
import html
import inspect
import logging
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import anyio.to_thread

try:
    import gradio as gr
    from gradio import image_utils, processing_utils
    from gradio.utils import get_upload_folder
except ImportError as exc:  # pragma: no cover - the extra is missing
    raise ImportError("labeler.integrations.gradio needs Gradio: pip install 'aigc-labeler[gradio]'") from exc

from ..adapters.base import Labels
from ..errors import LabelerError
from ..labeling import label_with_record
from ..policy import LabelPolicy
from ..response_labeling import ResponseLabeller
from ..text import Position, find_text_labels

__all__ = ["GradioLabeler", "label_app"]

logger = logging.getLogger("labeler.integrations.gradio")

Phase = Literal["whole", "stream", "final"]
#: a function that labels one output value of a component, in a phase
Labeller = Callable[[Any, Phase], Any]
_MARK = "__aigc_labeler__"  #: set on wrapped functions, so labelling twice wraps once
_URL_PREFIXES = ("http://", "https://", "data:")
_FONT = "NotoSansCJKsc-Bold-labeler-subset.otf"  #: labeler/fonts, as the demo page serves it
_HEAD = 128  #: characters of a streamed text in which a start label is looked for


def label_app(
    demo: Any,
    policy: LabelPolicy,
    *,
    text_position: Position = "start",
    visible_images: bool = True,
    fail_mode: Literal["closed", "open"] = "closed",
    banner: bool = True,
) -> Any:
    """Label what ``demo`` (a ``gr.Blocks``, ``gr.Interface`` or ``gr.ChatInterface``) serves:
    chat text, pictures, and a persistent label on the page. Returns ``demo``; idempotent.

    ``fail_mode="closed"`` (default): content that can't be labelled is not served, the event
    ends with a ``gr.Error``; ``"open"``: it is served unlabelled, logged and counted in
    ``demo.aigc_labeler.stats``."""
    labeler = getattr(demo, "aigc_labeler", None)
    if labeler is None:
        labeler = GradioLabeler(
            policy,
            text_position=text_position,
            visible_images=visible_images,
            fail_mode=fail_mode,
            cache_dir=demo.GRADIO_CACHE,
        )
        demo.aigc_labeler = labeler
    labeler.attach(demo, banner=banner)
    return demo


class GradioLabeler:
    """The labelling state of one app: label texts, options, counters (``stats``: ``texts``,
    ``images``, ``failed``, ``unlabeled_urls``)."""

    def __init__(
        self,
        policy: LabelPolicy,
        *,
        text_position: Position = "start",
        visible_images: bool = True,
        fail_mode: Literal["closed", "open"] = "closed",
        cache_dir: str | None = None,
    ) -> None:
        if fail_mode not in ("closed", "open"):
            raise ValueError("fail_mode must be 'closed' or 'open'")
        self.policy = policy
        self.labels = Labels(policy, text_position)
        self.visible_images = visible_images
        self.fail_mode = fail_mode
        self.cache_dir = cache_dir
        self.stats: collections.Counter[str] = collections.Counter()

    # -- the app ------------------------------------------------------------------------------------

    def attach(self, demo: Any, *, banner: bool = True) -> None:
        """Wrap ``demo``'s functions and add the persistent label (each once)."""
        chatbots: set[int] = set()
        for chat in _chat_interfaces(demo):
            if not getattr(chat.fn, _MARK, False):
                extra = [self._component_labeller(c) for c in getattr(chat, "additional_outputs", None) or ()]
                chat.fn = self.wrap(chat.fn, self._chat_response_labeller(extra), threads=bool(extra))
            chatbots.add(id(chat.chatbot))  # its answers come from chat.fn, labelled there
        for block_fn in demo.fns.values():
            if block_fn.fn is None or block_fn.renderable is not None or getattr(block_fn.fn, _MARK, False):
                continue
            outputs = [None if id(c) in chatbots else self._component_labeller(c) for c in block_fn.outputs]
            if any(outputs):
                media = any(self._is_media(c) for c in block_fn.outputs)
                block_fn.fn = self.wrap(block_fn.fn, self._outputs_labeller(block_fn.outputs, outputs), media)
        if banner and not any(getattr(b, "elem_id", None) == "aigc-label" for b in demo.blocks.values()):
            self._add_banner(demo)

    def label_info(self) -> dict[str, Any]:
        """What the page shows persistently (the middleware's ``/.well-known/aigc-label``)."""
        return ResponseLabeller(self.policy, batch_signatures=False).label_info()

    def banner_html(self) -> str:
        info = self.label_info()
        esc = html.escape
        parts = [f"<strong>【{esc(info['label'])}】</strong>"]
        if info["provider"]:
            parts.append(esc(info["provider"]))
        if info["system"] and info["system"] != "unknown":
            parts.append(esc(" ".join(filter(None, (info["system"], info["system_version"])))))
        if info["filing_numbers"]:
            numbers = ", ".join(esc(n) for n in info["filing_numbers"])
            parts.append(f'备案号 / Filing: <span class="aigc-filing">{numbers}</span>')
        if info["launch_number"]:
            parts.append(f"上线编号 / Launch: {esc(info['launch_number'])}")
        return (
            _font_css()
            + '<div class="aigc-label" role="note" data-ai-generated="true" style="padding:6px 10px;'
            "border-radius:6px;background:#1f2937;color:#fff;font-size:14px;"
            'font-family:var(--font),sans-serif,LabelerCJK">' + " · ".join(parts) + "</div>"
        )

    def _add_banner(self, demo: Any) -> None:
        with demo:
            banner = gr.HTML(self.banner_html(), elem_id="aigc-label")
        demo.children.remove(banner)
        demo.children.insert(0, banner)  # above the chat
        demo.config = demo.get_config_file()

    # -- wrapping functions -------------------------------------------------------------------------

    def wrap(self, fn: Callable[..., Any], label: Labeller, threads: bool = False) -> Callable[..., Any]:
        """``fn`` with ``label`` applied to each value it returns or yields; of the same kind
        (sync/async, function/generator), with the same signature (Gradio reads it). ``threads``:
        async kinds label in a worker thread (pictures), not on the event loop."""
        end = bool(self.labels.end)

        async def run(item: Any, phase: Phase) -> Any:
            if threads:
                return await anyio.to_thread.run_sync(self._guarded, label, item, phase)
            return self._guarded(label, item, phase)

        wrapper: Callable[..., Any]
        if inspect.isasyncgenfunction(fn):

            @functools.wraps(fn)
            async def agen(*args: Any, **kwargs: Any) -> Any:
                last, seen = None, False
                async with contextlib.aclosing(fn(*args, **kwargs)) as stream:  # a stop closes it at once
                    async for item in stream:
                        last, seen = item, True
                        yield await run(item, "stream")
                if end and seen:
                    yield await run(last, "final")

            wrapper = agen
        elif inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def gen(*args: Any, **kwargs: Any) -> Any:
                last, seen = None, False
                with contextlib.closing(fn(*args, **kwargs)) as stream:
                    for item in stream:
                        last, seen = item, True
                        yield self._guarded(label, item, "stream")
                if end and seen:
                    yield self._guarded(label, last, "final")

            wrapper = gen
        elif inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def coro(*args: Any, **kwargs: Any) -> Any:
                return await run(await fn(*args, **kwargs), "whole")

            wrapper = coro
        else:

            @functools.wraps(fn)
            def call(*args: Any, **kwargs: Any) -> Any:
                return self._guarded(label, fn(*args, **kwargs), "whole")

            wrapper = call
        setattr(wrapper, _MARK, True)
        return wrapper

    def _guarded(self, label: Labeller, item: Any, phase: Phase) -> Any:
        try:
            return label(item, phase)
        except (LabelerError, OSError, ValueError) as exc:
            self.stats["failed"] += 1
            if self.fail_mode == "open":
                logger.warning("served unlabelled (fail_mode='open'): %s", exc)
                return item
            logger.error("could not label an output: %s", exc)
            raise gr.Error("This output could not be labelled as AI-generated, so it is not shown.") from exc

    # -- what each output gets ----------------------------------------------------------------------

    @staticmethod
    def _is_media(component: Any) -> bool:
        """Outputs labelled in a worker thread from async functions (pictures; chat text is
        labelled on the loop: a thread hop per streamed event would cost more than the label)."""
        return isinstance(component, (gr.Image, gr.Gallery))

    def _component_labeller(self, component: Any) -> Labeller | None:
        if isinstance(component, gr.Chatbot):
            return self.label_history
        if isinstance(component, gr.Image):
            fmt = getattr(component, "format", "webp") or "webp"
            return lambda value, phase: self.label_image(value, fmt)
        if isinstance(component, gr.Gallery):
            fmt = getattr(component, "format", "webp") or "webp"
            return lambda value, phase: self.label_gallery(value, fmt)
        return None

    def _outputs_labeller(self, components: Any, labellers: list[Labeller | None]) -> Labeller:
        """One function's return value: a value (one output), a tuple/list (several) or a dict
        keyed by component; ``gr.update`` dicts get their ``value`` labelled."""
        by_id = {id(c): f for c, f in zip(components, labellers, strict=True)}

        def one(f: Labeller | None, value: Any, phase: Phase) -> Any:
            if f is None:
                return value
            if isinstance(value, dict) and value.get("__type__") == "update":
                return {**value, "value": f(value["value"], phase)} if "value" in value else value
            return f(value, phase)

        def label(prediction: Any, phase: Phase) -> Any:
            if (  # {component: value}
                isinstance(prediction, dict)
                and prediction
                and not _is_update(prediction)
                and all(hasattr(k, "_id") for k in prediction)
            ):
                return {k: one(by_id.get(id(k)), v, phase) for k, v in prediction.items()}
            if len(labellers) == 1:
                return one(labellers[0], prediction, phase)
            if isinstance(prediction, (tuple, list)) and len(prediction) == len(labellers):
                return _like(
                    prediction, [one(f, v, phase) for f, v in zip(labellers, prediction, strict=True)]
                )
            return prediction

        return label

    def _chat_response_labeller(self, extra: list[Labeller | None]) -> Labeller:
        """A ChatInterface function's return value: the response, then its additional outputs."""

        def label(item: Any, phase: Phase) -> Any:
            if extra and isinstance(item, (tuple, list)) and len(item) == len(extra) + 1:
                rest = [v if f is None else f(v, phase) for f, v in zip(extra, item[1:], strict=True)]
                return _like(item, [self.label_message(item[0], phase), *rest])
            return self.label_message(item, phase)

        return label

    # -- text ---------------------------------------------------------------------------------------

    def label_text(self, text: str, phase: Phase) -> str:
        """``whole``: Markdown-aware and idempotent (:meth:`Labels.apply`). ``stream``: the start
        label as a fixed prefix, so every cumulative yield begins the same way and the user sees
        it once; ``final``: that plus the end label."""
        self.stats["texts"] += 1
        if phase == "whole":
            return self.labels.apply(text)
        start = self.labels.start
        # a label already there (an earlier turn's, the model's own) is kept: judged on the head
        # only, so that the check costs the same on the 1000th event of a long answer
        if start and not text.startswith(start) and not find_text_labels(text[:_HEAD])[0]:
            text = start + text
        if phase == "final" and self.labels.end and not text.endswith(self.labels.end):
            text += self.labels.end
        return text

    def label_message(self, message: Any, phase: Phase) -> Any:
        """One chat response as a ChatInterface function returns it: a string, a message dict,
        a ``gr.ChatMessage``, a ``{"text", "files"}`` dict or a list of these (the text label on
        the first text, every picture file labelled)."""
        if isinstance(message, str):
            return self.label_text(message, phase)
        if isinstance(message, gr.ChatMessage):
            return dataclasses.replace(message, content=self._label_content(message.content, phase))
        if isinstance(message, dict) and "content" in message:
            return {**message, "content": self._label_content(message["content"], phase)}
        if isinstance(message, dict) and "text" in message and "files" in message:
            files = [self._label_file(f) for f in message["files"]]
            return {**message, "text": self.label_text(message["text"] or "", phase), "files": files}
        if isinstance(message, list):
            done, out = False, []
            for m in message:
                if done or _is_thought(m):
                    out.append(self._label_files_only(m))
                else:
                    out.append(self.label_message(m, phase))
                    done = _has_text(m)
            return out
        return message

    def label_history(self, history: Any, phase: Phase) -> Any:
        """A ``gr.Chatbot`` value: every assistant message that is not a thought gets the label
        (idempotent: labelled ones stay as they are). Copies what it changes."""
        if not isinstance(history, list):
            return history
        out = []
        for m in history:
            role = m.get("role") if isinstance(m, dict) else getattr(m, "role", None)
            if role == "assistant" and not _is_thought(m):
                m = self.label_message(m, phase)
            elif isinstance(m, (list, tuple)) and len(m) == 2 and isinstance(m[1], str):  # [user, bot]
                m = _like(m, [m[0], self.label_text(m[1], phase)])
            out.append(m)
        return out

    def _label_content(self, content: Any, phase: Phase) -> Any:
        if isinstance(content, str):
            return self.label_text(content, phase)
        if isinstance(content, dict):
            if content.get("type") == "text" and isinstance(content.get("text"), str):
                return {**content, "text": self.label_text(content["text"], phase)}
            return self._label_file(content)
        if isinstance(content, list):
            out, done = [], False
            for part in content:
                if not done and (
                    isinstance(part, str) or (isinstance(part, dict) and part.get("type") == "text")
                ):
                    out.append(self._label_content(part, phase))
                    done = True
                else:
                    out.append(self._label_file(part) if isinstance(part, dict) else part)
            return out
        return content

    def _label_files_only(self, message: Any) -> Any:
        if isinstance(message, dict) and isinstance(message.get("content"), (dict, list)):
            content = message["content"]
            if isinstance(content, list):
                return {
                    **message,
                    "content": [self._label_file(p) if isinstance(p, dict) else p for p in content],
                }
            return {**message, "content": self._label_file(content)}
        return message

    # -- pictures -----------------------------------------------------------------------------------

    def _label_file(self, part: Any) -> Any:
        """A file dict in a chat message (``{"path": ...}``): pictures labelled, the rest kept."""
        if not isinstance(part, dict) or not isinstance(part.get("path"), str):
            return part
        mime = str(part.get("mime_type") or "")
        if mime and not mime.startswith("image/"):
            return part
        if not mime and Path(part["path"]).suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp", ".gif"):
            return part
        return {**part, "path": self.label_image(part["path"], "png")}

    def label_image(self, value: Any, fmt: str = "webp") -> Any:
        """One picture as a Gradio function returns it (PIL image, numpy array, file path):
        the path of a labelled copy in Gradio's cache (visible + implicit label + signature).
        ``None`` stays ``None``; URLs can't be labelled here and are counted."""
        if value is None:
            return None
        cache = self.cache_dir or get_upload_folder()
        if isinstance(value, str) and value.startswith(_URL_PREFIXES):
            self.stats["unlabeled_urls"] += 1
            logger.warning("an image URL is served unlabelled: return the picture, not its URL")
            return value
        if isinstance(value, (str, Path)):
            path = Path(value)
        else:  # PIL or numpy: encoded exactly as Gradio would, then labelled
            path = Path(image_utils.save_image(value, cache, fmt))
        labelled = label_with_record(
            path.read_bytes(), self.policy, visible=self.visible_images, on_existing="keep"
        )[0]
        self.stats["images"] += 1
        return processing_utils.save_bytes_to_cache(labelled, path.name, cache)

    def label_gallery(self, value: Any, fmt: str = "webp") -> Any:
        if not isinstance(value, list):
            return value
        out: list[Any] = []
        for item in value:
            if isinstance(item, (tuple, list)) and len(item) == 2:
                out.append(_like(item, [self.label_image(item[0], fmt), item[1]]))
            else:
                out.append(self.label_image(item, fmt))
        return out


@functools.cache
def _font_css() -> str:
    """The bundled CJK subset (label words, 备案号, brackets) as the last fallback font of the
    banner and of answers: the label is legible on a machine without CJK fonts, and a machine
    with them uses its own. Inline (34 KB in the page config): no route or static path needed.
    The banner's text stays white whatever the theme makes of ``strong`` and ``span``."""
    data = (resources.files("labeler.fonts") / _FONT).read_bytes()
    return (
        '<style>@font-face{font-family:"LabelerCJK";font-weight:400 900;'
        f'src:url(data:font/otf;base64,{base64.b64encode(data).decode()}) format("opentype")}}'
        "#aigc-label .aigc-label,#aigc-label .aigc-label *{color:#fff!important}"
        '[data-testid="bot"] .message-content{font-family:var(--font),sans-serif,LabelerCJK}</style>'
    )


def _chat_interfaces(demo: Any) -> list[Any]:
    """``demo`` if it is a ChatInterface, and every ChatInterface rendered inside it (found by
    the bound methods it registers as event functions: its fns are merged into the page's)."""
    found = {id(demo): demo} if isinstance(demo, gr.ChatInterface) else {}
    for block_fn in demo.fns.values():
        owner = getattr(block_fn.fn, "__self__", None)
        if isinstance(owner, gr.ChatInterface):
            found.setdefault(id(owner), owner)
    return list(found.values())


def _like(original: list[Any] | tuple[Any, ...], items: list[Any]) -> list[Any] | tuple[Any, ...]:
    """``items`` as a list or a tuple, as ``original`` was."""
    return items if isinstance(original, list) else tuple(items)


def _is_update(value: dict[Any, Any]) -> bool:
    return value.get("__type__") == "update"


def _is_thought(message: Any) -> bool:
    """A message shown as a collapsible thought / tool use (``metadata.title``)."""
    meta = message.get("metadata") if isinstance(message, dict) else getattr(message, "metadata", None)
    return bool(isinstance(meta, dict) and meta.get("title"))


def _has_text(message: Any) -> bool:
    content = message.get("content") if isinstance(message, dict) else getattr(message, "content", message)
    if isinstance(content, str):
        return True
    if isinstance(content, list):
        return any(isinstance(p, str) or (isinstance(p, dict) and p.get("type") == "text") for p in content)
    return isinstance(content, dict) and content.get("type") == "text"
