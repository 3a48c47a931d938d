"""Writes of satisfaction surveys.

Domain rules enforced here:
- questionnaires are data; a consortium office publishes a new version for its consortium (the
  built-in defaults, with no consortium, only a system administrator); items are checked (unique
  keys, known types and dimensions, bilingual texts, options for choices, exactly one free-text
  item); old versions, their tokens and their answers never change;
- a survey link is issued for one encounter at an institution where the actor may issue surveys;
  it is pinned to the questionnaire version current at issue, valid for the questionnaire's days
  (else ``YILIAN_SURVEY_VALID_DAYS``), answerable once; only the sha256 of the raw token is stored;
- a referral gets at most one survey link, once its outcome has been returned; its raw token is
  derived from the referral and the server's secret, so the slip shows the same code each time;
- posters and staff links belong to hospital administrators and quality staff; a poster issues a
  fresh link per visitor, limited per device (a cookie) and per network address within a window,
  counted in the database; a device that scans again gets its unanswered link back;
- an answer is checked against the items of the version its link was given, and stored whole or
  not at all; the link is marked used under a row lock, so a double submit stores one response;
- responses hold no personal data: no user, name, phone or address. For that reason answering and
  scanning leave no audit row (an audit row carries the caller's address); staff actions do.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from yilian.core.audit import audit_record
from yilian.core.models import AuditAction
from yilian.core.permissions import Permission, Role
from yilian.referrals.models import Referral, Status
from yilian.registry.models import Consortium, ConsortiumMember, Department, Institution, User
from yilian.registry.selectors import AnyUser, user_scope
from yilian.surveys.defaults import create_default_questionnaires
from yilian.surveys.models import (
    Channel,
    Dimension,
    ItemType,
    Poster,
    PosterScan,
    Questionnaire,
    QuestionnaireVersion,
    SurveyAnswer,
    SurveyKind,
    SurveyResponse,
    SurveyToken,
)
from yilian.surveys.sms import get_sms_backend

MAX_ITEMS = 30
MAX_OPTIONS = 12
MAX_TEXT = 500
MAX_ITEM_TEXT = 300
STAFF_BATCH_MAX = 500
ITEM_KEY = re.compile(r"^[a-z][a-z0-9_]{0,19}$")
PHONE = re.compile(r"^1[3-9]\d{9}$")
# Roles that hand out posters and staff links (a doctor hands out links for an encounter only).
POSTER_ROLES = frozenset({Role.HOSPITAL_ADMIN, Role.QUALITY_STAFF})
ENCOUNTER_KINDS = (SurveyKind.OUTPATIENT, SurveyKind.INPATIENT)


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _derived_token(purpose: str) -> str:
    """A raw token the server can derive again from ``purpose`` and its secret, never stored."""
    digest = hmac.new(settings.SECRET_KEY.encode(), purpose.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")


def _keyed_hash(value: str) -> str:
    return hmac.new(settings.SECRET_KEY.encode(), ("survey-limit:" + value).encode(), hashlib.sha256).hexdigest()


def answer_url(raw: str) -> str:
    return settings.SITE_URL + reverse("survey_answer", args=[raw])


@dataclass(frozen=True)
class IssuedToken:
    """A stored token and its raw value, which exists only here (and in the link made from it)."""

    token: SurveyToken
    raw: str

    @property
    def url(self) -> str:
        return answer_url(self.raw)


# ----------------------------------------------------------------------------------------
# Questionnaires


def default_questionnaires_ensure() -> int:
    """Create any missing built-in questionnaire (the data migration does this for every database)."""
    with transaction.atomic():
        return create_default_questionnaires(Questionnaire, QuestionnaireVersion, timezone.now())


def questionnaire_for(*, consortium: Consortium | None, kind: str) -> Questionnaire:
    """The consortium's active questionnaire of this kind, else the built-in one."""
    qs = Questionnaire.objects.filter(kind=kind, is_active=True)
    own = qs.filter(consortium=consortium).first() if consortium is not None else None
    if own is not None and own.versions.exists():
        return own
    default = qs.filter(consortium__isnull=True).first()
    if default is None and not Questionnaire.objects.filter(consortium__isnull=True, kind=kind).exists():
        # The data migration made them; a database emptied since (a flushed test database) gets them back.
        default_questionnaires_ensure()
        default = qs.filter(consortium__isnull=True).first()
    if default is None:
        raise ValidationError(_("There is no questionnaire of this kind."))
    return default


