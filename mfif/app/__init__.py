"""``mfif app``: a local web app to fuse, compare, inspect and retouch (needs the ``[app]`` extra).

:mod:`mfif.app.session` holds the state (no web code), :mod:`mfif.app.server` is the Starlette
layer, :mod:`mfif.app.cli` the command, ``static/`` the page (plain HTML/CSS/JS, no build step).
"""
