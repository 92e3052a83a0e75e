"""The agenda's time grid: where visits and free cells sit, navigation by fragments, booking from a
free cell, and moving a visit to another cell."""
from __future__ import annotations

import datetime as dt
import re

from conftest import HX, db_snapshot, login_as, make_appointment, make_patient, make_user, text_of
from webapp.i18n import local_to_utc, utc_to_local
from webapp.models import Appointment, AuditEvent, Message, Patient, utcnow

PARIS = "Europe/Paris"
TOMORROW = dt.date(2036, 6, 11)     # the day after the frozen clock's, a Wednesday


def at(day, hour, minute=0):
    return local_to_utc(dt.datetime.combine(day, dt.time(hour, minute)), PARIS)


def block(html: str, appt) -> str:
    """The opening tag of the visit's block in the grid."""
    found = re.search(rf'<a id="appt-{appt.id}" class="([^"]*)"', html)
    assert found, f"appt-{appt.id} is not on the grid"
    return found.group(1)


def free_cells(html: str) -> list[str]:
    return re.findall(r'<a class="free [^"]*" href="([^"]*)"', html)


def test_a_visit_at_10_15_for_30_minutes_takes_the_rows_of_10_15_to_10_45(client):
    me = login_as(client, "practitioner")
    appt = make_appointment(practitioner=me, starts_at=at(TOMORROW, 10, 15), duration_minutes=30)
    html = client.get(f"/agenda/?date={TOMORROW}", headers=HX).get_data(as_text=True)
    # The grid opens at 08:00; rows are 5 minutes: 10:15 is row 28 and 30 minutes six rows.
    assert block(html, appt).split()[1:3] == ["r28", "s6"]
    assert '<span class="r25 s12">10:00</span>' in html
    # The cells it covers are not offered; those beside it are.
    cells = free_cells(html)
    assert not any("time=10:15" in c or "time=10:30" in c for c in cells)
    assert any("time=10:00" in c for c in cells) and any("time=10:45" in c for c in cells)


def test_daylight_saving_sunday_places_visits_at_their_wall_clock_time(client):
    """30 March 2036, Paris: 02:00 becomes 03:00. A visit at 10:15 that morning is at 08:15 UTC,
    and one from 01:30 for 90 minutes ends at 04:00 on the wall clock."""
    me = login_as(client, "practitioner")
    sunday = dt.date(2036, 3, 30)
    late = make_appointment(practitioner=me, starts_at=at(sunday, 10, 15), duration_minutes=30)
    assert late.starts_at == dt.datetime(2036, 3, 30, 8, 15)
    night = make_appointment(practitioner=me, starts_at=at(sunday, 1, 30), duration_minutes=90)
    assert night.starts_at == dt.datetime(2036, 3, 30, 0, 30)
    for view in ("day", "week"):
        html = client.get(f"/agenda/?view={view}&date={sunday}", headers=HX).get_data(as_text=True)
        # The grid now opens at 01:00: 10:15 is row 112, and 01:30-04:00 thirty rows of wall clock.
        assert block(html, late).split()[1:3] == ["r112", "s6"]
        assert block(html, night).split()[1:3] == ["r7", "s30"]
        assert re.search(rf'id="appt-{late.id}".*?<time[^>]*>10:15</time>', html, re.S)
        assert re.search(rf'id="appt-{night.id}".*?<time[^>]*>01:30</time>', html, re.S)


def test_overlapping_visits_share_their_column_in_lanes(client):
    me = login_as(client, "practitioner")
    first = make_appointment(practitioner=me, starts_at=at(TOMORROW, 9), duration_minutes=30)
    second = make_appointment(practitioner=me, starts_at=at(TOMORROW, 9, 15), duration_minutes=30)
    alone = make_appointment(practitioner=me, starts_at=at(TOMORROW, 14), duration_minutes=30)
    html = client.get(f"/agenda/?date={TOMORROW}", headers=HX).get_data(as_text=True)
    assert 'class="tg-col lanes-2' in html
    assert block(html, first).split()[3:5] == ["l0", "w1"]
    assert block(html, second).split()[3:5] == ["l1", "w1"]
    assert block(html, alone).split()[3:5] == ["l0", "w2"]      # alone: the whole width


