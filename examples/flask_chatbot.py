"""A Flask chatbot made compliant with one line (WSGI: Flask, Django, any PEP 3333 app).

    LABELER_CONFIG=examples/labeler.toml gunicorn -k gthread --threads 8 examples.flask_chatbot:app

Any OpenAI client can talk to it, streaming or not; every answer leaves with a visible label,
the AIGC headers and a signed record (streams: the label first, the record as a trailing SSE
comment), and the picture at /picture.png leaves labelled (visible + implicit + signed).
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator

from flask import Flask, Response, jsonify, request
from PIL import Image, ImageDraw

from labeler import LabelPolicy
from labeler.wsgi import LabelingMiddleware

app = Flask(__name__)
app.wsgi_app = LabelingMiddleware(app.wsgi_app, policy=LabelPolicy.load())  # type: ignore[method-assign]  # <- the one line

#: seconds between streamed tokens (a real model's pace; the tests set it)
TOKEN_DELAY = 0.02


def my_model(prompt: str) -> list[str]:
    """Stands in for your real model: the answer, token by token."""
    return f"You asked: {prompt}. Here is a helpful answer.".split(" ")


@app.post("/v1/chat/completions")
def chat() -> Response:
    body = request.get_json(force=True)
    tokens = my_model(body["messages"][-1]["content"])
    envelope = {"id": "chatcmpl-flask", "created": int(time.time()), "model": body.get("model", "m")}
    if not body.get("stream"):
        message = {"role": "assistant", "content": " ".join(tokens)}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        return jsonify({**envelope, "object": "chat.completion", "choices": [choice]})

    def events() -> Iterator[str]:
        for i, token in enumerate(tokens):
            delta = {"content": token if i == 0 else " " + token}
            chunk = {**envelope, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}
            yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"
            time.sleep(TOKEN_DELAY)
        done = {"index": 0, "delta": {}, "finish_reason": "stop"}
        yield f"data: {json.dumps({**envelope, 'object': 'chat.completion.chunk', 'choices': [done]})}\n\n"
        yield "data: [DONE]\n\n"

    return Response(events(), mimetype="text/event-stream", headers={"Cache-Control": "no-cache"})


@app.get("/picture.png")
def picture() -> Response:
    """A generated picture (stands in for your image model)."""
    img = Image.new("RGB", (640, 480), (40, 90, 160))
    ImageDraw.Draw(img).ellipse((160, 80, 480, 400), fill=(240, 200, 60))
    out = io.BytesIO()
    img.save(out, "PNG")
    return Response(out.getvalue(), mimetype="image/png")


if __name__ == "__main__":  # development server; use gunicorn (above) in production
    app.run(host="127.0.0.1", port=8000, threaded=True)
