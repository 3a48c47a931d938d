"""Roster shortfalls and their reasons in plain words, in the active language.

Dates are ISO (YYYY-MM-DD) in every language, so they read the same in Chinese and English.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from yilian.dispatch.solver import Reason, ReasonKind, Shortfall, ShortfallKind

WEEKDAYS = (
    gettext_lazy("Monday"),
    gettext_lazy("Tuesday"),
    gettext_lazy("Wednesday"),
    gettext_lazy("Thursday"),
    gettext_lazy("Friday"),
    gettext_lazy("Saturday"),
    gettext_lazy("Sunday"),
)


def format_dates(dates: Iterable[dt.date]) -> str:
    return ", ".join(d.isoformat() for d in dates)


def weekday_name(weekday: int) -> str:
    return str(WEEKDAYS[weekday])


def describe_shortfall(s: Shortfall) -> str:
    """One sentence: who is short, on which day or in which week, by how much."""
    if s.kind == ShortfallKind.DAY:
        values = {"department": s.label, "missing": s.missing, "date": format_dates(s.dates)}
        if s.need_label:
            return ngettext(
                "%(department)s is short %(missing)d expert on %(date)s (%(need)s).",
                "%(department)s is short %(missing)d experts on %(date)s (%(need)s).",
                s.missing,
            ) % {**values, "need": s.need_label}
        return (
            ngettext(
                "%(department)s is short %(missing)d expert on %(date)s.",
                "%(department)s is short %(missing)d experts on %(date)s.",
                s.missing,
            )
            % values
        )
    if s.kind == ShortfallKind.WEEK:
        return ngettext(
            "%(department)s is short %(missing)d expert-day in the week of %(week)s.",
            "%(department)s is short %(missing)d expert-days in the week of %(week)s.",
            s.missing,
        ) % {"department": s.label, "missing": s.missing, "week": s.week.isoformat()}
    return ngettext(
        "%(expert)s is %(missing)d day short of their commitment in the week of %(week)s.",
        "%(expert)s is %(missing)d days short of their commitment in the week of %(week)s.",
        s.missing,
    ) % {"expert": s.label, "missing": s.missing, "week": s.week.isoformat()}


def describe_reason(r: Reason) -> str:
    """One clause, e.g. "Chen Zhiyuan: home duty every Tuesday"."""
    dates = format_dates(r.dates)
    count = len(r.dates)
    match r.kind:
        case ReasonKind.HOLIDAY:
            if all(d.weekday() < 5 for d in r.dates):
                return ngettext("%(dates)s is a public holiday", "%(dates)s are public holidays", count) % {
                    "dates": dates
                }
            return ngettext("%(dates)s is not a working day", "%(dates)s are not working days", count) % {
                "dates": dates
            }
        case ReasonKind.BLOCKED:
            if r.weekday is None:
                return _("%(expert)s: home duty on %(dates)s") % {"expert": r.expert, "dates": dates}
            return _("%(expert)s: home duty every %(weekday)s") % {
                "expert": r.expert,
                "weekday": weekday_name(r.weekday),
            }
        case ReasonKind.LEAVE:
            return _("%(expert)s: on leave %(dates)s") % {"expert": r.expert, "dates": dates}
        case ReasonKind.OUTSIDE_WINDOW:
            return _("%(expert)s: not stationed on %(dates)s (outside the assignment period)") % {
                "expert": r.expert,
                "dates": dates,
            }
        case ReasonKind.FIXED_OFF:
            return _("%(expert)s: set by hand as not on site on %(dates)s") % {"expert": r.expert, "dates": dates}
        case ReasonKind.OTHER_SITE:
            return _("%(expert)s: on site for another assignment on %(dates)s") % {"expert": r.expert, "dates": dates}
        case ReasonKind.COMMITMENT:
            return _("%(expert)s: their committed days that week are used on other days") % {"expert": r.expert}
        case ReasonKind.TRAVEL:
            return _("%(expert)s: no free travel day next to %(dates)s") % {"expert": r.expert, "dates": dates}
        case ReasonKind.NO_EXPERTS:
            return _("nobody is assigned to this department")
        case ReasonKind.CAPACITY:
            committed = r.committed or 0
            return ngettext(
                "the assigned experts commit %(committed)d expert-day that week, %(needed)d are needed",
                "the assigned experts commit %(committed)d expert-days that week, %(needed)d are needed",
                committed,
            ) % {"committed": committed, "needed": r.needed or 0}
    return str(r.kind)


def describe(s: Shortfall) -> list[str]:
    """The shortfall's sentence followed by its reasons."""
    return [describe_shortfall(s), *(describe_reason(r) for r in s.reasons)]
