from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from yilian.catalogues.selectors import VIEW_PERMISSIONS as CATALOGUE_VIEW_PERMISSIONS
from yilian.consults.selectors import can_use_consults
from yilian.core.permissions import Permission
from yilian.notifications.selectors import unread_count
from yilian.referrals.green_selectors import has_board
from yilian.registry import selectors


def navigation(request: HttpRequest) -> dict[str, Any]:
    """What the navigation bar needs: the user's permissions, for showing only what they may use."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    scope = selectors.user_scope(user)
    return {
        "nav_can_audit": Permission.VIEW_AUDIT in scope.permissions,
        "nav_can_admin": Permission.USE_ADMIN in scope.permissions and user.is_staff,
        "nav_can_refer": Permission.VIEW_REFERRALS in scope.permissions,
        "nav_can_green": has_board(user),
        "nav_unread": unread_count(user),
        "nav_can_webhooks": Permission.MANAGE_WEBHOOKS in scope.permissions,
        "nav_can_consult": can_use_consults(user) or Permission.VIEW_CONSULT_FIGURES in scope.permissions,
        "nav_can_survey_results": Permission.VIEW_SURVEY_RESULTS in scope.permissions,
        "nav_can_stationing": Permission.VIEW_STATIONING in scope.permissions,
        "nav_can_check_in": Permission.CHECK_IN in scope.permissions,
        "nav_can_import_activity": Permission.IMPORT_ACTIVITY in scope.permissions,
        "nav_can_indicators": Permission.VIEW_INDICATORS in scope.permissions,
        "nav_can_catalogues": bool(scope.permissions & CATALOGUE_VIEW_PERMISSIONS),
        "nav_can_capability": Permission.VIEW_CAPABILITY in scope.permissions,
        "nav_can_surveys": bool(scope.permissions & {Permission.ISSUE_SURVEYS, Permission.MANAGE_QUESTIONNAIRES}),
    }
