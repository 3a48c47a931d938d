"""Who sees which consult (minimum necessary access): an expert sees what was sent to them or to
their pool (department and title), not the rest of the hospital's; the requesting doctor's
department sees its requests, other departments do not; coordinators see their institution's;
the office its consortium's; the health commission none (figures only); an MDT meeting's experts
see the cases on its agenda."""

from __future__ import annotations

import uuid

import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404

from yilian.consults import selectors
from yilian.consults.models import Consult, Kind, Status
from yilian.consults.tests import factories
from yilian.consults.tests.factories import Cast
from yilian.core.permissions import Role
from yilian.registry.models import Discipline, ProfessionalTitle, User

pytestmark = pytest.mark.django_db


def sees(user: User, consult: Consult) -> bool:
    return selectors.consult_queryset_visible_to(user).filter(pk=consult.pk).exists()


def test_an_expert_sees_the_requests_of_their_pool_holding_the_title_wanted(people: Cast) -> None:
    consult = factories.request()  # zju2 neurosurgery, at least a chief physician
    assert sees(people.expert, consult)
    assert not sees(people.junior, consult)  # an attending: below the title wanted
    untitled = factories.request(wanted_title="")
    assert sees(people.junior, untitled)
    associate = factories.request(wanted_title=ProfessionalTitle.ASSOCIATE_CHIEF_PHYSICIAN)
    assert sees(people.expert, associate) and not sees(people.junior, associate)


def test_an_expert_does_not_see_another_departments_consults_nor_one_named_to_a_colleague(people: Cast) -> None:
    radiology = factories.request(discipline=Discipline.RADIOLOGY, wanted_title="")
    assert sees(people.other_expert, radiology)
    assert not sees(people.expert, radiology)
    peer = factories.doctor()
    named = factories.request(named_expert=peer)
    assert sees(factories.user_of(peer), named)
    assert not sees(people.expert, named)


def test_once_taken_a_pool_request_is_the_experts_only(people: Cast) -> None:
    peer = factories.user_of(factories.doctor())
    consult = factories.consult_in(Status.ACCEPTED)  # taken by people.expert
    assert sees(people.expert, consult)
    assert not sees(peer, consult)


def test_the_pool_sees_an_mdt_request_it_may_accept_until_it_is_on_a_meeting(people: Cast) -> None:
    requested = factories.request(Kind.MDT)
    assert sees(people.expert, requested)
    assert not sees(people.other_expert, requested)


def test_the_requesting_department_sees_its_requests_other_departments_do_not(people: Cast) -> None:
    consult = factories.request()
    neurologist = factories.user_of(
        factories.doctor(
            institution_code="khph", discipline=Discipline.NEUROLOGY, title=ProfessionalTitle.RESIDENT_PHYSICIAN
        )
    )
    orthopaedist = factories.user_of(factories.doctor(institution_code="khph", discipline=Discipline.ORTHOPEDICS))
    assert sees(people.requester, consult)
    assert sees(neurologist, consult)
    assert not sees(orthopaedist, consult)


def test_coordinators_see_their_institutions_consults(people: Cast) -> None:
    consult = factories.request()
    assert sees(people.coordinator, consult)  # zju2, consulted
    assert sees(people.requester_coordinator, consult)  # khph, requesting
    assert not sees(factories.user("hospadmin"), consult)  # qzph, a coordinator elsewhere


def test_the_office_sees_its_consortiums_consults_not_anothers(people: Cast) -> None:
    consult = factories.request()
    assert sees(people.office, consult)
    zju1_office = factories.account(role=Role.CONSORTIUM_OFFICE, consortium_code="zju1-quzhou")
    assert not sees(zju1_office, consult)


def test_the_commission_and_an_unrelated_doctor_see_no_consult(people: Cast) -> None:
    consult = factories.request()
    assert selectors.consult_queryset_visible_to(factories.user("commission")).count() == 0  # figures only
    for outsider in (factories.user("commission"), people.unrelated):
        assert not sees(outsider, consult)
    # The Bijie doctor sees his own department's consults to Zhejiang Provincial People's Hospital only.
    seen = selectors.consult_queryset_visible_to(people.unrelated)
    assert set(seen.values_list("from_institution__code", flat=True)) <= {"bjfph"}


def test_the_experts_of_a_meeting_see_the_cases_on_its_agenda(people: Cast) -> None:
    case = factories.consult_in(Status.SCHEDULED, Kind.MDT)  # pathologist chairs, expert invited
    assert sees(people.chair, case)
    assert sees(people.expert, case)
    assert not sees(people.other_expert, case)
    assert not sees(people.junior, case)


def test_access_consult_is_404_for_an_unknown_consult_and_403_out_of_scope(people: Cast) -> None:
    consult = factories.request()
    assert selectors.access_consult(people.expert, str(consult.public_id)) == consult
    with pytest.raises(PermissionDenied):
        selectors.access_consult(people.junior, str(consult.public_id))
    with pytest.raises(PermissionDenied):
        selectors.access_consult(people.unrelated, str(consult.public_id))
    with pytest.raises(Http404):
        selectors.access_consult(people.expert, str(uuid.uuid4()))
    with pytest.raises(Http404):
        selectors.access_consult(people.expert, "not-a-uuid")


def test_the_queues_hold_what_each_person_works_on(people: Cast) -> None:
    consult = factories.request()
    assert consult in selectors.consult_queue(people.expert, box=selectors.Box.FOR_ME).rows
    assert consult in selectors.consult_queue(people.requester, box=selectors.Box.ASKED).rows
    assert consult in selectors.consult_queue(people.coordinator, box=selectors.Box.INCOMING).rows
    assert consult in selectors.consult_queue(people.requester_coordinator, box=selectors.Box.OUTGOING).rows
    assert consult in selectors.consult_queue(people.office, box=selectors.Box.OFFICE).rows
    with pytest.raises(PermissionDenied):
        selectors.consult_queue(people.requester, box=selectors.Box.INCOMING)