def test_cancelled_visits_stay_readable_and_free_their_time(client):
    me = login_as(client, "practitioner")
    gone = make_appointment(practitioner=me, starts_at=at(TOMORROW, 11), status="cancelled",
                            patient=make_patient(last_name="Annulée"))
    response = client.get(f"/agenda/?date={TOMORROW}", headers=HX)
    html = response.get_data(as_text=True)
    assert "status-cancelled" in block(html, gone)
    assert "Annulée" in text_of(response) and "Cancelled" in text_of(response)
    assert any("time=11:00" in c for c in free_cells(html))


def test_the_current_time_and_today_are_marked_on_the_week(client):
    login_as(client, "practitioner")
    html = client.get("/agenda/?view=week", headers=HX).get_data(as_text=True)
    # 10:00 in Paris (the frozen clock): row 25 of a grid opening at 08:00, in Tuesday's column only.
    assert html.count('class="tg-now') == 1 and '<span class="tg-now r25"' in html
    assert html.count('class="tg-title is-today"') == 1 and 'aria-current="date"' in html
    # Past cells are not offered; today's later ones are.
    cells = free_cells(html)
    assert not any("date=2036-06-10&amp;time=09:45" in c for c in cells)
    assert any("date=2036-06-10&amp;time=10:15" in c for c in cells)


def test_a_secretary_sees_the_practitioners_day_side_by_side(client):
    login_as(client, "secretary")
    aa, bb = make_user("practitioner", name="Dr Aa"), make_user("practitioner", name="Dr Bb")
    of_aa = make_appointment(practitioner=aa, starts_at=at(TOMORROW, 9))
    of_bb = make_appointment(practitioner=bb, starts_at=at(TOMORROW, 9))
    html = client.get(f"/agenda/?date={TOMORROW}", headers=HX).get_data(as_text=True)
    titles = re.findall(r'<h2 id="col-\d+" class="tg-title">\s*([^<]*?)\s*</h2>', html)
    assert titles == ["Dr Aa", "Dr Bb"]
    columns = html.split('class="tg-col')
    assert f"appt-{of_aa.id}" in columns[1] and f"appt-{of_bb.id}" in columns[2]
    # A free cell books with its own column's practitioner.
    assert f"practitioner={bb.id}" in re.findall(r'<a class="free [^"]*" href="([^"]*)"', columns[2])[0]


def test_a_practitioner_sees_only_their_own_column(client):
    login_as(client, "practitioner")
    make_user("practitioner", name="Dr Autre")
    html = client.get(f"/agenda/?date={TOMORROW}&practitioner=all", headers=HX).get_data(as_text=True)
    assert 'class="tg cols-1' in html and "Dr Autre" not in html


def test_navigation_inside_the_agenda_swaps_the_agenda_only(client):
    """Previous, Today, Next, Day and Week are htmx requests for the agenda fragment (never a boosted
    whole page nested inside it), and the address follows."""
    login_as(client, "practitioner")
    page = client.get("/agenda/?view=week").get_data(as_text=True)
    toolbar = page.split('<div class="tg')[0].split('id="agenda"')[1]
    links = re.findall(r"<a [^>]*>", toolbar.split('<div class="actions">')[0])
    assert len(links) == 5
    for link in links:
        assert 'hx-get="/agenda/?' in link and 'hx-target="#agenda"' in link and 'hx-push-url="true"' in link
        url = re.search(r'hx-get="([^"]*)"', link).group(1).replace("&amp;", "&")
        answer = client.get(url, headers=HX).get_data(as_text=True)
        assert answer.lstrip().startswith("{% set") is False
        assert "<header" not in answer and "<html" not in answer
        assert answer.count('id="agenda"') == 1 and '<h1 class="range">' in answer


def test_a_free_cell_opens_the_booking_form_filled_in(client):
    me = login_as(client, "practitioner")
    make_appointment(practitioner=me, starts_at=at(TOMORROW, 10, 15), duration_minutes=30)
    html = client.get(f"/agenda/?date={TOMORROW}", headers=HX).get_data(as_text=True)
    url = next(c for c in free_cells(html) if "time=10:45" in c).replace("&amp;", "&")
    assert re.search(rf'href="{re.escape(url.replace("&", "&amp;"))}" data-slot="[^"]*" hx-get=', html)
    form = client.get(url, headers=HX)
    body = form.get_data(as_text=True)
    assert form.status_code == 200 and "<header" not in body
    assert re.search(r'id="time"[^>]*value="10:45"', body)
    assert re.search(rf'id="date"[^>]*value="{TOMORROW}"', body)
    assert re.search(rf'<option selected value="{me.id}">|<option value="{me.id}" selected', body)


