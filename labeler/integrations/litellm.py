"""``LabelingGuardrail``: GB 45438-2025 labels on what a LiteLLM proxy sends, set up in its config:

    guardrails:
      - guardrail_name: aigc-label
        litellm_params:
          guardrail: labeler.integrations.litellm.LabelingGuardrail
          mode: post_call
          default_on: true
          labeler_config: /etc/labeler/labeler.toml   # else $LABELER_CONFIG and LABELER_* variables

What it labels, with the middleware's own labelling (:class:`~labeler.response_labeling.ResponseLabeller`,
:class:`~labeler.stream_labeling.StreamLabeller`):

* Chat Completions, Responses and Anthropic Messages answers: the visible label in the text;
  the signed GB record of the text a client shows (``media_format`` ``text``) in the ``AIGC``
  response header, beside ``AI-Generated``, ``AIGC-Label`` and ``AIGC-Filing-Number``.
  LiteLLM serialises the body after its hooks run, so the record signs the text, not the body
  bytes; :func:`verify_completion` checks it.
* Streams of those three APIs, event by event as LiteLLM relays them (nothing is held back): the
  label goes out as its own chunk/event, the upstream's chunks pass as they are, and the signed
  record of the streamed text ends the stream as an SSE comment (``: AIGC {...}``), which every
  SSE client (the openai and anthropic SDKs included) ignores: the format
  :func:`labeler.verification.verify_stream` checks, as for the middleware.
* Image generations with ``b64_json``: visible + implicit label + signature in each image
  (``labeler verify`` confirms); ``url`` images can't be labelled here and are counted.

LiteLLM is imported only by this module (``pip install 'aigc-labeler[litellm]'``).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import logging
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from litellm.integrations.custom_guardrail import CustomGuardrail
from litellm.types.guardrails import GuardrailEventHooks

from ..adapters import images
from ..adapters.base import Labels
from ..policy import LabelPolicy
from ..response_labeling import TEXT_JSON_ADAPTERS, ResponseLabeller
from ..sse import Event, format_comment
from ..stream_labeling import COMMENT_PREFIX, StreamLabeller, Unlabelable
from ..text import Position
from ..verification import Verdict, verify_stream

if TYPE_CHECKING:
    from ..signing import TrustStore

__all__ = ["LabelingGuardrail", "response_text", "verify_completion"]

logger = logging.getLogger("labeler.integrations.litellm")

#: request-data key: what the success hook labelled, for the response-headers hook (plain JSON
#: values: LiteLLM may log or copy the request data)
_STATE_KEY = "_aigc_labeler"


class LabelingGuardrail(CustomGuardrail):
    """A LiteLLM guardrail (``mode: post_call``) that labels responses and streams.

    ``labeler_config``: the labeler TOML (default ``$LABELER_CONFIG``, overlaid with ``LABELER_*``
    variables, as :meth:`LabelPolicy.load`); or ``policy`` from Python. ``text_position``,
    ``visible_images``: as the middleware's. ``fail_mode``: ``closed`` (default) refuses what
    can't be labelled (an error response, a stream ended with an error); ``open`` passes it on
    unlabelled, logged. Every other keyword goes to LiteLLM's ``CustomGuardrail``."""

    def __init__(
        self,
        labeler_config: str | None = None,
        *,
        policy: LabelPolicy | None = None,
        text_position: Position = "start",
        visible_images: bool = True,
        fail_mode: Literal["closed", "open"] = "closed",
        **kwargs: Any,
    ) -> None:
        if kwargs.get("default_on") is None:
            kwargs["default_on"] = True  # labelling is an obligation, not an opt-in per request
        kwargs.setdefault("event_hook", "post_call")
        super().__init__(**kwargs)
        policy = policy if policy is not None else LabelPolicy.load(labeler_config)
        #: what labelling means apart from any transport (the middleware's own half): options,
        #: labels, records, headers, counters
        self.labeller = ResponseLabeller(
            policy, text_position=text_position, visible_images=visible_images, fail_mode=fail_mode
        )
        self.policy = policy
        self.labels: Labels = self.labeller.labels
        self.fail_mode = fail_mode
        self.stats = self.labeller.stats  #: labeled, passed, fail_open, fail_closed, unlabeled_urls

    # -- whole responses --------------------------------------------------------------------------

    async def async_post_call_success_hook(
        self, data: dict[str, Any], user_api_key_dict: Any, response: Any
    ) -> Any:
        try:
            return await self._label_response(data, response)
        except Exception as exc:
            if self.fail_mode == "open":
                self.stats["fail_open"] += 1
                logger.warning("labeling failed (open mode): %s: %s", type(exc).__name__, exc)
                return None
            self.stats["fail_closed"] += 1
            logger.warning("labeling failed (closed mode): %s: %s", type(exc).__name__, exc)
            raise RuntimeError(f"the response could not be labelled as AI-generated: {exc}") from exc

    async def _label_response(self, data: dict[str, Any], response: Any) -> Any:
        obj = _as_dict(response)
        if obj is None:
            self.stats["passed"] += 1
            return None
        if any(label(obj, self.labels) for label in TEXT_JSON_ADAPTERS):
            digest = hashlib.sha256(response_text(obj).encode("utf-8", "surrogatepass")).digest()
            record = await self.labeller.batch_signed_record_json(digest, "text")
            data[_STATE_KEY] = {"record": record, "unlabeled_urls": 0}
        else:
            # images are decoded, labelled and re-encoded: CPU work, off the event loop (as the middleware)
            recognised, unlabeled = await asyncio.to_thread(
                images.label_json, obj, self.policy, self.labeller.visible_images, self.labeller.c2pa
            )
            if not recognised:
                self.stats["passed"] += 1
                return None
            self.stats["unlabeled_urls"] += unlabeled
            data[_STATE_KEY] = {"record": None, "unlabeled_urls": unlabeled}
        self.stats["labeled"] += 1
        if isinstance(response, dict):
            response.update(obj)
        else:
            _write_back(response, obj)
        return response

    async def async_post_call_response_headers_hook(
        self,
        data: dict[str, Any],
        user_api_key_dict: Any,
        response: object,
        request_headers: dict[str, str] | None = None,
        litellm_call_info: dict[str, object] | None = None,
    ) -> dict[str, str] | None:
        labelled = data.get(_STATE_KEY)
        if isinstance(labelled, dict):
            headers = _str_headers(self.labeller.label_headers(labelled.get("record")))
            if labelled.get("unlabeled_urls"):
                headers["AIGC-Unlabeled-URLs"] = str(labelled["unlabeled_urls"])
            return headers
        if (
            response is not None
            and hasattr(response, "__aiter__")  # a stream: labelled as it goes
            and self.should_run_guardrail(data=data, event_type=GuardrailEventHooks.post_call) is True
        ):
            return _str_headers(self.labeller.stream_headers(True))
        return None

    # -- streams ------------------------------------------------------------------------------------

    async def async_post_call_streaming_iterator_hook(
        self, user_api_key_dict: Any, response: Any, request_data: dict[str, Any]
    ) -> AsyncGenerator[Any, None]:
        stream = _LiteLLMStream(self, request_data)
        async for item in response:
            if stream.passing:
                yield item
                continue
            for out in stream.feed(item):
                yield out
            if stream.stopped:  # closed: the API's own error event is out; the rest is not sent
                aclose = getattr(response, "aclose", None)
                if aclose is not None:
                    await aclose()  # the upstream's stream is released now, not when collected
                return
        for out in stream.end():
            yield out