def questionnaire_at(*, institution: Institution, kind: str) -> Questionnaire:
    """The questionnaire an institution uses: among the consortia it currently belongs to (or leads),
    the first by code that has published its own of this kind; else the built-in one."""
    today = timezone.localdate()
    member_of = ConsortiumMember.objects.filter(
        Q(left_on__isnull=True) | Q(left_on__gte=today), institution=institution, joined_on__lte=today
    ).values("consortium_id")
    own = (
        Questionnaire.objects.filter(
            Q(consortium__in=member_of) | Q(consortium__lead_institution=institution),
            kind=kind,
            is_active=True,
            versions__isnull=False,
        )
        .order_by("consortium__code")
        .first()
    )
    return own or questionnaire_for(consortium=None, kind=kind)


class ItemProblem(ValidationError):
    """A problem with one item; ``index`` is the item's place in the list given (from 1), so that an
    editor can show the message next to the item it is about."""

    def __init__(self, message: str, code: str | None = "item", params: Any = None, *, index: int = 0) -> None:
        # The positional signature of ValidationError's, so that a copy or a pickle can rebuild it.
        super().__init__(message, code=code, params=params)
        self.index = index


def _text(value: Any, *, where: str, field: str, errors: list[str]) -> str:
    if not isinstance(value, str) or not value.strip():
        errors.append(_("%(where)s: the %(field)s text is missing.") % {"where": where, "field": field})
        return ""
    if len(value) > MAX_ITEM_TEXT or "\x00" in value:
        errors.append(
            _("%(where)s: the %(field)s text is too long (at most %(max)s characters).")
            % {"where": where, "field": field, "max": MAX_ITEM_TEXT}
        )
    return value.strip()


