"""Expert rosters: which days each stationed expert is on site, planned with OR-Tools CP-SAT.

Pure Python over plain data (no Django models, no database), so it can be tested and benchmarked
on its own; ``yilian.dispatch.services`` builds a ``Problem`` from the assignments and stores the
``Solution``.

The model (one boolean per expert and day of the horizon):
- on-site days fall on working days of the calendar (``Problem.working_days``), inside the
  assignment's window, never on the expert's blocked weekdays (home duties) or leave;
- one site per day: a person (``Expert.person``) with several assignments is on site for at most
  one of them on any day;
- commitment: an expert with ``days_per_week = N`` is on site exactly ``required`` days in each
  ISO week of the horizon, where ``required = min(N, days the expert could be on site that week)``;
  full-time residence (``days_per_week is None``) means every such day. A week that cannot be met
  (a conflict with another assignment or with fixed days) is a commitment shortfall, penalised;
- travel: an expert whose host needs travel (``needs_travel``) spends a travel day before each run
  of consecutive on-site days and after it; a travel day is not an on-site day of any assignment of
  that person, not a blocked weekday, not leave; travel days are counted and minimised, which packs
  the on-site days of a week into one run;
- host demand: per host department, at least ``per_week`` expert-days in each week (scaled down for
  weeks the horizon or the calendar cuts short, see ``Demand``), and specific needs on a weekday or a
  date ("operating day: at least 1 expert"); unmet demand is a shortfall, penalised heavily, and
  explained in plain words (``Shortfall.reasons``);
- days fixed by hand (``Expert.fixed``) are kept as they are; the rest is re-optimised, preferring
  the previous plan (``Expert.previous``) where it is as good;
- fairness: within a host department, the days that serve a specific need (e.g. the operating day)
  are spread evenly: the solver minimises the spread between the most and the least loaded expert.

Objective (minimised), in this order of weight: demand shortfall, commitment shortfall, travel days,
fairness spread, changes from the previous plan. The integer weights are

    1000 per expert-day of demand short (week minimum) and per expert short on a need day,
     500 per committed day not planned,
      10 per travel day,
       5 per unit of spread (summed over departments),
       1 per day changed from the previous plan (on site then and not now, or the reverse),

so one day of demand outweighs any reshuffle of travel, fairness and stability around it.

Details the bullets above leave open:
- a day fixed on site is on site even on a non-working day, a blocked weekday or leave (a person
  decided it) and counts towards the commitment; a day fixed off is off and does *not* lower the
  commitment, so it can make a commitment shortfall (``ReasonKind.FIXED_OFF``). A week's commitment
  may be exceeded only by days fixed on site. Two assignments of one person fixed on site on the same
  day cannot be planned: ``solve`` returns status ``"infeasible"``, an empty roster, no shortfalls,
  and the clashes in ``Solution.conflicts``;
- the travel day before a run falls on the day before its first on-site day, the one after on the day
  after its last; a run that touches the edge of the horizon has no travel day beyond it. When that
  day cannot be a travel day (blocked, leave, fixed on site for another assignment) the run cannot
  start or end there, except next to a day fixed on site, where the rule is waived rather than make
  the fixed days impossible. A full-time resident with ``needs_travel`` would get two travel days
  each weekend; callers leave ``needs_travel`` off for residents;
- a weekday need applies on working days only; a date need applies on its date whatever the
  calendar says; when both apply the larger one counts;
- fairness compares the experts of the department who could serve at least one need day of the
  horizon; the reported ``fairness_spread`` is the largest spread of any department;
- the previous plan only counts for experts that have one (``Expert.previous`` not empty);
- the search starts from the greedy plan (trying each expert's previous days first), so the first
  roster keeps every hard rule and none is worse than that baseline;
- a shortfall's reasons say, for each expert of the department, why they are not on site on the
  days concerned, the most basic reason first: outside the assignment, not a working day, home duty,
  leave, fixed off, on site elsewhere, commitment used on other days, no free travel day. A week
  shortfall adds the week's holidays, ``CAPACITY`` when the commitments add up to less than the
  need, and ``NO_EXPERTS`` when the department has nobody.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ortools.sat.python import cp_model

W_DEMAND = 1000
W_COMMITMENT = 500
W_TRAVEL = 10
W_FAIRNESS = 5
W_CHANGE = 1


@dataclass(frozen=True)
class Expert:
    """One assignment as the solver sees it."""

    key: str  # the assignment's public id
    person: str  # the practitioner's public id: one site per day across their assignments
    name: str  # for explanations
    department: str  # host department key (matches Demand.department)
    site: str  # host institution key
    start: dt.date  # assignment window, both included (clipped to the horizon by the solver)
    end: dt.date
    days_per_week: int | None  # None = full-time residence
    blocked_weekdays: frozenset[int] = frozenset()  # 0 = Monday .. 6 = Sunday (home duties)
    leave: frozenset[dt.date] = frozenset()
    needs_travel: bool = False
    fixed: Mapping[dt.date, bool] = field(default_factory=dict)  # True = on site, False = not on site
    previous: frozenset[dt.date] = frozenset()  # on-site days of the plan being re-optimised


@dataclass(frozen=True)
class Demand:
    """What a host department needs.

    ``per_week`` is the minimum number of expert-days per ISO week. In a week the horizon or the
    calendar cuts short it is scaled to the share of that week's working days inside the horizon
    (rounded down), so a week of public holidays asks for nothing it cannot have.
    """

    department: str
    label: str  # e.g. "Neurosurgery, Quzhou People's Hospital"
    per_week: int = 0
    weekday_needs: Mapping[int, int] = field(default_factory=dict)  # weekday -> minimum experts on site
    date_needs: Mapping[dt.date, int] = field(default_factory=dict)  # date -> minimum experts on site
    need_label: str = ""  # e.g. "operating day"


@dataclass(frozen=True)
class Problem:
    start: dt.date  # a Monday
    weeks: int  # 1..12
    working_days: frozenset[dt.date]  # the working days of the horizon (holidays out, adjusted weekends in)
    experts: tuple[Expert, ...]
    demands: tuple[Demand, ...] = ()
    time_limit: float = 20.0  # seconds
    workers: int = 8

    @property
    def days(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=i) for i in range(7 * self.weeks)]


class ReasonKind(StrEnum):
    HOLIDAY = "holiday"  # the date is not a working day
    BLOCKED = "blocked"  # the expert's home duty on that weekday
    LEAVE = "leave"
    OUTSIDE_WINDOW = "outside_window"  # the assignment has not started or has ended
    FIXED_OFF = "fixed_off"  # fixed by hand as not on site
    OTHER_SITE = "other_site"  # on site for another assignment that day
    COMMITMENT = "commitment"  # the expert's committed days that week are used up
    NO_EXPERTS = "no_experts"  # nobody is assigned to the department
    CAPACITY = "capacity"  # the experts' commitments that week add up to less than the need
    TRAVEL = "travel"  # the travel day such a day would need is not free (blocked, leave, other site)


@dataclass(frozen=True)
class Reason:
    kind: ReasonKind
    expert: str = ""  # expert name, when the reason is about one person
    dates: tuple[dt.date, ...] = ()
    weekday: int | None = None
    committed: int | None = None  # CAPACITY: expert-days committed that week
    needed: int | None = None  # CAPACITY: expert-days needed that week


class ShortfallKind(StrEnum):
    WEEK = "week"  # per-week minimum of expert-days
    DAY = "day"  # a specific need on a date (from weekday_needs or date_needs)
    COMMITMENT = "commitment"  # an expert's committed days in a week


@dataclass(frozen=True)
class Shortfall:
    kind: ShortfallKind
    department: str  # department key ("" for a commitment shortfall of an expert without demand)
    label: str  # department label, or the expert's name for a commitment shortfall
    week: dt.date  # the Monday of the week
    dates: tuple[dt.date, ...]  # DAY: the date; WEEK: the working days of that week; COMMITMENT: its candidate days
    missing: int  # expert-days (WEEK, COMMITMENT) or experts (DAY) short
    reasons: tuple[Reason, ...]
    expert: str = ""  # COMMITMENT: the expert's key (Expert.key)
    need_label: str = ""  # DAY: the demand's need label, e.g. "operating day"


@dataclass
class Solution:
    status: str  # "optimal", "feasible", "infeasible", "unknown" (CP-SAT's words), or "greedy"
    onsite: dict[str, list[dt.date]]  # expert key -> sorted on-site days
    travel: dict[str, list[dt.date]]  # expert key -> sorted travel days
    shortfalls: list[Shortfall]
    objective: float
    bound: float  # the solver's best bound on the objective (equal to objective when optimal)
    wall_time: float  # seconds
    fairness_spread: int  # max over departments of (most - least) need-days between its experts
    travel_days: int
    demand_missing: int  # expert-days short against all demand (week + day needs)
    commitment_missing: int
    first_solution_time: float | None = None  # seconds to the first feasible roster (None: none found)
    conflicts: list[Reason] = field(default_factory=list)  # "infeasible": days fixed on site at two sites
    changes: int = 0  # days that differ from the previous plan
    fairness_spread_sum: int = 0  # the spreads of all departments added up (what the objective weighs)

    @property
    def gap(self) -> float:
        """Relative gap between the objective and the bound (0 = proven optimal)."""
        if self.objective == 0:
            return 0.0 if self.bound == 0 else 1.0
        return abs(self.objective - self.bound) / abs(self.objective)


# ----------------------------------------------------------------------------------------
# What follows from the problem alone (shared by the model, the greedy baseline and the measures)


def _monday(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


@dataclass
class _Static:
    problem: Problem
    days: list[dt.date]
    weeks: dict[dt.date, list[dt.date]]  # Monday -> the days of that week inside the horizon
    fixed_on: dict[str, frozenset[dt.date]]
    fixed_off: dict[str, frozenset[dt.date]]
    could: dict[str, frozenset[dt.date]]  # days the expert could be on site: the commitment counts them
    free: dict[str, frozenset[dt.date]]  # days that get a variable: ``could`` without the days fixed off
    required: dict[tuple[str, dt.date], int]  # (expert key, Monday) -> committed days
    cap: dict[tuple[str, dt.date], int]  # (expert key, Monday) -> most days allowed (fixed days may exceed)
    mates: dict[str, tuple[Expert, ...]]  # expert key -> the same person's other assignments
    travel_ok: dict[str, frozenset[dt.date]]  # days an expert needing travel may travel
    demands: dict[str, Demand]
    by_department: dict[str, tuple[Expert, ...]]
    week_need: dict[tuple[str, dt.date], int]  # (department, Monday) -> expert-days
    day_need: dict[tuple[str, dt.date], int]  # (department, date) -> experts
    fair: dict[str, tuple[tuple[Expert, ...], tuple[dt.date, ...]]]  # department -> experts, need days
    conflicts: list[Reason]


def _static(problem: Problem) -> _Static:
    days = problem.days
    in_horizon = frozenset(days)
    weeks: dict[dt.date, list[dt.date]] = defaultdict(list)
    for d in days:
        weeks[_monday(d)].append(d)
    workdays = problem.working_days

    persons: dict[str, list[Expert]] = defaultdict(list)
    for e in problem.experts:
        persons[e.person].append(e)
    mates = {e.key: tuple(m for m in persons[e.person] if m.key != e.key) for e in problem.experts}

    fixed_on: dict[str, frozenset[dt.date]] = {}
    fixed_off: dict[str, frozenset[dt.date]] = {}
    could: dict[str, frozenset[dt.date]] = {}
    free: dict[str, frozenset[dt.date]] = {}
    for e in problem.experts:
        fixed_on[e.key] = frozenset(d for d, on in e.fixed.items() if on and d in in_horizon)
        fixed_off[e.key] = frozenset(d for d, on in e.fixed.items() if not on and d in in_horizon)
        available = {
            d
            for d in days
            if d in workdays and e.start <= d <= e.end and d.weekday() not in e.blocked_weekdays and d not in e.leave
        }
        could[e.key] = frozenset(available | fixed_on[e.key])
        free[e.key] = frozenset((available - fixed_off[e.key]) | fixed_on[e.key])

    required: dict[tuple[str, dt.date], int] = {}
    cap: dict[tuple[str, dt.date], int] = {}
    for e in problem.experts:
        for monday, week in weeks.items():
            possible = sum(1 for d in week if d in could[e.key])
            n = possible if e.days_per_week is None else min(max(e.days_per_week, 0), possible)
            required[e.key, monday] = n
            cap[e.key, monday] = max(n, sum(1 for d in week if d in fixed_on[e.key]))

    travel_ok: dict[str, frozenset[dt.date]] = {}
    for e in problem.experts:
        if e.needs_travel:
            taken = set().union(*(fixed_on[m.key] for m in mates[e.key]))
            travel_ok[e.key] = frozenset(
                d for d in days if d.weekday() not in e.blocked_weekdays and d not in e.leave and d not in taken
            )

    demands = {d.department: d for d in problem.demands}
    by_department: dict[str, list[Expert]] = defaultdict(list)
    for e in problem.experts:
        by_department[e.department].append(e)
    week_need: dict[tuple[str, dt.date], int] = {}
    day_need: dict[tuple[str, dt.date], int] = {}
    fair: dict[str, tuple[tuple[Expert, ...], tuple[dt.date, ...]]] = {}
    for dep in problem.demands:
        for monday, week in weeks.items():
            working = sum(1 for d in week if d in workdays)
            need = dep.per_week * min(working, 5) // 5
            if need > 0:
                week_need[dep.department, monday] = need
        need_days = []
        for d in days:
            need = max(dep.weekday_needs.get(d.weekday(), 0) if d in workdays else 0, dep.date_needs.get(d, 0))
            if need > 0:
                day_need[dep.department, d] = need
                need_days.append(d)
        serving = tuple(e for e in by_department[dep.department] if free[e.key] & set(need_days))
        if len(serving) > 1:
            fair[dep.department] = (serving, tuple(need_days))

    conflicts = []
    for person, experts in persons.items():
        clash = sorted(d for d in in_horizon if sum(1 for e in experts if d in fixed_on[e.key]) > 1)
        if clash:
            conflicts.append(Reason(ReasonKind.OTHER_SITE, expert=experts[0].name or person, dates=tuple(clash)))

    return _Static(
        problem=problem,
        days=days,
        weeks=dict(weeks),
        fixed_on=fixed_on,
        fixed_off=fixed_off,
        could=could,
        free=free,
        required=required,
        cap=cap,
        mates=mates,
        travel_ok=travel_ok,
        demands=demands,
        by_department={k: tuple(v) for k, v in by_department.items()},
        week_need=week_need,
        day_need=day_need,
        fair=fair,
        conflicts=conflicts,
    )


def _travel_days(st: _Static, e: Expert, on: set[dt.date] | frozenset[dt.date]) -> list[dt.date]:
    """The travel days a plan implies for one expert (the model's ``t`` at its minimum)."""
    if not e.needs_travel:
        return []
    days = st.days
    out = []
    for i, d in enumerate(days):
        if d in on or d not in st.travel_ok[e.key]:
            continue
        before = i > 0 and days[i - 1] in on
        after = i + 1 < len(days) and days[i + 1] in on
        if before or after:
            out.append(d)
    return out


# ----------------------------------------------------------------------------------------
# Measuring a plan: shortfalls with their reasons, and the objective's terms


@dataclass
class _Measure:
    shortfalls: list[Shortfall]
    travel: dict[str, list[dt.date]]
    demand_missing: int
    commitment_missing: int
    travel_days: int
    fairness_spread: int
    spread_sum: int
    changes: int

    @property
    def objective(self) -> int:
        return (
            W_DEMAND * self.demand_missing
            + W_COMMITMENT * self.commitment_missing
            + W_TRAVEL * self.travel_days
            + W_FAIRNESS * self.spread_sum
            + W_CHANGE * self.changes
        )


def _why(
    st: _Static,
    e: Expert,
    d: dt.date,
    onsite: Mapping[str, set[dt.date]],
    counts: Mapping[tuple[str, dt.date], int],
) -> tuple[ReasonKind, int | None] | None:
    """Why an expert is not on site on a day, most fundamental reason first."""
    if d < e.start or d > e.end:
        return ReasonKind.OUTSIDE_WINDOW, None
    if d not in st.problem.working_days and d not in st.fixed_on[e.key]:
        return ReasonKind.HOLIDAY, None
    if d.weekday() in e.blocked_weekdays:
        return ReasonKind.BLOCKED, d.weekday()
    if d in e.leave:
        return ReasonKind.LEAVE, None
    if d in st.fixed_off[e.key]:
        return ReasonKind.FIXED_OFF, None
    if any(d in onsite[m.key] for m in st.mates[e.key]):
        return ReasonKind.OTHER_SITE, None
    monday = _monday(d)
    if counts.get((e.key, monday), 0) >= st.required[e.key, monday]:
        return ReasonKind.COMMITMENT, None
    if e.needs_travel:
        return ReasonKind.TRAVEL, None
    return None


def _expert_reasons(
    st: _Static,
    experts: Iterable[Expert],
    dates: Sequence[dt.date],
    onsite: Mapping[str, set[dt.date]],
    counts: Mapping[tuple[str, dt.date], int],
    skip: frozenset[ReasonKind] = frozenset(),
) -> list[Reason]:
    """One reason per expert, kind (and weekday) for the dates the expert is not on site."""
    reasons = []
    for e in experts:
        grouped: dict[tuple[ReasonKind, int | None], list[dt.date]] = {}
        for d in dates:
            if d in onsite[e.key]:
                continue
            why = _why(st, e, d, onsite, counts)
            if why is not None and why[0] not in skip:
                grouped.setdefault(why, []).append(d)
        for (kind, weekday), ds in grouped.items():
            reasons.append(Reason(kind, expert=e.name, dates=tuple(ds), weekday=weekday))
    return reasons


def _measure(st: _Static, plan: Mapping[str, Iterable[dt.date]]) -> _Measure:
    problem = st.problem
    workdays = problem.working_days
    onsite: dict[str, set[dt.date]] = {e.key: set(plan.get(e.key, ())) for e in problem.experts}
    counts: dict[tuple[str, dt.date], int] = defaultdict(int)
    for e in problem.experts:
        for d in onsite[e.key]:
            counts[e.key, _monday(d)] += 1
    shortfalls: list[Shortfall] = []
    demand_missing = 0

    for (department, monday), need in st.week_need.items():
        experts = st.by_department.get(department, ())
        have = sum(counts.get((e.key, monday), 0) for e in experts)
        if have >= need:
            continue
        demand_missing += need - have
        week = st.weeks[monday]
        working = [d for d in week if d in workdays]
        reasons: list[Reason] = []
        holidays = tuple(d for d in week if d.weekday() < 5 and d not in workdays)
        if holidays:
            reasons.append(Reason(ReasonKind.HOLIDAY, dates=holidays))
        if not experts:
            reasons.append(Reason(ReasonKind.NO_EXPERTS))
        else:
            committed = sum(st.required[e.key, monday] for e in experts)
            if committed < need:
                reasons.append(Reason(ReasonKind.CAPACITY, committed=committed, needed=need))
            reasons += _expert_reasons(st, experts, working, onsite, counts)
        shortfalls.append(
            Shortfall(
                ShortfallKind.WEEK,
                department=department,
                label=st.demands[department].label,
                week=monday,
                dates=tuple(working),
                missing=need - have,
                reasons=tuple(reasons),
            )
        )

    for (department, d), need in st.day_need.items():
        experts = st.by_department.get(department, ())
        have = sum(1 for e in experts if d in onsite[e.key])
        if have >= need:
            continue
        demand_missing += need - have
        reasons = []
        if d not in workdays:
            reasons.append(Reason(ReasonKind.HOLIDAY, dates=(d,)))
        if not experts:
            reasons.append(Reason(ReasonKind.NO_EXPERTS))
        reasons += _expert_reasons(st, experts, (d,), onsite, counts, skip=frozenset({ReasonKind.HOLIDAY}))
        demand = st.demands[department]
        shortfalls.append(
            Shortfall(
                ShortfallKind.DAY,
                department=department,
                label=demand.label,
                week=_monday(d),
                dates=(d,),
                missing=need - have,
                reasons=tuple(reasons),
                need_label=demand.need_label,
            )
        )

    commitment_missing = 0
    for e in problem.experts:
        for monday, week in st.weeks.items():
            required = st.required[e.key, monday]
            have = counts.get((e.key, monday), 0)
            if have >= required:
                continue
            commitment_missing += required - have
            candidates = [d for d in week if d in st.could[e.key]]
            shortfalls.append(
                Shortfall(
                    ShortfallKind.COMMITMENT,
                    department=e.department if e.department in st.demands else "",
                    label=e.name,
                    week=monday,
                    dates=tuple(candidates),
                    missing=required - have,
                    reasons=tuple(_expert_reasons(st, (e,), candidates, onsite, counts)),
                    expert=e.key,
                )
            )

    travel = {e.key: _travel_days(st, e, onsite[e.key]) for e in problem.experts if e.needs_travel}
    spreads = []
    for experts, need_days in st.fair.values():
        loads = [sum(1 for d in need_days if d in onsite[e.key]) for e in experts]
        spreads.append(max(loads) - min(loads))
    changes = 0
    horizon = set(st.days)
    for e in problem.experts:
        previous = e.previous & horizon
        if previous:
            changes += len(onsite[e.key] ^ previous)

    order = {ShortfallKind.DAY: 0, ShortfallKind.WEEK: 1, ShortfallKind.COMMITMENT: 2}
    shortfalls.sort(key=lambda s: (s.week, order[s.kind], s.department, s.dates, s.label))
    return _Measure(
        shortfalls=shortfalls,
        travel=travel,
        demand_missing=demand_missing,
        commitment_missing=commitment_missing,
        travel_days=sum(len(t) for t in travel.values()),
        fairness_spread=max(spreads, default=0),
        spread_sum=sum(spreads),
        changes=changes,
    )


def _solution(
    status: str,
    st: _Static,
    plan: Mapping[str, Iterable[dt.date]],
    *,
    objective: float | None,
    bound: float,
    started: float,
    first: float | None,
) -> Solution:
    m = _measure(st, plan)
    return Solution(
        status=status,
        onsite={e.key: sorted(plan.get(e.key, ())) for e in st.problem.experts},
        travel={e.key: m.travel.get(e.key, []) for e in st.problem.experts},
        shortfalls=m.shortfalls,
        objective=float(m.objective if objective is None else objective),
        bound=bound,
        wall_time=time.perf_counter() - started,
        fairness_spread=m.fairness_spread,
        travel_days=m.travel_days,
        demand_missing=m.demand_missing,
        commitment_missing=m.commitment_missing,
        first_solution_time=first,
        changes=m.changes,
        fairness_spread_sum=m.spread_sum,
    )


def _infeasible(status: str, st: _Static, started: float) -> Solution:
    return Solution(
        status=status,
        onsite={},
        travel={},
        shortfalls=[],
        objective=0.0,
        bound=0.0,
        wall_time=time.perf_counter() - started,
        fairness_spread=0,
        travel_days=0,
        demand_missing=0,
        commitment_missing=0,
        conflicts=list(st.conflicts),
    )


def demand_total(problem: Problem) -> int:
    """Expert-days of demand over the horizon (week minimums as scaled, plus day needs)."""
    st = _static(problem)
    return sum(st.week_need.values()) + sum(st.day_need.values())


def committed_total(problem: Problem) -> int:
    """Expert-days the experts commit over the horizon (capped by the days they could be on site)."""
    return sum(_static(problem).required.values())


# ----------------------------------------------------------------------------------------
# Stored form of shortfalls (a roster run keeps them as JSON)


def shortfall_to_json(s: Shortfall) -> dict[str, Any]:
    return {
        "kind": s.kind.value,
        "department": s.department,
        "label": s.label,
        "week": s.week.isoformat(),
        "dates": [d.isoformat() for d in s.dates],
        "missing": s.missing,
        "expert": s.expert,
        "need_label": s.need_label,
        "reasons": [
            {
                "kind": r.kind.value,
                "expert": r.expert,
                "dates": [d.isoformat() for d in r.dates],
                "weekday": r.weekday,
                "committed": r.committed,
                "needed": r.needed,
            }
            for r in s.reasons
        ],
    }


def shortfall_from_json(data: dict[str, Any]) -> Shortfall:
    return Shortfall(
        kind=ShortfallKind(data["kind"]),
        department=data["department"],
        label=data["label"],
        week=dt.date.fromisoformat(data["week"]),
        dates=tuple(dt.date.fromisoformat(d) for d in data["dates"]),
        missing=data["missing"],
        expert=data.get("expert", ""),
        need_label=data.get("need_label", ""),
        reasons=tuple(
            Reason(
                kind=ReasonKind(r["kind"]),
                expert=r["expert"],
                dates=tuple(dt.date.fromisoformat(d) for d in r["dates"]),
                weekday=r["weekday"],
                committed=r["committed"],
                needed=r["needed"],
            )
            for r in data["reasons"]
        ),
    )


# ----------------------------------------------------------------------------------------
# CP-SAT


def solve(problem: Problem) -> Solution:
    """Plan the horizon with CP-SAT (see the module docstring for the model)."""
    # Imported here: loading OR-Tools takes about two seconds, which every web process and command
    # would otherwise pay at start-up although only an optimisation needs it.
    from ortools.sat.python import cp_model

    class _FirstSolution(cp_model.CpSolverSolutionCallback):
        def __init__(self, started: float) -> None:
            super().__init__()
            self.started = started
            self.first: float | None = None

        def on_solution_callback(self) -> None:
            if self.first is None:
                self.first = time.perf_counter() - self.started

    started = time.perf_counter()
    st = _static(problem)
    if st.conflicts:
        return _infeasible("infeasible", st, started)
    days = st.days
    model = cp_model.CpModel()

    x: dict[tuple[str, dt.date], cp_model.IntVar] = {}
    for e in problem.experts:
        for d in sorted(st.free[e.key]):
            v = model.new_bool_var("")
            x[e.key, d] = v
            if d in st.fixed_on[e.key]:
                model.add(v == 1)

    def on(key: str, d: dt.date) -> cp_model.LinearExpr | int:
        return x.get((key, d), 0)

    penalties: list[tuple[int, cp_model.LinearExpr | int]] = []

    persons: dict[str, list[Expert]] = defaultdict(list)
    for e in problem.experts:
        persons[e.person].append(e)
    for group in persons.values():
        if len(group) > 1:
            for d in days:
                present = [x[e.key, d] for e in group if (e.key, d) in x]
                if len(present) > 1:
                    model.add(sum(present) <= 1)

    for e in problem.experts:
        if not e.needs_travel:
            continue
        person = [e, *st.mates[e.key]]
        for i, d in enumerate(days):
            here = on(e.key, d)
            before = (days[i - 1], on(e.key, days[i - 1])) if i > 0 and (e.key, days[i - 1]) in x else None
            after = (days[i + 1], on(e.key, days[i + 1])) if i + 1 < len(days) and (e.key, days[i + 1]) in x else None
            if before is None and after is None:
                continue
            if d in st.travel_ok[e.key]:
                t = model.new_bool_var("")
                for _day, next_to in (b for b in (before, after) if b is not None):
                    model.add(t >= next_to - here)
                model.add(t + sum(on(m.key, d) for m in person) <= 1)
                penalties.append((W_TRAVEL, t))
            else:
                # No travel possible that day, so no run may begin or end next to it; the rule
                # gives way to a day fixed on site so that fixed days never become impossible.
                for day, next_to in (b for b in (before, after) if b is not None):
                    if day not in st.fixed_on[e.key]:
                        model.add(next_to <= here)

    for e in problem.experts:
        for monday, week in st.weeks.items():
            present = [x[e.key, d] for d in week if (e.key, d) in x]
            required = st.required[e.key, monday]
            if present:
                model.add(sum(present) <= st.cap[e.key, monday])
            if required > 0:
                short = model.new_int_var(0, required, "")
                model.add(sum(present) + short >= required)
                penalties.append((W_COMMITMENT, short))

    for (department, monday), need in st.week_need.items():
        present = [
            x[e.key, d] for e in st.by_department.get(department, ()) for d in st.weeks[monday] if (e.key, d) in x
        ]
        short = model.new_int_var(0, need, "")
        model.add(sum(present) + short >= need)
        penalties.append((W_DEMAND, short))
    for (department, d), need in st.day_need.items():
        present = [x[e.key, d] for e in st.by_department.get(department, ()) if (e.key, d) in x]
        short = model.new_int_var(0, need, "")
        model.add(sum(present) + short >= need)
        penalties.append((W_DEMAND, short))

    for serving, need_days in st.fair.values():
        most = model.new_int_var(0, len(need_days), "")
        least = model.new_int_var(0, len(need_days), "")
        for e in serving:
            load = sum(on(e.key, d) for d in need_days)
            model.add(most >= load)
            model.add(least <= load)
        penalties.append((W_FAIRNESS, most - least))

    horizon = set(days)
    for e in problem.experts:
        previous = e.previous & horizon
        if not previous:
            continue
        for d in days:
            if (e.key, d) in x:
                v = x[e.key, d]
                penalties.append((W_CHANGE, 1 - v if d in previous else v))
            elif d in previous:
                penalties.append((W_CHANGE, 1))

    # Starting from a plan that keeps every hard rule gives the solver a first roster at once, and
    # no worse than the greedy one: on 200 experts it otherwise spends its first seconds on rosters
    # far worse than greedy (see benchmarks/bench_roster.py).
    start = _greedy_plan(st, prefer_previous=True)
    for (key, d), v in x.items():
        model.add_hint(v, d in start[key])

    model.minimize(sum(w * term for w, term in penalties))

    solver = cp_model.CpSolver()
    solver.parameters.num_workers = problem.workers
    solver.parameters.max_time_in_seconds = problem.time_limit
    callback = _FirstSolution(started)
    status = solver.solve(model, callback)
    if status == cp_model.MODEL_INVALID:
        raise RuntimeError(f"CP-SAT rejected the roster model: {model.validate()}")
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return _infeasible(solver.status_name(status).lower(), st, started)
    plan = {e.key: [d for d in sorted(st.free[e.key]) if solver.boolean_value(x[e.key, d])] for e in problem.experts}
    return _solution(
        solver.status_name(status).lower(),
        st,
        plan,
        objective=solver.objective_value,
        bound=solver.best_objective_bound,
        started=started,
        first=callback.first,
    )


# ----------------------------------------------------------------------------------------
# Greedy baseline


def greedy(problem: Problem) -> Solution:
    """A baseline planner for comparison: each expert in turn takes their earliest available days.

    In the order of ``problem.experts``, each expert keeps their fixed days and then takes the
    earliest free days of each week up to the commitment, skipping days the same person is already
    on site or travelling for another assignment, and (when travel is needed) days whose travel day
    before or after would not be free. It ignores demand, fairness and the previous plan; its result
    is measured exactly like the solver's.
    """
    started = time.perf_counter()
    st = _static(problem)
    if st.conflicts:
        return _infeasible("infeasible", st, started)
    plan = _greedy_plan(st, prefer_previous=False)
    return _solution("greedy", st, plan, objective=None, bound=0.0, started=started, first=None)


def _greedy_plan(st: _Static, *, prefer_previous: bool) -> dict[str, set[dt.date]]:
    """The greedy plan; with ``prefer_previous`` each expert tries their previous days first (the
    solver's starting point)."""
    problem = st.problem
    index = {d: i for i, d in enumerate(st.days)}
    busy: dict[str, set[dt.date]] = defaultdict(set)  # person -> on-site days (any assignment)
    travelling: dict[str, set[dt.date]] = {}  # expert key -> travel days
    for e in problem.experts:
        busy[e.person] |= st.fixed_on[e.key]
        travelling[e.key] = set(_travel_days(st, e, st.fixed_on[e.key]))

    def can_travel(e: Expert, d: dt.date) -> bool:
        return d in st.travel_ok[e.key] and d not in busy[e.person]

    def mate_travels(e: Expert, d: dt.date) -> bool:
        return any(d in travelling[m.key] for m in st.mates[e.key])

    plan: dict[str, set[dt.date]] = {}
    for e in problem.experts:
        on = set(st.fixed_on[e.key])
        for monday, week in st.weeks.items():
            have = sum(1 for d in week if d in on)
            if prefer_previous:
                week = sorted(week, key=lambda d: d not in e.previous)
            for d in week:
                if have >= st.required[e.key, monday]:
                    break
                if d in on or d not in st.free[e.key] or d in busy[e.person] or mate_travels(e, d):
                    continue
                if e.needs_travel:
                    i = index[d]
                    neighbours = [st.days[j] for j in (i - 1, i + 1) if 0 <= j < len(st.days)]
                    if not all(n in on or can_travel(e, n) for n in neighbours):
                        continue
                on.add(d)
                have += 1
        plan[e.key] = on
        busy[e.person] |= on
        travelling[e.key] = set(_travel_days(st, e, on))
    return plan