@dataclass(slots=True)
class _ObjectEvent(Event):
    """A LiteLLM stream object seen by an adapter as an SSE event: its JSON is the dump;
    its ``raw`` is a marker that stands for the object (an adapter passing it on returns it)."""

    obj: Any = None

    def json(self) -> Any:
        return self.obj


class _LiteLLMStream:
    """One stream, labelled by the middleware's :class:`StreamLabeller`. LiteLLM hands the hook
    SSE bytes (``/v1/messages``), fed to it as they are, or objects (chat chunks, Responses
    events), each seen by the stream's adapter as an event whose JSON is the object's dump. An
    object the adapter passes on goes on as the object itself (LiteLLM serialises it as it would
    have); what the adapter inserts or rewrites, and the record, go as SSE bytes, which LiteLLM
    relays verbatim."""

    def __init__(self, guardrail: LabelingGuardrail, request_data: dict[str, Any]) -> None:
        self.g = guardrail
        self.labelling = StreamLabeller(guardrail.labeller)
        self.pending: dict[bytes, Any] = {}  #: marker -> the object it stands for
        self.count = 0
        self.passing = False  #: labelling failed, open mode: the rest passes untouched
        self.stopped = False  #: labelling failed, closed mode: nothing more is sent
        model = request_data.get("model")
        self.model = model if isinstance(model, str) else None  #: as LiteLLM restamps chunks

    def feed(self, item: Any) -> list[Any]:
        try:
            if isinstance(item, bytes | str):
                self.labelling.feed(item.encode("utf-8") if isinstance(item, str) else item)
                return self._take()
            obj = _as_dict(item)
            if obj is None:
                return [item]
            return self._feed_object(item, obj)
        except Unlabelable as exc:
            return self._failed(str(exc), exc.unsent, item)
        except Exception as exc:
            return self._failed(f"{type(exc).__name__}: {exc}", b"", item)

    def end(self) -> list[Any]:
        if self.passing or self.stopped:
            return []
        try:
            self.labelling.end()
            return self._take()
        except Unlabelable as exc:
            return self._failed(str(exc), exc.unsent, None)

    def _take(self) -> list[Any]:
        """What to send now: objects as themselves, bytes runs joined."""
        out: list[Any] = []
        run: list[bytes] = []
        for piece in self.labelling.take():
            if piece in self.pending:
                if run:
                    out.append(b"".join(run))
                    run = []
                out.append(self.pending.pop(piece))
            elif piece:
                run.append(piece)
        if run:
            out.append(b"".join(run))
        return out

    def _feed_object(self, item: Any, obj: dict[str, Any]) -> list[Any]:
        self.count += 1
        marker = b"\x00litellm-object %d" % self.count
        if self.model is not None and obj.get("object") == "chat.completion.chunk":
            obj["model"] = self.model  # the label chunk's envelope as LiteLLM stamps the others
        self.pending[marker] = item
        event = _ObjectEvent(raw=marker, event=None, data=None, newline=b"\n", obj=obj)
        self.labelling.label_event(event)
        return self._take()

    def _failed(self, reason: str, unsent: bytes, item: Any) -> list[Any]:
        """As the middleware: closed, what was labelled gets its end label, its record and the
        API's own error event, then the stream stops; open, the record, then the rest as it came."""
        closed = self.g.fail_mode == "closed"
        logger.warning("stream labelling failed (%s mode): %s", self.g.fail_mode, reason)
        self.g.stats["event_errors"] += 1
        pending = self.labelling.parser.flush()
        out = self.labelling.abandon(closed, reason)
        joined = b"".join(p for p in out if p not in self.pending)
        sent = [joined] if joined else []  # never an empty item: LiteLLM would send it as `data: `
        self.pending.clear()
        if closed:
            self.g.stats["fail_closed"] += 1
            self.stopped = True
            return sent
        self.g.stats["fail_open"] += 1
        self.passing = True
        if item is None or isinstance(item, bytes | str):  # the bytes parsed but not sent
            return [*sent, unsent + pending] if unsent + pending else sent
        return [*sent, item]