def questionnaire_validate_items(items: Any, *, names: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Check items against the rules and return them normalised (known keys only).

    Raises ValidationError({"items": [...]}) naming each problem in the caller's language. A problem
    with one item is an ``ItemProblem`` carrying the item's index; the item is called by its place
    ("Item 3") unless the caller names the items in ``names`` (an editor, by its rows). The count of
    free-text items is a problem of the whole list, with the code ``free_text_count``.
    """
    if not isinstance(items, list) or not items:
        raise ValidationError({"items": [_("Give at least one item.")]})
    if len(items) > MAX_ITEMS:
        raise ValidationError({"items": [_("At most %(max)s items.") % {"max": MAX_ITEMS}]})
    errors: list[ValidationError] = []
    clean: list[dict[str, Any]] = []
    keys: set[str] = set()
    texts = 0
    for index, item in enumerate(items, start=1):
        where = names[index - 1] if index <= len(names) else _("Item %(number)s") % {"number": index}
        found: list[str] = []
        if not isinstance(item, dict):
            errors.append(ItemProblem(_("%(where)s: must be an object.") % {"where": where}, index=index))
            continue
        key = item.get("key")
        if not isinstance(key, str) or not ITEM_KEY.match(key):
            found.append(
                _("%(where)s: the key must be short lowercase letters and digits, such as q1.") % {"where": where}
            )
            key = ""
        elif key in keys:
            found.append(_("%(where)s: the key %(key)s is used twice.") % {"where": where, "key": key})
        else:
            where = f"{where} ({key})"
        keys.add(key)
        type_ = item.get("type")
        if type_ not in ItemType.values:
            found.append(
                _("%(where)s: the type must be one of %(types)s.")
                % {"where": where, "types": ", ".join(ItemType.values)}
            )
        dimension = item.get("dimension")
        if dimension not in Dimension.values:
            found.append(
                _("%(where)s: the dimension must be one of %(dimensions)s.")
                % {"where": where, "dimensions": ", ".join(Dimension.values)}
            )
        elif type_ == ItemType.TEXT and dimension != Dimension.COMMENT:
            found.append(_("%(where)s: a free-text item has the dimension comment.") % {"where": where})
        elif type_ != ItemType.TEXT and dimension == Dimension.COMMENT:
            found.append(_("%(where)s: only the free-text item has the dimension comment.") % {"where": where})
        required = item.get("required", False)
        if not isinstance(required, bool):
            found.append(_("%(where)s: required must be true or false.") % {"where": where})
            required = False
        if type_ == ItemType.TEXT:
            texts += 1
            if required:
                found.append(_("%(where)s: the free-text item cannot be required.") % {"where": where})
        entry: dict[str, Any] = {
            "key": key,
            "dimension": dimension,
            "type": type_,
            "zh": _text(item.get("zh"), where=where, field=_("Chinese"), errors=found),
            "en": _text(item.get("en"), where=where, field=_("English"), errors=found),
            "required": required,
        }
        options = item.get("options")
        if type_ in (ItemType.SINGLE, ItemType.MULTIPLE):
            if not isinstance(options, list) or not 2 <= len(options) <= MAX_OPTIONS:
                found.append(
                    _("%(where)s: a choice needs between 2 and %(max)s options.") % {"where": where, "max": MAX_OPTIONS}
                )
                options = []
            seen: set[str] = set()
            entry["options"] = []
            for number, option in enumerate(options, start=1):
                at = _("%(where)s, option %(number)s") % {"where": where, "number": number}
                if not isinstance(option, dict):
                    found.append(_("%(where)s: must be an object.") % {"where": at})
                    continue
                option_key = option.get("key")
                if not isinstance(option_key, str) or not ITEM_KEY.match(option_key) or option_key in seen:
                    found.append(_("%(where)s: the key is missing, malformed or used twice.") % {"where": at})
                    option_key = ""
                seen.add(str(option_key))
                entry["options"].append(
                    {
                        "key": option_key,
                        "zh": _text(option.get("zh"), where=at, field=_("Chinese"), errors=found),
                        "en": _text(option.get("en"), where=at, field=_("English"), errors=found),
                    }
                )
        elif options:
            found.append(_("%(where)s: only a choice has options.") % {"where": where})
        clean.append(entry)
        errors.extend(ItemProblem(message, index=index) for message in found)
    if texts != 1:
        errors.append(
            ValidationError(
                _("A questionnaire has exactly one free-text item (it has %(count)s).") % {"count": texts},
                code="free_text_count",
            )
        )
    if errors:
        raise ValidationError({"items": errors})
    return clean


def can_manage_questionnaires(user: AnyUser, consortium: Consortium | None) -> bool:
    scope = user_scope(user)
    if scope.is_global:
        return True
    if consortium is None or Permission.MANAGE_QUESTIONNAIRES not in scope.permissions:
        return False
    return consortium.pk in scope.consortium_ids


def questionnaire_publish(
    *,
    actor: User,
    consortium: Consortium | None,
    kind: str,
    items: Any,
    name_zh: str = "",
    name_en: str = "",
    valid_days: int | None = None,
) -> QuestionnaireVersion:
    """Publish a new version of the consortium's questionnaire of this kind (created on first publish,
    named like the built-in one unless names are given). Earlier versions stay as they are."""
    if not can_manage_questionnaires(actor, consortium):
        raise PermissionDenied(_("Only the consortium's office may publish its questionnaires."))
    if kind not in SurveyKind.values:
        raise ValidationError({"kind": [_("Not a kind of survey.")]})
    if valid_days is not None and not 1 <= valid_days <= 365:
        raise ValidationError({"valid_days": [_("A link is valid for 1 to 365 days.")]})
    clean = questionnaire_validate_items(items)
    name_zh, name_en = name_zh.strip()[:120], name_en.strip()[:160]
    with transaction.atomic():
        default = Questionnaire.objects.filter(consortium__isnull=True, kind=kind).first()
        questionnaire, created = Questionnaire.objects.get_or_create(
            consortium=consortium,
            kind=kind,
            defaults={
                "name_zh": name_zh or (default.name_zh if default else SurveyKind(kind).label),
                "name_en": name_en or (default.name_en if default else ""),
            },
        )
        # Serialise publishers of this questionnaire so version numbers never collide.
        questionnaire = Questionnaire.objects.select_for_update().get(pk=questionnaire.pk)
        changes: dict[str, Any] = {}
        if not created:
            for field, value in (("name_zh", name_zh), ("name_en", name_en)):
                if value and getattr(questionnaire, field) != value:
                    changes[field] = [getattr(questionnaire, field), value]
                    setattr(questionnaire, field, value)
        if valid_days is not None and questionnaire.valid_days != valid_days:
            changes["valid_days"] = [questionnaire.valid_days, valid_days]
            questionnaire.valid_days = valid_days
        if not questionnaire.is_active:
            questionnaire.is_active = True
            changes["is_active"] = [False, True]
        questionnaire.save()
        number = (questionnaire.versions.aggregate(m=Max("number"))["m"] or 0) + 1
        version = QuestionnaireVersion.objects.create(
            questionnaire=questionnaire, number=number, items=clean, published_at=timezone.now(), published_by=actor
        )
        audit_record(
            actor=actor,
            action=AuditAction.CREATE,
            obj=version,
            changes={"kind": kind, "number": number, "items": len(clean), **changes},
        )
    return version


# ----------------------------------------------------------------------------------------
# Issuing links


def can_issue_at(user: AnyUser, institution: Institution) -> bool:
    scope = user_scope(user)
    return scope.is_global or institution.pk in scope.institution_ids_with(Permission.ISSUE_SURVEYS)


def _can_run_posters_at(user: AnyUser, institution: Institution) -> bool:
    scope = user_scope(user)
    if scope.is_global:
        return True
    return any(role in POSTER_ROLES and i == institution.pk for role, i in scope.roles_at)


def institutions_issuing_for(user: AnyUser) -> list[Institution]:
    scope = user_scope(user)
    qs = Institution.objects.filter(is_active=True).order_by("code")
    if not scope.is_global:
        qs = qs.filter(pk__in=scope.institution_ids_with(Permission.ISSUE_SURVEYS))
    return list(qs)


def institutions_with_posters_for(user: AnyUser) -> list[Institution]:
    scope = user_scope(user)
    qs = Institution.objects.filter(is_active=True).order_by("code")
    if not scope.is_global:
        qs = qs.filter(pk__in={i for role, i in scope.roles_at if role in POSTER_ROLES})
    return list(qs)


def _check_department(institution: Institution, department: Department | None) -> None:
    if department is not None and department.institution_id != institution.pk:
        raise ValidationError({"department": [_("The department is not part of this institution.")]})


def _current_version(questionnaire: Questionnaire) -> QuestionnaireVersion:
    version = questionnaire.current_version()
    if version is None:
        raise ValidationError(_("This questionnaire has no published version."))
    return version


def _valid_days(questionnaire: Questionnaire) -> int:
    return questionnaire.valid_days or int(settings.YILIAN_SURVEY_VALID_DAYS)


def _new_token(
    *,
    raw: str,
    version: QuestionnaireVersion,
    institution: Institution,
    department: Department | None,
    channel: str,
    days: int,
    actor: User | None,
    referral: Referral | None = None,
    poster: Poster | None = None,
) -> SurveyToken:
    now = timezone.now()
    return SurveyToken.objects.create(
        token_hash=token_hash(raw),
        version=version,
        kind=version.questionnaire.kind,
        institution=institution,
        department=department,
        referral=referral,
        poster=poster,
        channel=channel,
        issued_at=now,
        expires_at=now + dt.timedelta(days=days),
        issued_by=actor,
    )


def token_issue(
    *,
    actor: User,
    institution: Institution,
    kind: str,
    department: Department | None = None,
    channel: str = Channel.QR,
) -> IssuedToken:
    """One survey link for one outpatient visit or inpatient stay at the actor's institution."""
    if not can_issue_at(actor, institution):
        raise PermissionDenied(_("You may hand out survey links only at your own institution."))
    if kind not in ENCOUNTER_KINDS:
        raise ValidationError({"kind": [_("Choose outpatient or inpatient.")]})
    if channel not in (Channel.QR, Channel.SMS, Channel.LINK):
        raise ValidationError({"channel": [_("Choose a QR code, a text message or a link.")]})
    _check_department(institution, department)
    questionnaire = questionnaire_at(institution=institution, kind=kind)
    raw = secrets.token_urlsafe(16)
    with transaction.atomic():
        token = _new_token(
            raw=raw,
            version=_current_version(questionnaire),
            institution=institution,
            department=department,
            channel=channel,
            days=_valid_days(questionnaire),
            actor=actor,
        )
        audit_record(actor=actor, action=AuditAction.CREATE, obj=token, changes={"kind": kind, "channel": str(channel)})
    return IssuedToken(token, raw)


