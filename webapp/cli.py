"""Command line: init-db, create-user, demo, translate, send-due, backup, restore, purge, rotate-document-key."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
from babel.messages.pofile import read_po, write_po
from email_validator import EmailNotValidError, validate_email
from flask import current_app
from flask.cli import with_appcontext

from . import backup as backups
from . import notify, retention
from .auth import hash_password
from .db import migrate
from .demo import DEMO_PASSWORD, STAFF, load_demo
from .models import ROLES, Practice, User, db, utcnow
from .config import ConfigError
from .storage import DocumentMissing, documents, key_file, rotate


@click.command("init-db")
@click.option("--practice-name", default="", help="the practice's name, as patients read it in every message")
@with_appcontext
def init_db(practice_name):
    """Create or migrate the database."""
    applied = migrate()
    practice_name = practice_name.strip()[:200]
    with db.connection_context():
        practice = Practice.select().order_by(Practice.id).first()
        if practice is None:
            practice = Practice.create(name=practice_name or Practice.PLACEHOLDER_NAME,
                                       default_locale=current_app.config["DEFAULT_LOCALE"],
                                       link_opens_minutes_before=current_app.config["LINK_OPENS_MINUTES_BEFORE"],
                                       link_closes_minutes_after=current_app.config["LINK_CLOSES_MINUTES_AFTER"],
                                       patient_space_days=current_app.config["PATIENT_SPACE_DAYS"])
        elif practice_name:
            Practice.update(name=practice_name).where(Practice.id == practice.id).execute()
            practice.name = practice_name
    click.echo(f"Database ready (migrations applied: {applied or 'none'}).")
    if not practice.named:
        click.echo("The practice has no name yet: give it with --practice-name, or an admin will be asked for it "
                   "at sign-in (patients read it in every message).")


@click.command("create-user")
@with_appcontext
@click.option("--email", prompt=True)
@click.option("--name", prompt=True)
@click.option("--role", type=click.Choice(ROLES), prompt=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--require-second-factor/--no-require-second-factor", default=None,
              help="ask for a second factor (TOTP) from the first sign-in; default: yes for practitioners and admins")
def create_user(email, name, role, password, require_second_factor):
    """Create a staff account (admin, practitioner or secretary)."""
    if require_second_factor is None:
        require_second_factor = role in User.ROLES_WITH_SECOND_FACTOR
    try:
        email = validate_email(email, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise click.BadParameter(str(exc), param_hint="--email") from None
    if len(password) < 10:
        raise click.BadParameter("at least 10 characters", param_hint="--password")
    with db.connection_context():
        if User.by_email(email):
            raise click.ClickException(f"An account already uses {email}.")
        practice = Practice.select().order_by(Practice.id).first()
        if practice is None:
            raise click.ClickException("Run 'flask --app wsgi init-db' first.")
        User.create(practice=practice, email=email, name=name, role=role, password_hash=hash_password(password),
                    second_factor_required=require_second_factor)
    click.echo(f"Created {role} {email}" + (", who sets up a second factor at first sign-in." if
                                               require_second_factor else "."))


@click.command("demo")
@with_appcontext
@click.option("--force", is_flag=True, help="Add demo data even if the database has staff already.")
def demo(force):
    """Load a demo practice: staff, patient records, last week closed with every outcome, today and next week."""
    with db.connection_context():
        if User.select().exists() and not force:
            click.echo("Demo data already present (or real staff: then the logins below do not apply).")
        else:
            load_demo()
            click.echo("Demo practice loaded.")
    click.echo("Sign in with one of:")
    for role, _name, email, _locale in STAFF:
        click.echo(f"  {role:<13} {email}  password: {DEMO_PASSWORD}")


ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "translations"
POT = TRANSLATIONS / "messages.pot"
SOURCE_LOCALE = "en"


def pybabel(*args):
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", *args], check=True, cwd=ROOT)


@click.group("translate")
def translate():
    """Manage translations (extract, update, compile, stats, init)."""


@translate.command("extract")
def extract():
    """Collect the translatable strings into translations/messages.pot."""
    # "Translators:" comments reach the catalogue; lazy forms with a context or plural are found too.
    # Locations name the file without its line number: a translator sees where a string is used, and
    # an edit that moves lines does not rewrite every catalogue.
    pybabel("extract", "-F", "babel.cfg", "-k", "_l", "-k", "lazy_pgettext:1c,2", "-k", "lazy_ngettext:1,2",
            "-c", "Translators:", "--add-location=file", "--sort-output", "--project", "Cabinet",
            "-o", str(POT), ".")


@translate.command("update")
def update():
    """Extract, then merge new strings into every locale's messages.po."""
    extract.callback()
    pybabel("update", "-i", str(POT), "-d", str(TRANSLATIONS), "--no-fuzzy-matching", "--ignore-obsolete")
    fill_source_catalog(TRANSLATIONS / SOURCE_LOCALE / "LC_MESSAGES" / "messages.po")


