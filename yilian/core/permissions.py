"""Roles and permissions, named in code. A role is a set of permissions; a user holds roles
through memberships (institution + role, or region for the health commission)."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    SYSTEM_ADMIN = "system_admin", _("System administrator")
    CONSORTIUM_OFFICE = "consortium_office", _("Consortium office")
    HOSPITAL_ADMIN = "hospital_admin", _("Hospital administrator")
    DOCTOR = "doctor", _("Doctor")
    STATIONED_EXPERT = "stationed_expert", _("Stationed expert")
    ONCALL_COORDINATOR = "oncall_coordinator", _("On-call coordinator")
    COMMISSION_VIEWER = "commission_viewer", _("Health-commission viewer")


class Permission(models.TextChoices):
    VIEW_DIRECTORY = "registry.view_directory", _("View institutions, consortia and practitioners")
    VIEW_AGREEMENTS = "registry.view_agreements", _("View agreements")
    MANAGE_INSTITUTIONS = "registry.manage_institutions", _("Manage institutions, departments, capabilities")
    MANAGE_CONSORTIA = "registry.manage_consortia", _("Manage consortia, members and agreements")
    MANAGE_PRACTITIONERS = "registry.manage_practitioners", _("Manage practitioners")
    VIEW_PRACTITIONER_PRIVATE = "registry.view_practitioner_private", _("See licence numbers")
    MANAGE_USERS = "registry.manage_users", _("Manage user accounts and roles")
    VIEW_AUDIT = "core.view_audit", _("View the audit trail")
    USE_ADMIN = "core.use_admin", _("Use the administration site")


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.SYSTEM_ADMIN: frozenset(Permission),
    Role.CONSORTIUM_OFFICE: frozenset(
        {
            Permission.VIEW_DIRECTORY,
            Permission.VIEW_AGREEMENTS,
            Permission.MANAGE_INSTITUTIONS,
            Permission.MANAGE_CONSORTIA,
            Permission.MANAGE_PRACTITIONERS,
            Permission.VIEW_PRACTITIONER_PRIVATE,
            Permission.USE_ADMIN,
        }
    ),
    Role.HOSPITAL_ADMIN: frozenset(
        {
            Permission.VIEW_DIRECTORY,
            Permission.VIEW_AGREEMENTS,
            Permission.MANAGE_PRACTITIONERS,
            Permission.VIEW_PRACTITIONER_PRIVATE,
            Permission.MANAGE_USERS,
            Permission.VIEW_AUDIT,
        }
    ),
    Role.DOCTOR: frozenset({Permission.VIEW_DIRECTORY}),
    Role.STATIONED_EXPERT: frozenset({Permission.VIEW_DIRECTORY, Permission.VIEW_AGREEMENTS}),
    Role.ONCALL_COORDINATOR: frozenset({Permission.VIEW_DIRECTORY}),
    Role.COMMISSION_VIEWER: frozenset({Permission.VIEW_DIRECTORY, Permission.VIEW_AGREEMENTS}),
}

# Roles that carry no write permission at all (checked by a test, so a change is deliberate).
READ_ONLY_ROLES = frozenset({Role.COMMISSION_VIEWER})