def staff_tokens_issue(
    *, actor: User, institution: Institution, count: int, department: Department | None = None
) -> list[IssuedToken]:
    """A batch of anonymous staff-survey links, to hand out one per colleague."""
    if not _can_run_posters_at(actor, institution):
        raise PermissionDenied(_("Only the hospital's administrators and quality staff hand out staff surveys."))
    if not 1 <= count <= STAFF_BATCH_MAX:
        raise ValidationError({"count": [_("Issue between 1 and %(max)s links.") % {"max": STAFF_BATCH_MAX}]})
    _check_department(institution, department)
    questionnaire = questionnaire_at(institution=institution, kind=SurveyKind.STAFF)
    issued: list[IssuedToken] = []
    with transaction.atomic():
        version = _current_version(questionnaire)
        for _index in range(count):
            raw = secrets.token_urlsafe(16)
            token = _new_token(
                raw=raw,
                version=version,
                institution=institution,
                department=department,
                channel=Channel.LINK,
                days=_valid_days(questionnaire),
                actor=actor,
            )
            issued.append(IssuedToken(token, raw))
        audit_record(
            actor=actor,
            action=AuditAction.CREATE,
            obj=institution,
            object_type="surveys.surveytoken",
            changes={"kind": SurveyKind.STAFF.value, "count": count},
        )
    return issued


