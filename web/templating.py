"""The Jinja environment shared by pages and htmx fragments."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.templating import Jinja2Templates

from web.i18n import translations

_env = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=select_autoescape(["html"]),
    extensions=["jinja2.ext.i18n"],
)
_env.install_gettext_translations(translations(), newstyle=True)  # type: ignore[attr-defined]

templates = Jinja2Templates(env=_env)
env = _env
