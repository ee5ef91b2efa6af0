"""The web app for job seekers: server-rendered pages over the same services as the API."""

from outreach.web.routes import install_web

__all__ = ["install_web"]