def _referral_raw(referral: Referral) -> str:
    return _derived_token(f"survey:referral:{referral.public_id}")


def token_issue_for_referral(*, actor: User | None, referral: Referral) -> IssuedToken | None:
    """The referred-patient survey link of a referral whose outcome has been returned, else None.

    Issued on first call and the same link on every later call (at most one per referral), so the
    slip and the patient's status page can show it. None once it has been answered or has expired.
    The caller has already authorised access to the referral (slip: its institutions and office;
    status page: the holder of the referral's status token).
    """
    if referral.status not in (Status.OUTCOME_RETURNED, Status.CLOSED) or referral.to_institution_id is None:
        return None
    raw = _referral_raw(referral)
    existing = SurveyToken.objects.filter(referral=referral).first()
    if existing is None:
        questionnaire = questionnaire_for(consortium=referral.consortium, kind=SurveyKind.REFERRED)
        assert referral.to_institution is not None
        try:
            with transaction.atomic():
                existing = _new_token(
                    raw=raw,
                    version=_current_version(questionnaire),
                    institution=referral.to_institution,
                    department=referral.to_department,
                    channel=Channel.QR,
                    days=_valid_days(questionnaire),
                    actor=actor if actor is not None and actor.is_authenticated else None,
                    referral=referral,
                )
                audit_record(
                    actor=actor,
                    action=AuditAction.CREATE,
                    obj=existing,
                    changes={"kind": SurveyKind.REFERRED.value, "referral": referral.number},
                )
        except IntegrityError:
            # Someone opened the slip at the same moment: theirs is the link.
            existing = SurveyToken.objects.filter(referral=referral).first()
            if existing is None:
                raise
    if existing.used_at is not None or existing.expires_at <= timezone.now():
        return None
    return IssuedToken(existing, raw)


