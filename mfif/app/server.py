"""The web layer of ``mfif app``: a thin Starlette application over :class:`AppSession`.

Safety: every request must carry the per-launch token (``?token=`` in the URL the CLI opens, then a
cookie the page gets, or the ``X-Mfif-Token`` header); files are reached only inside the opened
folder; uploads are limited in size; every error is a JSON ``{"error": "<one sentence>"}``.
"""
from __future__ import annotations

import asyncio
import hmac
import json
import secrets
from importlib import resources
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from mfif.app.session import AccessError, AppSession, encode_jpeg, encode_png
from mfif.errors import InputError, MfifError

STATIC = Path(str(resources.files("mfif.app") / "static"))
TOKEN_HEADER = "x-mfif-token"


def new_token() -> str:
    return secrets.token_urlsafe(24)


class TokenGate:
    """ASGI middleware: refuse (403) any request without the launch token. A valid ``?token=``
    on a page load also sets a cookie (named for the port, so two apps on one host do not clash)."""

    def __init__(self, app, token: str, cookie: str):
        self.app, self.token, self.cookie = app, token, cookie

    def _presented(self, request: Request) -> tuple[str | None, bool]:
        if request.query_params.get("token"):
            return request.query_params["token"], True
        if request.headers.get(TOKEN_HEADER):
            return request.headers[TOKEN_HEADER], False
        return request.cookies.get(self.cookie), False

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request = Request(scope)
        given, from_query = self._presented(request)
        if not given or not hmac.compare_digest(given.encode(), self.token.encode()):
            response = JSONResponse({"error": "this request lacks the app's token: open the address that "
                                               "'mfif app' printed (it ends in ?token=...)"}, status_code=403)
            return await response(scope, receive, send)
        if not from_query:
            return await self.app(scope, receive, send)

        async def send_with_cookie(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"set-cookie", f"{self.cookie}={self.token}; Path=/; HttpOnly; SameSite=Strict".encode()))
                message = {**message, "headers": headers}
            await send(message)

        return await self.app(scope, receive, send_with_cookie)


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _error(exc: Exception) -> JSONResponse:
    if isinstance(exc, AccessError):
        return JSONResponse({"error": str(exc)}, status_code=403)
    if isinstance(exc, MfifError):
        return JSONResponse({"error": str(exc)}, status_code=400)
    if isinstance(exc, MemoryError):
        return JSONResponse({"error": "out of memory"}, status_code=500)
    return JSONResponse({"error": f"internal error: {exc.__class__.__name__}: {exc}"}, status_code=500)


