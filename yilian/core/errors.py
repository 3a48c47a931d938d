"""Errors a user can cause that are neither invalid input (ValidationError, 400) nor a refusal
(PermissionDenied, 403)."""

from __future__ import annotations


class Conflict(Exception):
    """The request is valid but collides with what is already recorded, or with what someone else
    did a moment earlier (HTTP 409). The message says what, in the user's language."""