# ----------------------------------------------------------------------------------------
# SMS


def normalise_phone(phone: str) -> str:
    digits = re.sub(r"[\s\-()]", "", phone or "")
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("0086"):
        digits = digits[4:]
    if not PHONE.match(digits):
        raise ValidationError({"phone": [_("Enter a mainland mobile number of 11 digits, such as 13812345678.")]})
    return digits


def sms_text(issued: IssuedToken) -> str:
    institution = issued.token.institution
    name = institution.short_name or institution.name_zh
    until = timezone.localtime(issued.token.expires_at).strftime("%m-%d")
    # Short and in Chinese (the patients' language); one link, nothing about the visit itself.
    return f"【{name}】请花1分钟评价本次就医：{issued.url} （{until}前有效，匿名）"


def sms_send_survey(*, actor: User, phone: str, issued: IssuedToken) -> None:
    """Send the survey link to a phone number. The number goes to the gateway and nowhere else."""
    token = issued.token
    if not can_issue_at(actor, token.institution):
        raise PermissionDenied(_("You may hand out survey links only at your own institution."))
    if token.token_hash != token_hash(issued.raw):
        raise ValidationError(_("This survey link does not exist."))
    if token.used_at is not None or token.expires_at <= timezone.now():
        raise ValidationError(_("This survey link has already been answered or has expired."))
    number = normalise_phone(phone)
    with transaction.atomic():
        audit_record(actor=actor, action=AuditAction.UPDATE, obj=token, changes={"sent_by": Channel.SMS.value})
        get_sms_backend().send(number, sms_text(issued))


# ----------------------------------------------------------------------------------------
# Posters


def poster_create(
    *,
    actor: User,
    institution: Institution,
    kind: str,
    department: Department | None = None,
    valid_days: int = 1,
) -> Poster:
    if not _can_run_posters_at(actor, institution):
        raise PermissionDenied(_("Only the hospital's administrators and quality staff make posters."))
    if kind not in ENCOUNTER_KINDS:
        raise ValidationError({"kind": [_("Choose outpatient or inpatient.")]})
    if not 1 <= valid_days <= 30:
        raise ValidationError({"valid_days": [_("A poster's link is valid for 1 to 30 days.")]})
    _check_department(institution, department)
    questionnaire = questionnaire_at(institution=institution, kind=kind)
    with transaction.atomic():
        poster = Poster.objects.create(
            institution=institution,
            department=department,
            questionnaire=questionnaire,
            valid_days=valid_days,
            created_by=actor,
        )
        audit_record(actor=actor, action=AuditAction.CREATE, obj=poster, changes={"kind": kind})
    return poster


def poster_deactivate(*, actor: User, poster: Poster) -> None:
    if not _can_run_posters_at(actor, poster.institution):
        raise PermissionDenied(_("Only the hospital's administrators and quality staff make posters."))
    with transaction.atomic():
        Poster.objects.filter(pk=poster.pk).update(is_active=False, updated_at=timezone.now())
        audit_record(actor=actor, action=AuditAction.DELETE, obj=poster)


class ScanRefused(StrEnum):
    UNKNOWN = "unknown"
    TOO_MANY = "too_many"


class PosterScanError(Exception):
    def __init__(self, reason: ScanRefused) -> None:
        super().__init__(reason.value)
        self.reason = reason