async def _json_body(request: Request) -> dict:
    try:
        data = json.loads(await request.body() or b"{}")
    except ValueError:
        raise InputError("the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise InputError("the request body must be a JSON object")
    return data


def create_app(session: AppSession, token: str, *, port: int = 0) -> Starlette:
    """The ASGI application for one session; ``token`` guards every request."""

    def guarded(handler):
        async def endpoint(request: Request):
            try:
                return await handler(request)
            except Exception as exc:  # every error becomes one sentence in the page
                return _error(exc)
        return endpoint

    async def run(func, *args, **kwargs):
        return await asyncio.to_thread(func, *args, **kwargs)

    async def index(request: Request):
        html = (STATIC / "index.html").read_text(encoding="utf-8")
        return HTMLResponse(html, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})

    async def state(request: Request):
        from mfif.app.session import method_table

        out = await run(session.describe)
        out["folders"] = await run(session.folders)
        out["methods"] = method_table()
        return JSONResponse(out)

    async def open_folder(request: Request):
        data = await _json_body(request)
        return JSONResponse(await run(session.open, str(data.get("path", "."))))

    async def upload(request: Request):
        length = request.headers.get("content-length")
        if length is not None and int(length) > session.upload_limit:
            return JSONResponse({"error": f"the upload is {_mb(int(length))}; the limit is {_mb(session.upload_limit)}"},
                                status_code=413)
        received = 0
        chunks = []
        async for chunk in request.stream():
            received += len(chunk)
            if received > session.upload_limit:
                return JSONResponse({"error": f"the upload exceeds the limit of {_mb(session.upload_limit)}"},
                                    status_code=413)
            chunks.append(chunk)
        body = b"".join(chunks)

        async def replay():
            return {"type": "http.request", "body": body, "more_body": False}

        form = await Request(request.scope, replay).form(max_files=1000, max_part_size=session.upload_limit)
        files = [(f.filename, await f.read()) for f in form.getlist("files") if hasattr(f, "filename")]
        return JSONResponse(await run(session.upload, files))

    def _image(rgb, request: Request) -> Response:
        fmt = request.query_params.get("fmt", "png")
        data = encode_jpeg(rgb) if fmt == "jpg" else encode_png(rgb)
        return Response(data, media_type="image/jpeg" if fmt == "jpg" else "image/png",
                        headers={"Cache-Control": "no-store"})

    async def preview(request: Request):
        kind, ident = request.path_params["kind"], request.path_params["ident"]
        size = request.query_params.get("thumb")
        rgb = await run(session.preview, kind, ident)
        if size:
            from mfif.app.session import THUMB_SIDE, shrink

            rgb = shrink(rgb, THUMB_SIDE)
        return _image(rgb, request)

    async def view(request: Request):
        q = request.query_params
        try:
            x, y, w, h = (float(q[k]) for k in ("x", "y", "w", "h"))
            out_w, out_h = int(q["ow"]), int(q["oh"])
        except (KeyError, ValueError):
            raise InputError("a view needs numbers x, y, w, h, ow, oh") from None
        rgb = await run(session.view, request.path_params["kind"], request.path_params["ident"], x, y, w, h, out_w, out_h)
        return _image(rgb, request)

    async def full(request: Request):
        """A result at full resolution as a 16-bit PNG (for checks and downloads)."""
        from mfif.io import encode_image

        r = session.result(request.path_params["rid"])
        data = await run(encode_image, r.fused.copy(), ".png", 16)
        return Response(data, media_type="image/png")

    async def fuse(request: Request):
        data = await _json_body(request)
        methods = data.get("methods") or []
        if not isinstance(methods, list):
            raise InputError("'methods' must be a list of method names")
        align = data.get("align")
        jid = await run(session.start_fusion, [str(m) for m in methods],
                        align=None if align is None else bool(align), options=data.get("options") or {})
        return JSONResponse({"job": jid})

    async def events(request: Request):
        jid = request.path_params["jid"]
        session.events(jid, 0)  # unknown job -> error now, not inside the stream

        async def stream():
            sent = 0
            while True:
                new, finished = session.events(jid, sent)
                for event in new:
                    yield f"event: {event['event']}\ndata: {json.dumps(event)}\n\n"
                sent += len(new)
                if finished and not new:
                    return
                await asyncio.sleep(0.03)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    async def stroke(request: Request):
        return JSONResponse(await run(session.stroke, request.path_params["rid"], await _json_body(request)))

    async def undo(request: Request):
        return JSONResponse(await run(session.undo, request.path_params["rid"]))

    async def redo(request: Request):
        return JSONResponse(await run(session.redo, request.path_params["rid"]))

    async def strokes(request: Request):
        rid = request.path_params["rid"]
        if request.method == "POST":
            return JSONResponse(await run(session.apply_strokes, rid, await _json_body(request)))
        data = json.dumps(session.strokes(rid), indent=1).encode()
        return Response(data, media_type="application/json",
                        headers={"Content-Disposition": f'attachment; filename="strokes_{rid}.json"'})

    async def export(request: Request):
        data = await _json_body(request)
        try:
            bits = int(data.get("bit_depth", 16))
        except (TypeError, ValueError):
            raise InputError("bit_depth must be 8 or 16") from None
        return JSONResponse(await run(session.export, str(data.get("result", "")), name=str(data.get("name", "")),
                                      bit_depth=bits))

    routes = [
        Route("/", guarded(index)),
        Route("/api/state", guarded(state)),
        Route("/api/open", guarded(open_folder), methods=["POST"]),
        Route("/api/upload", guarded(upload), methods=["POST"]),
        Route("/api/preview/{kind}/{ident}", guarded(preview)),
        Route("/api/view/{kind}/{ident}", guarded(view)),
        Route("/api/result/{rid}/full.png", guarded(full)),
        Route("/api/fuse", guarded(fuse), methods=["POST"]),
        Route("/api/jobs/{jid}/events", guarded(events)),
        Route("/api/result/{rid}/stroke", guarded(stroke), methods=["POST"]),
        Route("/api/result/{rid}/undo", guarded(undo), methods=["POST"]),
        Route("/api/result/{rid}/redo", guarded(redo), methods=["POST"]),
        Route("/api/result/{rid}/strokes", guarded(strokes), methods=["GET", "POST"]),
        Route("/api/export", guarded(export), methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes)
    return TokenGate(app, token, cookie=f"mfif_token_{port}")
