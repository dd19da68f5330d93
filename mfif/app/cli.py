"""``mfif app [FOLDER] [--host 127.0.0.1] [--port N] [--no-browser] [--allow-remote]``.

Starts the local web app on 127.0.0.1 with a per-launch token in its address (as Jupyter does) and
opens the browser. Binding to any other address needs ``--allow-remote`` and prints a warning:
anyone who can reach the port and learns the token can read the opened folder.
"""
from __future__ import annotations

import argparse
import ipaddress
import socket
import sys
from pathlib import Path

from mfif.errors import InputError, MfifError

__all__ = ["add_parser", "run", "check_host"]

LOCAL_NAMES = ("localhost",)


def is_local(host: str) -> bool:
    if host in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_host(host: str, allow_remote: bool) -> str | None:
    """Refuse a non-loopback address unless ``allow_remote``; returns the warning to print then."""
    if is_local(host):
        return None
    if not allow_remote:
        raise InputError(f"--host {host} would expose the app (and the opened folder) to the network; "
                         "add --allow-remote if that is what you want")
    return (f"warning: the app listens on {host}: anyone who can reach this port and has the token can read "
            "the opened folder and write results into it")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("app", help="local web app: fuse, compare, inspect and retouch in the browser",
                              description="Start the local web app on FOLDER (default: the current folder).")
    p.add_argument("folder", nargs="?", default=".", metavar="FOLDER",
                   help="the folder the app may read (stacks in it or its subfolders) and export into")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser; just print the address")
    p.add_argument("--allow-remote", action="store_true", help="allow --host to be a non-local address")
    p.add_argument("--upload-limit-mb", type=int, default=2048, help="largest upload accepted (default 2048 MB)")
    p.set_defaults(func=run)
    return p


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def run(args) -> int:
    warning = check_host(args.host, args.allow_remote)
    folder = Path(args.folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    try:
        import uvicorn

        from mfif.app.server import create_app, new_token
        from mfif.app.session import AppSession
    except ImportError as exc:
        raise MfifError(f"the app needs its extra: pip install 'mfif[app]' ({exc})") from None
    if warning:
        print(warning, file=sys.stderr)
    port = args.port or _free_port(args.host)
    token = new_token()
    session = AppSession(folder, upload_limit=args.upload_limit_mb * 1024 * 1024)
    app = create_app(session, token, port=port)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{shown}:{port}/?token={token}"
    print(f"mfif app on {folder.resolve()}: {url}  (Ctrl+C stops it)", flush=True)
    if not args.no_browser:
        import webbrowser

        webbrowser.open(url)
    try:
        uvicorn.run(app, host=args.host, port=port, log_level="warning")
    finally:
        session.close()
    return 0
