"""Patients: validated resident ID numbers, one record per person, merging an unidentified record,
masking, and who may see a patient (only through a referral, or as the consortium office)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import translation
from hypothesis import given
from hypothesis import strategies as st
from stdnum import exceptions as stdnum_exceptions
from stdnum.cn import ric

from yilian.core.models import AuditAction, AuditEvent
from yilian.patients.models import Patient, Sex, mask_id_number, mask_name, mask_phone
from yilian.patients.services import id_number_clean, patient_merge, patient_register
from yilian.referrals import selectors, services
from yilian.referrals.models import Referral, Status
from yilian.referrals.tests.factories import neuro_office_create, patient_create, referral_create, valid_id_number
from yilian.registry.models import Institution, User

# Counties of the two stories: Changshan, Kecheng, Qujiang, Kaihua, Jiangshan (Quzhou) and Qixingguan (Bijie).
REGIONS = ["330822", "330802", "330803", "330824", "330881", "520502"]
ELDERLY_CHANGSHAN = valid_id_number("33082219500507123")  # born 1950; the 330822 code dates from 1985


def person(username: str) -> User:
    return User.objects.get(username=username)


def _code(value: str, **kwargs: object) -> str:
    with pytest.raises(ValidationError) as excinfo:
        id_number_clean(value, **kwargs)  # type: ignore[arg-type]
    return str(excinfo.value.code)


# ----------------------------------------------------------------------------------------
# Resident ID numbers (no database needed)


@st.composite
def id_numbers(draw: st.DrawFn) -> str:
    region = draw(st.sampled_from(REGIONS))
    born = draw(st.dates(min_value=dt.date(1920, 1, 1), max_value=dt.date(2024, 12, 31)))
    seq = draw(st.integers(min_value=0, max_value=999))
    return valid_id_number(f"{region}{born:%Y%m%d}{seq:03d}")


@given(id_numbers())
def test_valid_numbers_are_accepted_and_tell_birth_date_and_sex(number: str) -> None:
    assert id_number_clean(number) == number
    assert id_number_clean(number.lower()) == number  # a typed lower-case x
    born = dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    sex = Sex.MALE if int(number[16]) % 2 else Sex.FEMALE
    assert id_number_clean(number, birth_date=born, sex=sex) == number


@given(id_numbers(), st.integers(min_value=0, max_value=17), st.integers(min_value=1, max_value=10))
def test_any_single_character_change_is_caught(number: str, position: int, step: int) -> None:
    alphabet = "0123456789X" if position == 17 else "0123456789"
    current = alphabet.index(number[position])
    changed = alphabet[(current + step) % len(alphabet)]
    if changed == number[position]:  # step == len(alphabet) for digits 0-16: no change
        return
    typo = number[:position] + changed + number[position + 1 :]
    with pytest.raises(ValidationError):
        id_number_clean(typo)


def test_each_fault_has_its_own_message() -> None:
    good = valid_id_number("33082219580315321")
    wrong_check = good[:-1] + ("0" if good[-1] != "0" else "1")
    assert _code(wrong_check) == "id_checksum"
    assert _code(good[:-1]) == "id_length"
    assert _code(good + "1") == "id_length"
    assert _code("3308221958031532A1") == "id_format"
    assert _code(valid_id_number("33082219580230321")) == "id_component"  # 30 February
    assert _code(valid_id_number("99999919580315321")) == "id_component"  # no such region
    with translation.override("en"), pytest.raises(ValidationError) as excinfo:
        id_number_clean(wrong_check)
    assert "check digit" in excinfo.value.messages[0]


def test_surrounding_spaces_are_ignored() -> None:
    good = valid_id_number("33082219580315321")
    assert id_number_clean(f" {good}\t") == good


def test_birth_date_and_sex_must_match_the_number() -> None:
    good = valid_id_number("33082219580315321")  # born 1958-03-15, 17th digit 1 (odd): male
    assert _code(good, birth_date=dt.date(1958, 3, 16)) == "id_birth_date"
    assert _code(good, sex=Sex.FEMALE) == "id_sex"
    assert id_number_clean(good, birth_date=dt.date(1958, 3, 15), sex=Sex.MALE) == good
    assert id_number_clean(good, sex=Sex.UNKNOWN) == good


def test_elderly_patient_with_a_county_code_younger_than_them_is_accepted() -> None:
    """Changshan's code 330822 dates from 1985; people born before hold it all the same."""
    with pytest.raises(stdnum_exceptions.ValidationError):
        ric.validate(ELDERLY_CHANGSHAN)  # the library alone would turn this patient away
    assert id_number_clean(ELDERLY_CHANGSHAN, birth_date=dt.date(1950, 5, 7)) == ELDERLY_CHANGSHAN


def test_a_birth_date_in_the_future_is_refused() -> None:
    assert _code(valid_id_number("33082221000101321")) == "id_component"


