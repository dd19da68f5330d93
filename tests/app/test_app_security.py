"""The app's safety: the per-launch token, the opened folder as the only reachable files, the
upload limit, binding to non-local addresses only with a flag and a warning."""
from __future__ import annotations

import pytest

pytest.importorskip("starlette", reason="the app's extra is not installed (pip install 'mfif[app]')")
pytest.importorskip("httpx2", reason="starlette's test client needs httpx2 (pip install 'mfif[test]')")

from starlette.testclient import TestClient  # noqa: E402

from mfif.app.browser import write_test_stack  # noqa: E402
from mfif.app.cli import check_host  # noqa: E402
from mfif.app.server import create_app  # noqa: E402
from mfif.app.session import AppSession  # noqa: E402
from mfif.cli import main  # noqa: E402
from mfif.errors import InputError  # noqa: E402



TOKEN = "t0k3n-for-tests"


@pytest.fixture
def client(tmp_path):
    root = tmp_path / "root"
    write_test_stack(root / "stack", n=2, height=32, width=48)
    (tmp_path / "secret").mkdir()
    write_test_stack(tmp_path / "secret", n=2, height=32, width=48)
    session = AppSession(root, upload_limit=200_000)
    with TestClient(create_app(session, TOKEN, port=1234), base_url="http://127.0.0.1") as c:
        c.session_ = session
        yield c
    session.close()


H = {"X-Mfif-Token": TOKEN}


@pytest.mark.parametrize("path", ["/", "/api/state", "/static/app.js", "/api/preview/frame/0",
                                  "/api/result/r1/full.png"])
def test_requests_without_the_token_are_refused(client, path):
    for headers in ({}, {"X-Mfif-Token": "wrong"}, {"Cookie": "mfif_token_1234=wrong"}):
        r = client.get(path, headers=headers)
        assert r.status_code == 403, (path, headers)
        assert "token" in r.json()["error"]
    assert client.post("/api/open", json={"path": "stack"}).status_code == 403


def test_token_in_the_url_sets_a_port_cookie_for_the_page(client):
    r = client.get(f"/?token={TOKEN}")
    assert r.status_code == 200 and "<title>mfif" in r.text
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"mfif_token_1234={TOKEN}") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert client.get("/api/state").status_code == 200  # the cookie now carries it
    assert client.get("/api/state", headers={"Cookie": ""}).status_code == 403


@pytest.mark.parametrize("path", ["..", "../secret", "stack/../../secret", "/etc", "stack/../..", "%2e%2e/secret"])
def test_paths_outside_the_opened_folder_are_refused(client, path):
    r = client.post("/api/open", json={"path": path}, headers=H)
    if path.startswith("%"):  # not decoded: a folder name that does not exist
        assert r.status_code == 400
        return
    assert r.status_code == 403, r.text
    assert "outside the opened folder" in r.json()["error"] or "not a path inside" in r.json()["error"]


def test_symlink_out_of_the_folder_is_refused(client, tmp_path):
    (client.session_.root / "link").symlink_to(tmp_path / "secret")
    r = client.post("/api/open", json={"path": "link"}, headers=H)
    assert r.status_code == 403 and "outside the opened folder" in r.json()["error"]


def test_export_name_cannot_leave_the_folder(client):
    assert client.post("/api/open", json={"path": "stack"}, headers=H).status_code == 200
    session = client.session_
    job = client.post("/api/fuse", json={"methods": ["average"], "align": False}, headers=H).json()["job"]
    events = client.get(f"/api/jobs/{job}/events", headers=H).text
    assert "event: done" in events
    rid = next(iter(session.results))
    for name in ("../escape.png", "/tmp/escape.png", "sub/x.png", ".hidden.png"):
        r = client.post("/api/export", json={"result": rid, "name": name, "bit_depth": 8}, headers=H)
        assert r.status_code == 403, name
        assert "plain file name" in r.json()["error"]
    assert not (session.root / "escape.png").exists()


