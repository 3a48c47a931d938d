"""The role -> permission table is a deliberate decision; this test is its second copy."""

from __future__ import annotations

import pytest

from yilian.core.permissions import READ_ONLY_ROLES, ROLE_PERMISSIONS, Permission, Role

P = Permission
EXPECTED: dict[Role, set[Permission]] = {
    Role.SYSTEM_ADMIN: set(Permission),
    Role.CONSORTIUM_OFFICE: {
        P.VIEW_DIRECTORY,
        P.VIEW_AGREEMENTS,
        P.MANAGE_INSTITUTIONS,
        P.MANAGE_CONSORTIA,
        P.MANAGE_PRACTITIONERS,
        P.VIEW_PRACTITIONER_PRIVATE,
        P.USE_ADMIN,
        P.VIEW_REFERRALS,
        P.MANAGE_REFERRAL_ROUTING,
        P.MANAGE_PATIENTS_MERGE,
        P.VIEW_REFERRAL_FIGURES,
        P.MANAGE_QUESTIONNAIRES,
        P.VIEW_SURVEY_RESULTS,
        P.VIEW_STATIONING,
        P.MANAGE_STATIONING,
        P.OVERSEE_CONSULTS,
        P.VIEW_CONSULT_FIGURES,
        P.IMPORT_ACTIVITY,
        P.VIEW_INDICATORS,
        P.MANAGE_INDICATORS,
        P.VIEW_CAPABILITY,
        P.MANAGE_TECHNIQUES,
        P.RECORD_TRANSFER,
        P.CLAIM_FIRSTS,
        P.LEAD_TEACHING,
        P.MANAGE_TRAINING,
        P.MANAGE_CATALOGUES,
    },
    Role.HOSPITAL_ADMIN: {
        P.VIEW_DIRECTORY,
        P.VIEW_AGREEMENTS,
        P.MANAGE_PRACTITIONERS,
        P.VIEW_PRACTITIONER_PRIVATE,
        P.MANAGE_USERS,
        P.VIEW_AUDIT,
        P.VIEW_REFERRAL_FIGURES,
        P.MANAGE_WEBHOOKS,
        P.ISSUE_SURVEYS,
        P.VIEW_SURVEY_RESULTS,
        P.VIEW_STATIONING,
        P.CONFIRM_ATTENDANCE,
        P.COORDINATE_CONSULTS,
        P.VIEW_CONSULT_FIGURES,
        P.IMPORT_ACTIVITY,
        P.VIEW_INDICATORS,
        P.VIEW_CAPABILITY,
        P.RECORD_TRANSFER,
        P.GRANT_PRIVILEGES,
        P.CLAIM_FIRSTS,
        P.LEAD_TEACHING,
        P.MANAGE_TRAINING,
        P.MANAGE_INSTITUTION_MI,
    },
    Role.DOCTOR: {
        P.VIEW_DIRECTORY,
        P.VIEW_REFERRALS,
        P.MANAGE_REFERRALS_SEND,
        P.MANAGE_REFERRALS_RECEIVE,
        P.ISSUE_SURVEYS,
        P.REQUEST_CONSULTS,
        P.ANSWER_CONSULTS,
        P.VIEW_CAPABILITY,
        P.LEAD_TEACHING,
    },
    Role.STATIONED_EXPERT: {
        P.VIEW_DIRECTORY,
        P.VIEW_AGREEMENTS,
        P.VIEW_REFERRALS,
        P.MANAGE_REFERRALS_SEND,
        P.MANAGE_REFERRALS_RECEIVE,
        P.ISSUE_SURVEYS,
        P.VIEW_STATIONING,
        P.CHECK_IN,
        P.REQUEST_CONSULTS,
        P.ANSWER_CONSULTS,
        P.VIEW_CAPABILITY,
        P.RECORD_TRANSFER,
        P.LEAD_TEACHING,
    },
    Role.ONCALL_COORDINATOR: {
        P.VIEW_DIRECTORY,
        P.VIEW_REFERRALS,
        P.MANAGE_REFERRALS_RECEIVE,
        P.ISSUE_SURVEYS,
        P.COORDINATE_CONSULTS,
    },
    Role.COMMISSION_VIEWER: {
        P.VIEW_DIRECTORY,
        P.VIEW_AGREEMENTS,
        P.VIEW_REFERRAL_FIGURES,
        P.VIEW_SURVEY_RESULTS,
        P.VIEW_STATIONING,
        P.VIEW_CONSULT_FIGURES,
        P.VIEW_INDICATORS,
        P.VIEW_CAPABILITY,
    },
    Role.QUALITY_STAFF: {
        P.VIEW_DIRECTORY,
        P.ISSUE_SURVEYS,
        P.VIEW_SURVEY_RESULTS,
        P.VIEW_SURVEY_COMMENTS,
        P.IMPORT_ACTIVITY,
        P.VIEW_INDICATORS,
    },
}


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("permission", list(Permission))
def test_role_permission_table(role: Role, permission: Permission) -> None:
    assert (permission in ROLE_PERMISSIONS[role]) == (permission in EXPECTED[role])


def test_read_only_roles_hold_no_write_permission() -> None:
    writes = {p for p in Permission if ".manage_" in p.value or p == P.USE_ADMIN}
    for role in READ_ONLY_ROLES:
        assert not ROLE_PERMISSIONS[role] & writes