def new_device_id() -> str:
    return secrets.token_urlsafe(16)


def _address_group(address: str) -> str:
    """The unit the per-address ceiling counts: an IPv4 address, or an IPv6 /64 (one subscriber
    line, whose devices may take any address inside it)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip.ipv4_mapped or ip) if isinstance(ip, ipaddress.IPv6Address) else str(ip)


def poster_scan(*, code: str, device_id: str, address: str) -> IssuedToken:
    """A survey link for one visitor who scanned a poster.

    ``device_id`` is the visitor's device cookie (the view makes one when missing); ``address`` the
    network address. Within the window a device that scans again gets its unanswered link back;
    new links are limited per device and per address (``YILIAN_POSTER_*``). Raises PosterScanError.
    """
    if not code or len(code) > 20 or not device_id or len(device_id) > 64:
        raise PosterScanError(ScanRefused.UNKNOWN)
    device_hash, ip_hash = _keyed_hash("device:" + device_id), _keyed_hash("ip:" + _address_group(address))
    now = timezone.now()
    since = now - dt.timedelta(minutes=int(settings.YILIAN_POSTER_WINDOW_MINUTES))
    with transaction.atomic():
        # Scans are kept only as long as the limits need them: afterwards nothing ties a device
        # or an address to the links it was given.
        PosterScan.objects.filter(scanned_at__lt=since).delete()
        # One scan of a poster at a time: the counts below cannot be raced past the ceilings.
        poster = (
            Poster.objects.select_for_update()
            .select_related("questionnaire", "institution")
            .filter(code=code, is_active=True, questionnaire__is_active=True)
            .first()
        )
        if poster is None:
            raise PosterScanError(ScanRefused.UNKNOWN)
        recent = PosterScan.objects.filter(poster=poster, device_hash=device_hash, scanned_at__gte=since)
        pending = (
            recent.filter(token__used_at__isnull=True, token__expires_at__gt=now)
            .select_related("token")
            .order_by("-scanned_at")
            .first()
        )
        if pending is not None:
            raw = _derived_token(f"survey:poster:{device_id}:{pending.token.public_id}")
            if pending.token.token_hash == token_hash(raw):
                return IssuedToken(pending.token, raw)
        devices = PosterScan.objects.filter(device_hash=device_hash, scanned_at__gte=since).count()
        addresses = PosterScan.objects.filter(ip_hash=ip_hash, scanned_at__gte=since).count()
        if devices >= int(settings.YILIAN_POSTER_PER_DEVICE) or addresses >= int(settings.YILIAN_POSTER_PER_ADDRESS):
            raise PosterScanError(ScanRefused.TOO_MANY)
        questionnaire = poster.questionnaire
        version = _current_version(questionnaire)
        token = SurveyToken(
            version=version,
            kind=questionnaire.kind,
            institution=poster.institution,
            department=poster.department,
            poster=poster,
            channel=Channel.POSTER,
            issued_at=now,
            expires_at=now + dt.timedelta(days=poster.valid_days),
        )
        # Derived from the device's own cookie, so only that device can be given it again.
        raw = _derived_token(f"survey:poster:{device_id}:{token.public_id}")
        token.token_hash = token_hash(raw)
        token.save()
        PosterScan.objects.create(poster=poster, device_hash=device_hash, ip_hash=ip_hash, token=token, scanned_at=now)
    return IssuedToken(token, raw)


# ----------------------------------------------------------------------------------------
# Answering


class TokenState(StrEnum):
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    USED = "used"


class SurveyTokenError(Exception):
    """The link cannot be answered; ``state`` says why (the page shows no more than that)."""

    def __init__(self, state: TokenState) -> None:
        super().__init__(state.value)
        self.state = state


def _token_by_raw(raw: str, *, lock: bool = False) -> SurveyToken:
    if not raw or len(raw) > 64:
        raise SurveyTokenError(TokenState.UNKNOWN)
    qs = SurveyToken.objects.select_related("version__questionnaire", "institution", "department")
    if lock:
        qs = qs.select_for_update(of=("self",))
    token = qs.filter(token_hash=token_hash(raw)).first()
    if token is None:
        raise SurveyTokenError(TokenState.UNKNOWN)
    if token.used_at is not None:
        raise SurveyTokenError(TokenState.USED)
    if token.expires_at <= timezone.now():
        raise SurveyTokenError(TokenState.EXPIRED)
    return token


def token_open(raw: str) -> SurveyToken:
    """The token behind an answer link, if it can still be answered; raises SurveyTokenError."""
    return _token_by_raw(raw)


Answers = dict[str, Any]


def _clean_answers(items: list[dict[str, Any]], answers: Answers) -> list[SurveyAnswer]:
    errors: dict[str, list[str]] = {}
    known = {item["key"] for item in items}
    unknown = sorted(str(k) for k in answers if k not in known)
    if unknown:
        errors["__all__"] = [
            _("These questions are not part of this questionnaire: %(keys)s.") % {"keys": ", ".join(unknown)}
        ]
    rows: list[SurveyAnswer] = []
    for item in items:
        key, type_ = item["key"], item["type"]
        value = answers.get(key)
        if isinstance(value, str):
            value = value.strip()
        empty = value is None or value == "" or value == []
        if empty:
            if item.get("required"):
                errors[key] = [_("Please answer this question.")]
            continue
        row = SurveyAnswer(item_key=key, dimension=item["dimension"])
        if type_ == ItemType.LIKERT:
            try:
                likert = int(value)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                likert = 0
            if isinstance(value, bool) or not 1 <= likert <= 5:
                errors[key] = [_("Choose one of the five answers.")]
                continue
            row.likert = likert
        elif type_ in (ItemType.SINGLE, ItemType.MULTIPLE):
            options = {o["key"] for o in item.get("options", [])}
            chosen = [value] if isinstance(value, str) else value
            if (
                not isinstance(chosen, list)
                or not all(isinstance(c, str) and c in options for c in chosen)
                or len(set(chosen)) != len(chosen)
                or (type_ == ItemType.SINGLE and len(chosen) != 1)
            ):
                errors[key] = [_("Choose from the answers given.")]
                continue
            row.choices = sorted(chosen)
        else:
            if not isinstance(value, str):
                errors[key] = [_("Must be text.")]
                continue
            text = value.replace("\x00", "")
            if len(text) > MAX_TEXT:
                errors[key] = [_("At most %(max)s characters, please.") % {"max": MAX_TEXT}]
                continue
            row.text = text
        rows.append(row)
    if errors:
        raise ValidationError(errors)
    return rows


def response_submit(*, raw_token: str, answers: Answers) -> SurveyResponse:
    """Store one answered questionnaire, whole or not at all, and mark its link used.

    ``answers`` maps item keys to a number 1-5 (likert), an option key (single), a list of option
    keys (multiple) or a text. Raises SurveyTokenError when the link cannot be answered (a second
    submit of the same link included) and ValidationError when an answer does not fit its item.
    """
    with transaction.atomic():
        # The row lock makes a second submit of the same link wait, then find it used (on SQLite
        # the whole database is locked for the write, which serialises them as well).
        token = _token_by_raw(raw_token, lock=True)
        rows = _clean_answers(token.version.items, answers)
        day = timezone.localdate()
        response = SurveyResponse.objects.create(
            version=token.version, kind=token.kind, institution=token.institution, department=token.department, day=day
        )
        for row in rows:
            row.response = response
        SurveyAnswer.objects.bulk_create(rows)
        start_of_day = timezone.make_aware(dt.datetime.combine(day, dt.time.min))
        marked = SurveyToken.objects.filter(pk=token.pk, used_at__isnull=True).update(
            used_at=start_of_day, updated_at=start_of_day
        )
        if marked != 1:  # answered meanwhile: store nothing
            raise SurveyTokenError(TokenState.USED)
    return response
