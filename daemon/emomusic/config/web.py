"""Settings of the local web page: where it listens, its password, its upload limit."""

from __future__ import annotations

from pydantic import Field

from emomusic.config.base import Section

WEB_PASSWORD_ENV = "EMOMUSIC_WEB_PASSWORD"


class WebConfig(Section):
    enabled: bool = Field(True, description="Serve the page (now, music, library, analyze) and its JSON API.")
    host: str = Field("127.0.0.1", min_length=1, description="Address to listen on; a non-loopback one needs a "
                      "password (EMOMUSIC_WEB_PASSWORD or web.password_file).")
    port: int = Field(8088, ge=0, le=65535, description="TCP port (0 = any free one).")
    password_file: str = Field("", description="File holding the page's password (a login form; HTTP basic auth "
                               "for API clients, any user name).")
    allowed_hosts: list[str] = Field(default_factory=list, description="Host names the page may be asked for "
                                     "beyond this machine's own (loopback, web.host, the host name and its .local "
                                     "name, its addresses): e.g. a reverse proxy's name.")
    max_upload_mb: float = Field(8.0, gt=0, le=100, description="Largest photo + clip accepted by /api/analyze.")