def _as_dict(response: Any) -> dict[str, Any] | None:
    if isinstance(response, dict):
        return copy.deepcopy(response)  # labelled apart: the original stays whole if signing fails
    dump = getattr(response, "model_dump", None)
    if not callable(dump):
        return None
    obj = dump(mode="json", exclude_none=True)
    return obj if isinstance(obj, dict) else None


def _write_back(target: Any, new: Any) -> None:
    """Put the labelled strings of ``new`` (a labelled dump of ``target``) into ``target``."""
    items = new.items() if isinstance(new, dict) else enumerate(new)
    for key, value in items:
        if isinstance(target, Mapping | list):
            try:
                current = target[key]
            except (KeyError, IndexError, TypeError):
                continue
        else:
            current = getattr(target, str(key), None)
        if isinstance(value, str):
            if isinstance(current, str) and current != value:
                if isinstance(target, dict | list):
                    target[key] = value
                else:
                    setattr(target, str(key), value)
        elif isinstance(value, dict | list) and current is not None:
            _write_back(current, value)


def _str_headers(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in headers}


def response_text(obj: Mapping[str, Any]) -> str:
    """The text a client shows from a Chat Completions, Responses or Anthropic Messages body
    (every text part, in order): what the guardrail's ``AIGC`` header signs."""
    parts: list[str] = []
    if obj.get("object") in ("chat.completion", "text_completion"):
        for choice in obj.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            if isinstance(choice.get("text"), str):
                parts.append(choice["text"])
            message = choice.get("message")
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                parts += [
                    p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
                ]
    elif obj.get("object") == "response":
        for item in obj.get("output") or []:
            if isinstance(item, dict) and item.get("type") == "message":
                parts += [
                    p["text"]
                    for p in item.get("content") or []
                    if isinstance(p, dict)
                    and p.get("type") == "output_text"
                    and isinstance(p.get("text"), str)
                ]
    elif obj.get("type") == "message":
        parts += [
            b["text"]
            for b in obj.get("content") or []
            if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
        ]
    return "".join(parts)


def verify_completion(
    headers: Mapping[str, str] | Any, body: bytes | str | Mapping[str, Any], trust: TrustStore | None = None
) -> Verdict:
    """Verdict on a non-streamed answer labelled by the guardrail: its ``AIGC`` header against
    the text the body shows (:func:`response_text`). Streams: :func:`labeler.verification.verify_stream`."""
    obj = json.loads(body) if isinstance(body, bytes | str) else body
    multi = getattr(headers, "multi_items", None)
    items = multi() if callable(multi) else headers.items() if isinstance(headers, Mapping) else headers
    records = [str(v) for k, v in items if str(k).lower() == "aigc"]
    comments = b"".join(format_comment(COMMENT_PREFIX + r) for r in records)
    return verify_stream(response_text(obj), comments, trust=trust)
