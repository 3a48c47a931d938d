"""An MDT meeting as an iCalendar invitation (``METHOD:REQUEST``): one UID per meeting and a
SEQUENCE raised by every change, so that a calendar app updates the event it already holds
instead of adding a second one. The invitation names the people and the link, never a patient."""

from __future__ import annotations

from django.utils import timezone
from django.utils.translation import gettext as _
from icalendar import Calendar, Event, vCalAddress, vText

from yilian.consults.models import Meeting, Participant

_PARTSTAT = {
    Participant.Response.PENDING: "NEEDS-ACTION",
    Participant.Response.ACCEPTED: "ACCEPTED",
    Participant.Response.DECLINED: "DECLINED",
}


def _address(participant: Participant, domain: str) -> vCalAddress:
    """A stable address of no mailbox: the file goes to everyone who may open the meeting, so the
    experts' account e-mails stay out of it."""
    practitioner = participant.practitioner
    address = vCalAddress(f"urn:uuid:{practitioner.public_id}")
    address.params["cn"] = vText(practitioner.name)
    return address


def meeting_ics(meeting: Meeting, participants: list[Participant], *, url: str, host: str) -> bytes:
    domain = host.split(":")[0] or "yilian"
    cal = Calendar()
    cal.add("prodid", "-//Yilian//Teleconsultation//ZH")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "REQUEST")
    event = Event()
    event.add("uid", f"{meeting.public_id}@{domain}")
    event.add("sequence", meeting.sequence)
    event.add("dtstamp", timezone.now())
    event.add("dtstart", meeting.starts_at)
    event.add("dtend", meeting.ends_at)
    event.add("summary", _("MDT: %(title)s") % {"title": meeting.title})
    event.add("url", url)
    if meeting.meeting_url:
        event.add("location", meeting.meeting_url)
    lines = [
        _("MDT meeting %(number)s at %(host)s.") % {"number": meeting.number, "host": meeting.institution.name},
        _("Chair: %(name)s") % {"name": meeting.chair.name},
        _("Agenda and case summaries: %(url)s") % {"url": url},
    ]
    if meeting.meeting_url:
        lines.append(_("Video meeting: %(url)s") % {"url": meeting.meeting_url})
    event.add("description", "\n".join(lines))
    event.add("status", "CANCELLED" if meeting.status == Meeting.MeetingStatus.CANCELLED else "CONFIRMED")
    organizer = vCalAddress(f"mailto:noreply@{domain}")
    organizer.params["cn"] = vText(meeting.institution.name)
    event.add("organizer", organizer)
    for participant in participants:
        attendee = _address(participant, domain)
        attendee.params["role"] = vText(
            "CHAIR" if participant.practitioner_id == meeting.chair_id else "REQ-PARTICIPANT"
        )
        attendee.params["partstat"] = vText(_PARTSTAT.get(participant.response, "NEEDS-ACTION"))  # type: ignore[call-overload]
        event.add("attendee", attendee, encode=False)
    cal.add_component(event)
    return bytes(cal.to_ical())