def test_masking() -> None:
    assert mask_id_number("330822198001011234") == "3308**********1234"
    assert mask_id_number("") == "" and mask_id_number(None) == ""
    assert mask_phone("13905701234") == "139****1234"
    assert mask_name("陈福生") == "陈**"


# ----------------------------------------------------------------------------------------
# One person, one record


@pytest.mark.django_db
def test_registering_derives_birth_date_and_sex_from_the_number() -> None:
    patient = patient_create(id_number=ELDERLY_CHANGSHAN, name="郑土根")
    assert (patient.birth_date, patient.sex, patient.is_identified) == (dt.date(1950, 5, 7), Sex.MALE, True)
    assert str(patient) == "郑** 3308**********123X"  # what logs and audit rows get


@pytest.mark.django_db
def test_the_same_number_twice_is_one_patient_and_only_empty_fields_are_filled() -> None:
    number = valid_id_number("33082219580315321")
    first = patient_create(id_number=number, name="陈秀英", phone="")
    again = patient_register(
        actor=person("coordinator"),
        institution=Institution.objects.get(code="qzph"),
        name=" 陈 秀英",  # spaces typed by the second hospital do not make another person
        id_number=number,
        phone="13905709876",
        address="常山县天马街道",
    )
    assert again.pk == first.pk
    assert Patient.objects.filter(id_number=number).count() == 1
    stored = Patient.objects.get(pk=first.pk)
    assert (stored.name, stored.phone, stored.address) == ("陈秀英", "13905709876", "常山县天马街道")
    assert stored.registered_by.code == "csph"
    audit = AuditEvent.objects.filter(object_id=str(first.public_id)).order_by("-id").first()
    assert audit is not None and sorted(audit.changes["filled"]) == ["address", "phone"]


@pytest.mark.django_db
def test_a_known_number_under_another_name_is_refused_and_reveals_nothing() -> None:
    """Knowing someone's ID number is not a way into the record another hospital registered."""
    number = valid_id_number("33082219580315321")
    first = patient_create(id_number=number, name="陈秀英", phone="13905701111")
    with pytest.raises(ValidationError) as excinfo:
        patient_register(
            actor=person("bijie"),
            institution=Institution.objects.get(code="bjfph"),
            name="随便",
            id_number=number,
            address="毕节市七星关区",
        )
    message = excinfo.value.message_dict["id_number"][0]
    assert message == "这个身份证号已登记在另一个姓名下。请核对号码和姓名。"
    assert "陈" not in message and "1111" not in message
    stored = Patient.objects.get(pk=first.pk)
    assert (stored.name, stored.address) == ("陈秀英", "")


@pytest.mark.django_db
def test_registration_refuses_a_number_that_contradicts_the_birth_date_or_sex() -> None:
    number = valid_id_number("33082219580315321")
    for extra in ({"birth_date": dt.date(1958, 5, 13)}, {"sex": Sex.FEMALE}):
        with pytest.raises(ValidationError) as excinfo:
            patient_create(id_number=number, **extra)
        assert "id_number" in excinfo.value.message_dict
    assert not Patient.objects.filter(id_number=number).exists()


@pytest.mark.django_db
def test_patients_without_a_number_are_separate_unidentified_records() -> None:
    a = patient_create(id_number="", name="无名氏", sex=Sex.MALE, approximate_age=70)
    b = patient_create(id_number="", name="无名氏", sex=Sex.MALE, approximate_age=70)
    assert a.pk != b.pk
    assert (a.id_number, a.is_identified, a.masked_id_number) == (None, False, "")


# ----------------------------------------------------------------------------------------
# Merging an unidentified record


@pytest.fixture
def neuro_office(db: None) -> User:
    return neuro_office_create()


@pytest.mark.django_db
def test_unidentified_patient_is_merged_and_its_referrals_move(neuro_office: User) -> None:
    unknown = patient_create(id_number="", name="无名氏", sex=Sex.MALE, approximate_age=65)
    emergency = referral_create(Status.RECEIVED, patient=unknown, urgency="urgent")
    known = patient_create(id_number=valid_id_number("33082219580315311"), name="刘建华")
    earlier = referral_create(Status.CLOSED, patient=known)

    result = patient_merge(actor=neuro_office, source=unknown, target=known)

    assert result == known
    assert set(Referral.objects.filter(patient=known)) == {emergency, earlier}
    merged = Patient.objects.get(pk=unknown.pk)  # kept, not deleted
    assert (merged.merged_into, merged.merged_by) == (known, neuro_office)
    assert merged.merged_at is not None
    # Still readable to whoever sees the record it went into, with its referrals under the new one.
    doctor = person("doctor")
    assert selectors.access_patient(doctor, str(unknown.public_id)) == merged
    assert set(selectors.patient_referrals(doctor, known)) == {emergency, earlier}
    audit = AuditEvent.objects.filter(object_id=str(unknown.public_id)).order_by("-id").first()
    assert audit is not None and audit.changes["referrals_moved"] == [emergency.number]


