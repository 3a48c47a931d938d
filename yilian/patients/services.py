"""Writes of patient records.

Rules:
- a resident ID number is validated (length, check digit, birth date, birth region for the
  birth year) and must agree with the birth date and sex given with it;
- one ID number, one record: registering a known number returns the existing patient and only
  fills fields that were empty (a referral never overwrites what another hospital recorded);
- merging moves every referral of an unidentified record to the identified one and marks the
  unidentified record merged; nothing is deleted.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from stdnum import exceptions as stdnum_exceptions
from stdnum import numdb
from stdnum.cn import ric

from yilian.core.audit import audit_record
from yilian.core.models import AuditAction
from yilian.core.permissions import Permission
from yilian.patients.models import Patient, Sex
from yilian.registry.models import Institution, Region, User
from yilian.registry.selectors import user_scope


def _validate_ric(number: str) -> None:
    """stdnum's checks, except that the region code need only have existed at some time.

    ``stdnum.cn.ric.validate`` also requires the county code to have been in use in the birth
    year; but numbers are issued (and re-issued) after birth, so a person born in 1958 in
    Changshan holds a 330822 number although that code dates from 1985. Rejecting them would
    turn away exactly the elderly patients who are referred most.
    """
    if len(number) != 18:
        raise stdnum_exceptions.InvalidLength()
    if not number[:-1].isdigit() or not (number[-1].isdigit() or number[-1] == "X"):
        raise stdnum_exceptions.InvalidFormat()
    if number[-1] != ric.calc_check_digit(number):
        raise stdnum_exceptions.InvalidChecksum()
    # raises InvalidComponent for an impossible date; a birth date after today is impossible too
    if ric.get_birth_date(number) > timezone.localdate():
        raise stdnum_exceptions.InvalidComponent()
    info = {k: v for _part, props in numdb.get("cn/loc").info(number[:6]) for k, v in props.items()}
    if "county" not in info:
        raise stdnum_exceptions.InvalidComponent()


def id_number_clean(value: str, *, birth_date: dt.date | None = None, sex: str = "") -> str:
    """The compact, validated number; raises ValidationError with a message per fault."""
    number = ric.compact(value or "").upper()
    try:
        _validate_ric(number)
    except stdnum_exceptions.InvalidLength:
        raise ValidationError(_("A resident ID number has 18 characters."), code="id_length") from None
    except stdnum_exceptions.InvalidFormat:
        raise ValidationError(
            _("A resident ID number is 17 digits followed by a digit or X."), code="id_format"
        ) from None
    except stdnum_exceptions.InvalidChecksum:
        raise ValidationError(
            _("The check digit of this resident ID number is wrong; please check for a typing error."),
            code="id_checksum",
        ) from None
    except stdnum_exceptions.InvalidComponent:
        raise ValidationError(
            _("The birth date or region code in this resident ID number does not exist."), code="id_component"
        ) from None
    encoded_birth = ric.get_birth_date(number)
    if birth_date is not None and birth_date != encoded_birth:
        raise ValidationError(
            _("The birth date %(given)s does not match the ID number (%(encoded)s).")
            % {"given": birth_date.isoformat(), "encoded": encoded_birth.isoformat()},
            code="id_birth_date",
        )
    encoded_sex = Sex.MALE if int(number[16]) % 2 else Sex.FEMALE
    if sex in (Sex.MALE, Sex.FEMALE) and sex != encoded_sex:
        raise ValidationError(
            _("The sex does not match the ID number (which says %(sex)s).") % {"sex": encoded_sex.label},
            code="id_sex",
        )
    return number


def patient_register(
    *,
    actor: User | None,
    institution: Institution,
    name: str,
    sex: str = Sex.UNKNOWN,
    birth_date: dt.date | None = None,
    approximate_age: int | None = None,
    id_number: str = "",
    phone: str = "",
    residence_region: Region | None = None,
    address: str = "",
    emergency_contact_name: str = "",
    emergency_contact_relation: str = "",
    emergency_contact_phone: str = "",
) -> Patient:
    """Find the patient by ID number or create the record; an empty number creates an unidentified one."""
    name = name.strip()
    if not name:
        raise ValidationError(
            {"name": _("Enter the patient's name (or a placeholder such as 无名氏 for an unknown person).")}
        )
    number = ""
    if id_number.strip():
        try:
            number = id_number_clean(id_number, birth_date=birth_date, sex=sex)
        except ValidationError as exc:
            raise ValidationError({"id_number": exc.messages}) from None
        if birth_date is None:
            birth_date = ric.get_birth_date(number)
        if sex == Sex.UNKNOWN:
            sex = Sex.MALE if int(number[16]) % 2 else Sex.FEMALE
    fields: dict[str, Any] = {
        "name": name,
        "sex": sex,
        "birth_date": birth_date,
        "approximate_age": approximate_age,
        "phone": phone.strip(),
        "residence_region": residence_region,
        "address": address.strip(),
        "emergency_contact_name": emergency_contact_name.strip(),
        "emergency_contact_relation": emergency_contact_relation.strip(),
        "emergency_contact_phone": emergency_contact_phone.strip(),
    }
    with transaction.atomic():
        if number:
            existing = Patient.objects.select_for_update().filter(id_number=number).first()
            if existing is not None:
                return _matched(actor, existing, fields)
        patient = Patient(id_number=number or None, registered_by=institution, **fields)
        patient.full_clean(exclude=["id_number"])
        try:
            with transaction.atomic():  # a savepoint: another registration of this number may win the race
                patient.save()
        except IntegrityError:
            if not number:
                raise
            return _matched(actor, Patient.objects.select_for_update().get(id_number=number), fields)
        audit_record(
            actor=actor,
            action=AuditAction.CREATE,
            obj=patient,
            changes={"identified": bool(number), "registered_by": institution.code},
        )
    return patient


def _same_name(a: str, b: str) -> bool:
    def norm(name: str) -> str:
        return "".join(ch for ch in name if not ch.isspace() and ch not in "·•・.").casefold()

    return norm(a) == norm(b)


def _matched(actor: User | None, existing: Patient, fields: dict[str, Any]) -> Patient:
    """The record already holding this ID number: the same person only if the name agrees too.

    Knowing a number is not enough to reach the record someone else registered: a different name
    is refused (without saying whose the number is), and nothing already recorded is overwritten.
    """
    if not _same_name(existing.name, fields["name"]):
        raise ValidationError(
            {"id_number": _("This ID number is on record under another name. Check the number and the name.")}
        )
    filled = [k for k, v in fields.items() if v not in (None, "") and getattr(existing, k) in (None, "")]
    for key in filled:
        setattr(existing, key, fields[key])
    if filled:
        existing.save(update_fields=[*filled, "updated_at"])
        audit_record(actor=actor, action=AuditAction.UPDATE, obj=existing, changes={"filled": filled})
    return existing


def patient_merge(*, actor: User, source: Patient, target: Patient) -> Patient:
    """Merge an unidentified record into an identified one; its referrals move, the record stays."""
    if Permission.MANAGE_PATIENTS_MERGE not in user_scope(actor).permissions:
        raise PermissionDenied(_("You may not merge patient records."))
    from yilian.referrals.models import Referral
    from yilian.referrals.selectors import patient_queryset_visible_to

    with transaction.atomic():
        source = Patient.objects.select_for_update().get(pk=source.pk)
        target = Patient.objects.select_for_update().get(pk=target.pk)
        if source.pk == target.pk:
            raise ValidationError(_("A record cannot be merged into itself."), code="merge_self")
        if source.id_number:
            raise ValidationError(
                _("Only an unidentified record (without an ID number) can be merged into another."),
                code="merge_identified",
            )
        if source.merged_into_id is not None or target.merged_into_id is not None:
            raise ValidationError(_("This record has already been merged."), code="merge_twice")
        if patient_queryset_visible_to(actor).filter(pk__in=[source.pk, target.pk]).count() != 2:
            raise PermissionDenied(_("Both records must be patients of referrals you may see."))
        moved = list(Referral.objects.filter(patient=source).values_list("number", flat=True))
        Referral.objects.filter(patient=source).update(patient=target, updated_at=timezone.now())
        source.merged_into = target
        source.merged_at = timezone.now()
        source.merged_by = actor
        source.save(update_fields=["merged_into", "merged_at", "merged_by", "updated_at"])
        audit_record(
            actor=actor,
            action=AuditAction.UPDATE,
            obj=source,
            changes={"merged_into": str(target.public_id), "referrals_moved": moved},
        )
    return target
