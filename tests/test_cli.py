"""Command line: init-db, create-user, demo."""
from __future__ import annotations

from conftest import make_app
from webapp.models import Appointment, Patient, Practice, User, db


def test_init_db_is_repeatable(runner):
    assert "Database ready" in runner.invoke(args=["init-db"]).output
    assert runner.invoke(args=["init-db"]).exit_code == 0


def test_init_db_names_the_practice_or_says_it_has_no_name(tmp_path):
    app = make_app(tmp_path)
    try:
        unnamed = app.test_cli_runner().invoke(args=["init-db"])
        assert unnamed.exit_code == 0 and "The practice has no name yet" in unnamed.output
        assert Practice.get().name == "Cabinet" and not Practice.get().named
        named = app.test_cli_runner().invoke(args=["init-db", "--practice-name", "Maison de santé des Lilas"])
        assert named.exit_code == 0 and "no name yet" not in named.output
        assert [p.name for p in Practice.select()] == ["Maison de santé des Lilas"]
    finally:
        db.close()


def test_create_user(runner):
    result = runner.invoke(args=["create-user", "--email", "Dr@Cabinet.example.org", "--name", "Dr Who",
                                 "--role", "practitioner", "--password", "ten chars ok"])
    assert result.exit_code == 0, result.output
    user = User.get(User.email == "Dr@cabinet.example.org")
    assert user.role == "practitioner" and user.password_hash.startswith("$argon2")
    again = runner.invoke(args=["create-user", "--email", "dr@cabinet.example.org", "--name", "X",
                                "--role", "admin", "--password", "ten chars ok"])
    assert again.exit_code != 0 and "already" in again.output
    bad = runner.invoke(args=["create-user", "--email", "nope", "--name", "X", "--role", "admin",
                              "--password", "ten chars ok"])
    assert bad.exit_code != 0
    short = runner.invoke(args=["create-user", "--email", "s@cabinet.example.org", "--name", "X", "--role", "admin",
                                "--password", "short"])
    assert short.exit_code != 0 and User.select().where(User.email == "s@cabinet.example.org").count() == 0


def test_demo(runner):
    result = runner.invoke(args=["demo"])
    assert result.exit_code == 0 and "demo-cabinet" in result.output
    assert User.select().count() == 4
    assert Patient.select().count() == 12
    assert Appointment.select().count() >= 30
    assert {u.role for u in User.select()} == {"admin", "practitioner", "secretary"}
    assert "already" in runner.invoke(args=["demo"]).output
    assert User.select().count() == 4
