"""Settings of the local web page: where it listens, its password, its upload limit."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, field

from emomusic.config.base import Section

WEB_PASSWORD_ENV = "EMOMUSIC_WEB_PASSWORD"


class WebConfig(Section, frozen=True):
    enabled: Annotated[bool, Meta(description="Serve the page (now, music, library, analyze) and its JSON API.")] = True
    host: Annotated[
        str,
        Meta(
            min_length=1,
            description="Address to listen on; a non-loopback one needs a "
            "password (EMOMUSIC_WEB_PASSWORD or web.password_file).",
        ),
    ] = "127.0.0.1"
    port: Annotated[int, Meta(ge=0, le=65535, description="TCP port (0 = any free one).")] = 8088
    password_file: Annotated[
        str,
        Meta(
            description="File holding the page's password (a login form; HTTP basic auth "
            "for API clients, any user name)."
        ),
    ] = ""
    allowed_hosts: Annotated[
        list[str],
        Meta(
            description="Host names the page may be asked for "
            "beyond this machine's own (loopback, web.host, the host name and its .local "
            "name, its addresses): e.g. a reverse proxy's name."
        ),
    ] = field(default_factory=list)
    max_upload_mb: Annotated[
        float, Meta(gt=0, le=100, description="Largest photo + clip accepted by /api/analyze.")
    ] = 8.0