@pytest.mark.django_db
def test_an_identified_record_cannot_be_merged_away(neuro_office: User) -> None:
    a = patient_create(id_number=valid_id_number("33082219580315311"))
    b = patient_create(id_number=valid_id_number("33082219600101321"))
    unknown = patient_create(id_number="", name="无名氏")
    for patient in (a, b, unknown):  # the office sees patients through its consortium's referrals
        referral_create(Status.SENT, patient=patient)
    with pytest.raises(ValidationError) as excinfo:
        patient_merge(actor=neuro_office, source=a, target=b)
    assert excinfo.value.code == "merge_identified"
    with pytest.raises(ValidationError):
        patient_merge(actor=neuro_office, source=unknown, target=unknown)
    patient_merge(actor=neuro_office, source=unknown, target=a)
    with pytest.raises(ValidationError) as excinfo:
        patient_merge(actor=neuro_office, source=unknown, target=b)
    assert excinfo.value.code == "merge_twice"
    assert Patient.objects.get(pk=unknown.pk).merged_into == a


@pytest.mark.django_db
@pytest.mark.parametrize("username", ["doctor", "coordinator", "hospadmin", "commission"])
def test_merging_needs_the_merge_permission(username: str) -> None:
    unknown = patient_create(id_number="", name="无名氏")
    known = patient_create()
    with pytest.raises(PermissionDenied):
        patient_merge(actor=person(username), source=unknown, target=known)
    assert Patient.objects.get(pk=unknown.pk).merged_into is None


# ----------------------------------------------------------------------------------------
# Who sees a patient


@pytest.mark.django_db
def test_a_patient_is_seen_only_through_a_visible_referral_or_by_the_office(neuro_office: User) -> None:
    patient = patient_create()
    # Registered but not referred yet: not even the registering hospital browses it.
    assert not selectors.patient_queryset_visible_to(person("doctor")).filter(pk=patient.pk).exists()
    referral_create(Status.SENT, patient=patient)
    public_id = str(patient.public_id)
    for username in ("doctor", "coordinator", "admin"):
        assert selectors.access_patient(person(username), public_id) == patient
    assert selectors.access_patient(neuro_office, public_id) == patient
    for username in ("bijie", "office", "expert", "commission", "hospadmin"):
        with pytest.raises(PermissionDenied):
            selectors.access_patient(person(username), public_id)


@pytest.mark.django_db
def test_the_former_receiver_no_longer_sees_the_patient_after_a_forward() -> None:
    patient = patient_create()
    referral = referral_create(Status.RECEIVED, patient=patient)
    coordinator = person("coordinator")
    services.referral_forward(
        actor=coordinator, referral=referral, to_institution=Institution.objects.get(code="khph"), reason="床位已满"
    )
    with pytest.raises(PermissionDenied):
        selectors.access_patient(person("coordinator"), str(patient.public_id))
    assert selectors.access_patient(person("doctor"), str(patient.public_id)) == patient


@pytest.mark.django_db
def test_reading_identity_leaves_an_audit_row_without_the_values() -> None:
    patient = patient_create(name="陈福生", phone="13905701234", address="常山县天马街道人民路8号")
    referral_create(Status.SENT, patient=patient)
    coordinator = person("coordinator")
    before = AuditEvent.objects.filter(action=AuditAction.READ_PII).count()
    shown = selectors.patient_identity(coordinator, patient, purpose="referral page")
    assert shown.id_number == patient.id_number  # the caller gets the unmasked record
    rows = AuditEvent.objects.filter(action=AuditAction.READ_PII)
    assert rows.count() == before + 1
    row = rows.order_by("-id").first()
    assert row is not None
    assert (row.actor, row.object_id) == (coordinator, str(patient.public_id))
    assert set(row.changes["fields"]) >= {"name", "id_number", "phone"}
    stored = json.dumps(row.changes, ensure_ascii=False) + row.object_repr
    assert patient.id_number is not None
    for secret in (patient.id_number, "陈福生", "13905701234", "人民路"):
        assert secret not in stored


@pytest.mark.django_db
def test_unknown_or_malformed_patient_ids_are_not_found() -> None:
    from django.http import Http404

    for value in ("not-a-uuid", "6f1c5d0e-0000-4000-8000-000000000000"):
        with pytest.raises(Http404):
            selectors.access_patient(person("doctor"), value)


@pytest.mark.django_db
def test_an_office_cannot_merge_patients_it_does_not_see(neuro_office: User) -> None:
    unknown = patient_create(id_number="", name="无名氏")
    known = patient_create()
    for patient in (unknown, known):
        referral_create(Status.SENT, patient=patient)  # quzhou-neuro referrals, not zju2-quzhou's
    with pytest.raises(PermissionDenied):
        patient_merge(actor=User.objects.get(username="office"), source=unknown, target=known)
    assert Patient.objects.get(pk=unknown.pk).merged_into is None
