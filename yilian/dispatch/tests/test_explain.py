"""Shortfalls and reasons in plain English words."""

from __future__ import annotations

import dataclasses
import datetime as dt

from django.utils import translation

from yilian.dispatch.explain import describe, describe_reason, describe_shortfall
from yilian.dispatch.solver import Reason, ReasonKind, Shortfall, ShortfallKind

MONDAY = dt.date(2026, 12, 7)


def _shortfall(kind: ShortfallKind, missing: int, reasons=(), **kwargs) -> Shortfall:
    base = Shortfall(
        kind=kind,
        department="neuro",
        label="Neurosurgery, Quzhou People's Hospital",
        week=MONDAY,
        dates=(MONDAY + dt.timedelta(days=1),),
        missing=missing,
        reasons=tuple(reasons),
    )
    return dataclasses.replace(base, **kwargs)


def test_shortfall_sentences() -> None:
    with translation.override("en"):
        assert describe_shortfall(_shortfall(ShortfallKind.WEEK, 3)) == (
            "Neurosurgery, Quzhou People's Hospital is short 3 expert-days in the week of 2026-12-07."
        )
        assert describe_shortfall(_shortfall(ShortfallKind.WEEK, 1)) == (
            "Neurosurgery, Quzhou People's Hospital is short 1 expert-day in the week of 2026-12-07."
        )
        assert describe_shortfall(_shortfall(ShortfallKind.DAY, 1, need_label="operating day")) == (
            "Neurosurgery, Quzhou People's Hospital is short 1 expert on 2026-12-08 (operating day)."
        )
        assert describe_shortfall(_shortfall(ShortfallKind.DAY, 2)) == (
            "Neurosurgery, Quzhou People's Hospital is short 2 experts on 2026-12-08."
        )
        assert describe_shortfall(_shortfall(ShortfallKind.COMMITMENT, 2, label="Chen Zhiyuan", expert="a1")) == (
            "Chen Zhiyuan is 2 days short of their commitment in the week of 2026-12-07."
        )


def test_reason_clauses() -> None:
    chen = "Chen Zhiyuan"
    with translation.override("en"):
        cases = {
            Reason(ReasonKind.BLOCKED, expert=chen, weekday=1): "Chen Zhiyuan: home duty every Tuesday",
            Reason(ReasonKind.LEAVE, expert=chen, dates=(dt.date(2026, 12, 8),)): "Chen Zhiyuan: on leave 2026-12-08",
            Reason(ReasonKind.HOLIDAY, dates=(dt.date(2026, 1, 1),)): "2026-01-01 is a public holiday",
            Reason(ReasonKind.HOLIDAY, dates=(dt.date(2026, 10, 1), dt.date(2026, 10, 2))): (
                "2026-10-01, 2026-10-02 are public holidays"
            ),
            Reason(ReasonKind.HOLIDAY, dates=(dt.date(2026, 10, 3),)): "2026-10-03 is not a working day",
            Reason(ReasonKind.CAPACITY, committed=2, needed=3): (
                "the assigned experts commit 2 expert-days that week, 3 are needed"
            ),
            Reason(ReasonKind.CAPACITY, committed=1, needed=3): (
                "the assigned experts commit 1 expert-day that week, 3 are needed"
            ),
            Reason(ReasonKind.NO_EXPERTS): "nobody is assigned to this department",
            Reason(ReasonKind.OTHER_SITE, expert=chen, dates=(dt.date(2026, 12, 9),)): (
                "Chen Zhiyuan: on site for another assignment on 2026-12-09"
            ),
            Reason(ReasonKind.FIXED_OFF, expert=chen, dates=(dt.date(2026, 12, 9),)): (
                "Chen Zhiyuan: set by hand as not on site on 2026-12-09"
            ),
            Reason(ReasonKind.COMMITMENT, expert=chen, dates=(dt.date(2026, 12, 9),)): (
                "Chen Zhiyuan: their committed days that week are used on other days"
            ),
            Reason(ReasonKind.OUTSIDE_WINDOW, expert=chen, dates=(dt.date(2026, 12, 9),)): (
                "Chen Zhiyuan: not stationed on 2026-12-09 (outside the assignment period)"
            ),
            Reason(ReasonKind.TRAVEL, expert=chen, dates=(dt.date(2026, 12, 9),)): (
                "Chen Zhiyuan: no free travel day next to 2026-12-09"
            ),
        }
        for reason, text in cases.items():
            assert describe_reason(reason) == text
        assert {r.kind for r in cases} == set(ReasonKind), "every kind has a sentence"


def test_describe_gives_the_sentence_then_the_reasons() -> None:
    s = _shortfall(
        ShortfallKind.DAY,
        1,
        [Reason(ReasonKind.BLOCKED, expert="Chen Zhiyuan", weekday=1, dates=(MONDAY + dt.timedelta(days=1),))],
        need_label="operating day",
    )
    with translation.override("en"):
        assert describe(s) == [
            "Neurosurgery, Quzhou People's Hospital is short 1 expert on 2026-12-08 (operating day).",
            "Chen Zhiyuan: home duty every Tuesday",
        ]