def test_static_files_cannot_be_escaped(client):
    r = client.get("/static/../server.py", headers=H)
    assert r.status_code == 404 or "create_app" not in r.text


def test_upload_limit(client):
    big = ("a.png", b"\0" * 150_000, "image/png"), ("b.png", b"\0" * 150_000, "image/png")
    r = client.post("/api/upload", files=[("files", big[0]), ("files", big[1])], headers=H)
    assert r.status_code == 413
    assert r.json()["error"] in ("the upload is 0.3 MB; the limit is 0.2 MB", "the upload exceeds the limit of 0.2 MB")


def test_errors_are_one_sentence_json(client):
    r = client.post("/api/fuse", json={"methods": ["nope"]}, headers=H)
    assert r.status_code == 400 and r.json() == {"error": "open a folder (or drop frames) first"}
    client.post("/api/open", json={"path": "stack"}, headers=H)
    r = client.post("/api/fuse", json={"methods": ["nope"]}, headers=H)
    assert r.status_code == 400 and r.json()["error"].startswith("unknown method 'nope'")
    r = client.post("/api/open", content=b"{not json", headers=H)
    assert r.json() == {"error": "the request body is not valid JSON"}


def test_binding_to_a_non_local_address_needs_a_flag_and_warns(capsys):
    assert check_host("127.0.0.1", False) is None and check_host("::1", False) is None
    assert check_host("localhost", False) is None
    with pytest.raises(InputError, match="add --allow-remote"):
        check_host("0.0.0.0", False)
    with pytest.raises(InputError, match="add --allow-remote"):
        check_host("192.168.1.20", False)
    assert "warning: the app listens on 0.0.0.0" in check_host("0.0.0.0", True)
    assert main(["app", ".", "--host", "0.0.0.0", "--no-browser"]) == 1
    assert "--host 0.0.0.0 would expose the app" in capsys.readouterr().err


def test_warning_printed_before_serving(monkeypatch, tmp_path, capsys):
    import uvicorn

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, log_level: served.update(host=host, port=port))
    assert main(["app", str(tmp_path), "--host", "0.0.0.0", "--allow-remote", "--no-browser", "--port", "8999"]) == 0
    out = capsys.readouterr()
    assert served == {"host": "0.0.0.0", "port": 8999}
    assert "warning: the app listens on 0.0.0.0" in out.err
    assert "http://0.0.0.0:8999/?token=" in out.out


def test_dropped_frames_are_kept_apart_from_the_folder(client, tmp_path):
    paths = write_test_stack(tmp_path / "drop", n=2, height=32, width=48)
    files = [("files", (p.name, p.read_bytes(), "image/png")) for p in paths]
    before = sorted(client.session_.root.rglob("*"))
    r = client.post("/api/upload", files=files, headers=H)
    assert r.status_code == 200, r.text
    assert sorted(client.session_.root.rglob("*")) == before  # the frames are not written into the user's folder
    state = r.json()
    assert state["folder"] == "(dropped files)" and [f["name"] for f in state["frames"]] == ["frame0.png", "frame1.png"]
    job = client.post("/api/fuse", json={"methods": ["average"]}, headers=H).json()["job"]
    assert "event: done" in client.get(f"/api/jobs/{job}/events", headers=H).text
    rid = next(iter(client.session_.results))
    r = client.post("/api/export", json={"result": rid, "name": "dropped.png", "bit_depth": 8}, headers=H)
    assert r.status_code == 200 and (client.session_.root / "dropped.png").is_file()  # not in the temporary folder
    bad = [("files", ("../evil.png", paths[0].read_bytes(), "image/png")), ("files", ("x.exe", b"MZ", "image/png"))]
    r = client.post("/api/upload", files=bad, headers=H)
    assert r.status_code == 400 and r.json()["error"].startswith("x.exe: not an image file")