def test_move_mode_offers_the_free_cells_as_targets(client):
    me = login_as(client, "practitioner")
    appt = make_appointment(practitioner=me, starts_at=at(TOMORROW, 9))
    html = client.get(f"/agenda/?date={TOMORROW}&move={appt.id}", headers=HX).get_data(as_text=True)
    assert f'action="/agenda/{appt.id}/move"' in html
    assert f'name="slot" value="{me.id}|{TOMORROW}|11:00"' in html
    assert "is-moved" in block(html, appt)
    # Another day stays in the move.
    assert re.search(rf'href="[^"]*move={appt.id}[^"]*" hx-get="[^"]*" [^>]*rel="next"', html)
    detail = client.get(f"/agenda/{appt.id}", headers=HX).get_data(as_text=True)
    assert f"move={appt.id}" in detail      # the panel's way into it


def test_moving_to_a_free_cell_reschedules_and_tells_the_patient(client):
    me = login_as(client, "practitioner")
    appt = make_appointment(practitioner=me, starts_at=at(TOMORROW, 9), duration_minutes=20)
    response = client.post(f"/agenda/{appt.id}/move", data={"slot": f"{me.id}|{TOMORROW}|11:00"}, headers=HX)
    assert response.status_code == 200
    assert "agenda-changed" in response.headers.get("HX-Trigger", "")
    moved = Appointment.get_by_id(appt.id)
    assert moved.starts_at == at(TOMORROW, 11) and moved.duration_minutes == 20
    assert moved.link_version == appt.link_version + 1 and moved.motive == appt.motive
    moves = AuditEvent.select().where(AuditEvent.action == "appointment.moved", AuditEvent.appointment == appt)
    assert moves.count() == 1
    assert Message.select().where(Message.appointment == appt, Message.kind == "moved").count() >= 1


def test_moving_without_javascript_redirects_to_the_visit(client):
    me = login_as(client, "practitioner")
    appt = make_appointment(practitioner=me, starts_at=at(TOMORROW, 9))
    response = client.post(f"/agenda/{appt.id}/move", data={"slot": f"{me.id}|{TOMORROW}|12:00"})
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/agenda/{appt.id}")


def test_a_bad_target_is_refused_and_nothing_changes(client):
    me = login_as(client, "practitioner")
    colleague = make_user("practitioner")
    appt = make_appointment(practitioner=me, starts_at=at(TOMORROW, 9))
    today = utc_to_local(utcnow(), PARIS).date()
    before = db_snapshot()
    for slot, status, says in ((f"{me.id}|{today}|07:00", 422, "This time has already passed."),
                               (f"{colleague.id}|{TOMORROW}|11:00", 422, "Not a valid choice"),
                               (f"{me.id}|2036-13-45|11:00", 422, "Enter a date"),
                               ("nonsense", 422, "Enter the date.")):
        response = client.post(f"/agenda/{appt.id}/move", data={"slot": slot}, headers=HX)
        assert response.status_code == status, slot
        assert says in text_of(response) and 'id="appointment-form"' in response.get_data(as_text=True)
    assert db_snapshot() == before


def test_moving_onto_another_visit_warns_first(client):
    me = login_as(client, "practitioner")
    appt = make_appointment(practitioner=me, starts_at=at(TOMORROW, 9))
    make_appointment(practitioner=me, starts_at=at(TOMORROW, 11), patient=make_patient(last_name="Occupé"))
    before = db_snapshot()
    response = client.post(f"/agenda/{appt.id}/move", data={"slot": f"{me.id}|{TOMORROW}|11:00"}, headers=HX)
    assert response.status_code == 409 and "Occupé" in text_of(response)
    assert 'name="confirm_overlap"' in response.get_data(as_text=True)
    assert db_snapshot() == before
    again = client.post(f"/agenda/{appt.id}/move", headers=HX,
                        data={"slot": f"{me.id}|{TOMORROW}|11:00", "confirm_overlap": "y"})
    assert again.status_code == 200 and Appointment.get_by_id(appt.id).starts_at == at(TOMORROW, 11)


