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
    QUALITY_STAFF = "quality_staff", _("Quality staff")


class Permission(models.TextChoices):
    VIEW_DIRECTORY = "registry.view_directory", _("View institutions, consortia and practitioners")
    VIEW_AGREEMENTS = "registry.view_agreements", _("View agreements")
    MANAGE_INSTITUTIONS = "registry.manage_institutions", _("Manage institutions, departments, capabilities")
    MANAGE_CONSORTIA = "registry.manage_consortia", _("Manage consortia, members and agreements")
    MANAGE_PRACTITIONERS = "registry.manage_practitioners", _("Manage practitioners")
    VIEW_PRACTITIONER_PRIVATE = "registry.view_practitioner_private", _("See licence numbers")
    MANAGE_USERS = "registry.manage_users", _("Manage user accounts and roles")
    VIEW_AUDIT = "core.view_audit", _("View the audit trail")
    VIEW_REFERRALS = "referrals.view", _("See the referrals of one's institution and their patients")
    MANAGE_REFERRALS_SEND = "referrals.manage_send", _("Refer patients: create, send, cancel, acknowledge outcomes")
    MANAGE_REFERRALS_RECEIVE = (
        "referrals.manage_receive",
        _("Handle incoming referrals: accept, decline, forward, schedule, record arrival and outcome"),
    )
    MANAGE_REFERRAL_ROUTING = (
        "referrals.manage_routing",
        _("Route and oversee the consortium's referrals; set service levels"),
    )
    MANAGE_PATIENTS_MERGE = "patients.manage_merge", _("Merge an unidentified patient into an identified one")
    VIEW_REFERRAL_FIGURES = "referrals.view_figures", _("See referral figures (counts and rates, no patients)")
    MANAGE_WEBHOOKS = "notifications.manage_webhooks", _("Manage the institution's outgoing webhooks")
    MANAGE_QUESTIONNAIRES = "surveys.manage_questionnaires", _("Publish the consortium's satisfaction questionnaires")
    ISSUE_SURVEYS = "surveys.issue", _("Hand out satisfaction-survey links")
    VIEW_SURVEY_RESULTS = "surveys.view_results", _("See satisfaction-survey results")
    VIEW_SURVEY_COMMENTS = "surveys.view_comments", _("Read the free-text comments of one's institution's surveys")
    VIEW_STATIONING = "dispatch.view", _("See stationing programmes, rosters, attendance and work logs")
    MANAGE_STATIONING = "dispatch.manage", _("Plan stationing: programmes, assignments, host demand, rosters, calendar")
    CHECK_IN = "dispatch.check_in", _("Check in on site and keep one's own work log as a stationed expert")
    CONFIRM_ATTENDANCE = (
        "dispatch.confirm_attendance",
        _("Confirm or record the attendance of experts at one's hospital"),
    )
    REQUEST_CONSULTS = "consults.request", _("Ask for teleconsultations, eConsults, MDT discussions and readings")
    ANSWER_CONSULTS = "consults.answer", _("Answer consultations as an expert of one's hospital")
    COORDINATE_CONSULTS = (
        "consults.coordinate",
        _("Coordinate one's hospital's consultations: assign experts, schedule, hold MDT meetings"),
    )
    OVERSEE_CONSULTS = "consults.oversee", _("Oversee the consortium's consultations; set their service levels")
    VIEW_CONSULT_FIGURES = "consults.view_figures", _("See consultation figures (counts and times, no patients)")
    USE_ADMIN = "core.use_admin", _("Use the administration site")
    IMPORT_ACTIVITY = (
        "activity.import",
        _("Import the clinical activity (discharges, operations, visits) of one's institutions; withdraw batches"),
    )
    VIEW_INDICATORS = "indicators.view", _("See indicators and dashboards of the institutions one may see")
    MANAGE_INDICATORS = "indicators.manage", _("Edit the consortium's indicator definitions and targets")
    VIEW_CAPABILITY = (
        "capability.view",
        _("See techniques, transfer ledgers, regional firsts, teaching and training programmes"),
    )
    MANAGE_TECHNIQUES = "capability.manage_catalogue", _("Keep the consortium's techniques catalogue")
    RECORD_TRANSFER = (
        "capability.record_transfer",
        _("Keep the technique-transfer ledger of the departments one supports or runs"),
    )
    GRANT_PRIVILEGES = "capability.grant_privileges", _("Grant and revoke one's hospital's surgical privileges")
    CLAIM_FIRSTS = "capability.claim_firsts", _("Claim regional firsts and have them verified")
    LEAD_TEACHING = "capability.teach", _("Record teaching activities and their attendance")
    MANAGE_TRAINING = (
        "capability.manage_training",
        _("Run master-doctor studios and backbone training: mentees, milestones, assessments"),
    )
    MANAGE_CATALOGUES = "catalogues.manage_national", _("Load the national operation catalogues")
    MANAGE_INSTITUTION_MI = (
        "catalogues.manage_institution_list",
        _("Keep one's institution's own list of minimally invasive operation codes"),
    )


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
            Permission.VIEW_REFERRALS,
            Permission.MANAGE_REFERRAL_ROUTING,
            Permission.MANAGE_PATIENTS_MERGE,
            Permission.VIEW_REFERRAL_FIGURES,
            Permission.MANAGE_QUESTIONNAIRES,
            Permission.VIEW_SURVEY_RESULTS,
            Permission.VIEW_STATIONING,
            Permission.MANAGE_STATIONING,
            Permission.OVERSEE_CONSULTS,
            Permission.VIEW_CONSULT_FIGURES,
            Permission.IMPORT_ACTIVITY,
            Permission.VIEW_INDICATORS,
            Permission.MANAGE_INDICATORS,
            Permission.VIEW_CAPABILITY,
            Permission.MANAGE_TECHNIQUES,
            Permission.RECORD_TRANSFER,
            Permission.CLAIM_FIRSTS,
            Permission.LEAD_TEACHING,
            Permission.MANAGE_TRAINING,
            Permission.MANAGE_CATALOGUES,
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
            Permission.VIEW_REFERRAL_FIGURES,
            Permission.MANAGE_WEBHOOKS,
            Permission.ISSUE_SURVEYS,
            Permission.VIEW_SURVEY_RESULTS,
            Permission.VIEW_STATIONING,
            Permission.CONFIRM_ATTENDANCE,
            Permission.COORDINATE_CONSULTS,
            Permission.VIEW_CONSULT_FIGURES,
            Permission.IMPORT_ACTIVITY,
            Permission.VIEW_INDICATORS,
            Permission.VIEW_CAPABILITY,
            Permission.RECORD_TRANSFER,
            Permission.GRANT_PRIVILEGES,
            Permission.CLAIM_FIRSTS,
            Permission.LEAD_TEACHING,
            Permission.MANAGE_TRAINING,
            Permission.MANAGE_INSTITUTION_MI,
        }
    ),
    Role.DOCTOR: frozenset(
        {
            Permission.VIEW_DIRECTORY,
            Permission.VIEW_REFERRALS,
            Permission.MANAGE_REFERRALS_SEND,
            Permission.MANAGE_REFERRALS_RECEIVE,
            Permission.ISSUE_SURVEYS,
            Permission.REQUEST_CONSULTS,
            Permission.ANSWER_CONSULTS,
            Permission.VIEW_CAPABILITY,
            Permission.LEAD_TEACHING,
        }
    ),
    Role.STATIONED_EXPERT: frozenset(
        {
            Permission.VIEW_DIRECTORY,
            Permission.VIEW_AGREEMENTS,
            Permission.VIEW_REFERRALS,
            Permission.MANAGE_REFERRALS_SEND,
            Permission.MANAGE_REFERRALS_RECEIVE,
            Permission.ISSUE_SURVEYS,
            Permission.VIEW_STATIONING,
            Permission.CHECK_IN,
            Permission.REQUEST_CONSULTS,
            Permission.ANSWER_CONSULTS,
            Permission.VIEW_CAPABILITY,
            Permission.RECORD_TRANSFER,
            Permission.LEAD_TEACHING,
        }
    ),
    Role.ONCALL_COORDINATOR: frozenset(
        {
            Permission.VIEW_DIRECTORY,
            Permission.VIEW_REFERRALS,
            Permission.MANAGE_REFERRALS_RECEIVE,
            Permission.ISSUE_SURVEYS,
            Permission.COORDINATE_CONSULTS,
        }
    ),
    Role.COMMISSION_VIEWER: frozenset(
        {
            Permission.VIEW_DIRECTORY,
            Permission.VIEW_AGREEMENTS,
            Permission.VIEW_REFERRAL_FIGURES,
            Permission.VIEW_SURVEY_RESULTS,
            Permission.VIEW_STATIONING,
            Permission.VIEW_CONSULT_FIGURES,
            Permission.VIEW_INDICATORS,
            Permission.VIEW_CAPABILITY,
        }
    ),
    # The hospital's own quality staff (病案/质控): import the institution's clinical activity and read
    # its indicators; hand out survey links and posters, read the results and,
    # alone among the roles, the free-text comments of their own institution.
    Role.QUALITY_STAFF: frozenset(
        {
            Permission.VIEW_DIRECTORY,
            Permission.ISSUE_SURVEYS,
            Permission.VIEW_SURVEY_RESULTS,
            Permission.VIEW_SURVEY_COMMENTS,
            Permission.IMPORT_ACTIVITY,
            Permission.VIEW_INDICATORS,
        }
    ),
}

# Roles that carry no write permission at all (checked by a test, so a change is deliberate).
READ_ONLY_ROLES = frozenset({Role.COMMISSION_VIEWER})