def fill_source_catalog(path: Path):
    """The English catalogue mirrors the source strings, so it is complete by construction."""
    with path.open("rb") as fh:
        catalog = read_po(fh, locale=SOURCE_LOCALE)
    for message in catalog:
        if not message.id:
            continue
        if isinstance(message.id, tuple) and not all(message.string or ()):
            message.string = message.id
        elif not message.string:
            message.string = message.id
    with path.open("wb") as fh:
        write_po(fh, catalog, omit_header=False, sort_output=True, include_lineno=False)


@translate.command("compile")
def compile_():
    """Build the .mo files the app reads."""
    pybabel("compile", "-d", str(TRANSLATIONS), "--statistics")


@translate.command("init")
@click.argument("locale")
def init(locale):
    """Start a new language."""
    pybabel("init", "-i", str(POT), "-d", str(TRANSLATIONS), "-l", locale)


@translate.command("stats")
def stats():
    """How complete each language is."""
    for po in sorted(TRANSLATIONS.glob("*/LC_MESSAGES/messages.po")):
        with po.open("rb") as fh:
            catalog = read_po(fh)
        total = sum(1 for m in catalog if m.id)
        done = sum(1 for m in catalog if m.id and m.string and not m.fuzzy
                   and (all(m.string) if isinstance(m.string, tuple) else True))
        pct = 100 * done / total if total else 100
        click.echo(f"{po.parent.parent.name:<8} {done:>5}/{total:<5} {pct:5.1f}%")


@click.command("send-due")
@with_appcontext
def send_due():
    """One pass of the notification sender: queue due reminders, send due messages (for cron)."""
    with db.connection_context():
        result = notify.run_once()
    click.echo("Reminders queued: {reminders}; sent: {sent}; to retry: {retry}; failed: {failed}; "
               "not needed: {skipped}.".format(**result))


@click.command("backup")
@click.argument("dest", type=click.Path(path_type=Path))
@with_appcontext
def backup(dest):
    """Write the database, the documents and their key to one archive (0600) at DEST, a file or a folder."""
    try:
        path, manifest = backups.create(dest, current_app.config["DATABASE_URL"], documents())
    except backups.BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Backup written to {path} (schema {manifest['schema_version']}, "
               f"{manifest['counts']['appointment']} appointments, {manifest['document_files']} documents). "
               "It holds the document key: keep it as secret as the key.")


@click.command("restore")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_appcontext
def restore(archive):
    """Load a backup archive into this fresh instance (empty database, no documents)."""
    if not db.is_closed():
        db.close()
    try:
        manifest = backups.restore(archive, current_app.config["DATABASE_URL"], Path(current_app.instance_path),
                                   documents(), current_app.config.get("DOCUMENT_KEY", ""))
    except backups.BackupError as exc:
        raise click.ClickException(str(exc)) from None
    applied = migrate()
    click.echo(f"Restored the backup of {manifest['created_at']} (schema {manifest['schema_version']}, "
               f"migrations applied since: {applied or 'none'}). Restart the app.")


@click.command("purge")
@click.option("--dry-run", is_flag=True, help="Say what would be deleted; change nothing.")
@with_appcontext
def purge(dry_run):
    """Apply retention: old medical records, audit events and message texts (RETENTION_* settings)."""
    config = current_app.config
    cutoffs = retention.Cutoffs.at(utcnow(), config["RETENTION_RECORDS_YEARS"], config["RETENTION_AUDIT_DAYS"],
                                   config["RETENTION_MESSAGE_BODY_DAYS"])
    with db.connection_context():
        counts = retention.purge(cutoffs, dry_run, documents().delete)
    click.echo("Would delete (dry run, nothing changed):" if dry_run else "Deleted:")
    for kind, count in counts.items():
        click.echo(f"  {kind}: {count}")


@click.command("rotate-document-key")
@with_appcontext
def rotate_document_key():
    """Re-encrypt every document under a new key; run it again if it was interrupted."""
    configured = current_app.config.get("DOCUMENT_KEY", "")
    path = None if configured else key_file(Path(current_app.instance_path))
    try:
        rewritten = rotate(documents(), path)
    except (ConfigError, DocumentMissing) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Re-encrypted {rewritten} documents; every document reads with the new key.")
    if configured:
        click.echo("Now remove the old key(s) from DOCUMENT_KEY (keep only the first) and restart the app.")
    else:
        click.echo(f"The old key is gone from {path}. Make a new backup: older ones hold the old key.")


def init_app(app):
    for command in (init_db, create_user, demo, translate, send_due, backup, restore, purge, rotate_document_key):
        app.cli.add_command(command)