def test_a_cancelled_visit_cannot_be_moved(client):
    me = login_as(client, "practitioner")
    appt = make_appointment(practitioner=me, starts_at=at(TOMORROW, 9), status="cancelled")
    assert client.post(f"/agenda/{appt.id}/move", data={"slot": f"{me.id}|{TOMORROW}|11:00"}).status_code == 409


# A new patient while booking.

def test_new_patient_is_a_step_inside_the_booking_form(client):
    me = login_as(client, "practitioner")
    typed = {"patient_query": "Nouvelle", "practitioner": str(me.id), "date": str(TOMORROW), "time": "11:15",
             "duration": "30", "mode": "audio", "send_by": "email", "motive": "Renouvellement", "language": ""}
    booking = client.get(f"/agenda/new?practitioner={me.id}&date={TOMORROW}&time=11:15", headers=HX)
    assert 'formaction="/agenda/patient"' in booking.get_data(as_text=True)
    step = client.post("/agenda/patient", data={**typed, "start": "1"}, headers=HX)
    html = step.get_data(as_text=True)
    assert step.status_code == 200 and "<header" not in html and 'id="appointment-form"' in html
    assert 'name="first_name"' in html and '<input type="hidden" name="motive" value="Renouvellement">' in html
    before = db_snapshot()
    bad = client.post("/agenda/patient", data={**typed, "first_name": "Zoé", "last_name": "Nouvelle"}, headers=HX)
    assert bad.status_code == 422 and "Enter the birth date." in text_of(bad) and db_snapshot() == before
    done = client.post("/agenda/patient", headers=HX, data={
        **typed, "first_name": "Zoé", "last_name": "Nouvelle", "birth_date": "1990-02-03",
        "email": "zoe@example.org", "phone": "", "locale": ""})
    html = done.get_data(as_text=True)
    patient = Patient.get(Patient.last_name == "Nouvelle")
    assert done.status_code == 200 and 'action="/agenda/new"' in html and "<header" not in html
    assert re.search(rf'<input[^>]*value="{patient.id}"[^>]*checked', html)       # chosen
    assert re.search(r'id="time"[^>]*value="11:15"', html) and "Renouvellement" in html
    assert re.search(r'value="audio"[^>]*checked|checked[^>]*value="audio"', html)
    assert AuditEvent.select().where(AuditEvent.action == "patient.saved", AuditEvent.patient == patient).count() == 1
    # The booking then goes through with that patient.
    booked = client.post("/agenda/new", headers=HX, data={**typed, "patient_id": str(patient.id), "patient_query": ""})
    assert booked.status_code == 200
    appt = Appointment.get(Appointment.patient == patient)
    assert appt.starts_at == at(TOMORROW, 11, 15) and appt.mode == "audio" and appt.motive == "Renouvellement"


def test_back_from_the_patient_step_keeps_the_booking(client):
    me = login_as(client, "practitioner")
    chosen = make_patient()
    before = db_snapshot()
    back = client.post("/agenda/patient", headers=HX, data={
        "patient_id": str(chosen.id), "practitioner": str(me.id), "date": str(TOMORROW), "time": "09:30",
        "duration": "20", "mode": "video", "send_by": "both", "back": "1"})
    html = back.get_data(as_text=True)
    assert back.status_code == 200 and re.search(r'id="time"[^>]*value="09:30"', html)
    assert re.search(rf'<input[^>]*value="{chosen.id}"[^>]*checked', html)
    assert db_snapshot() == before


def test_a_duplicate_patient_is_offered_instead_of_a_second_record(client):
    me = login_as(client, "practitioner")
    known = make_patient(first_name="Zoé", last_name="Déjà", birth_date=dt.date(1990, 2, 3))
    typed = {"practitioner": str(me.id), "date": str(TOMORROW), "time": "09:30", "duration": "20", "mode": "video",
             "send_by": "both", "first_name": "Zoé", "last_name": "Déjà", "birth_date": "1990-02-03", "locale": ""}
    before = db_snapshot()
    warned = client.post("/agenda/patient", data=typed, headers=HX)
    assert warned.status_code == 409 and "already on file" in text_of(warned) and db_snapshot() == before
    used = client.post("/agenda/patient", data={**typed, "use": str(known.id)}, headers=HX)
    assert re.search(rf'<input[^>]*value="{known.id}"[^>]*checked', used.get_data(as_text=True))
    assert db_snapshot() == before
