"""Cabinet: teleconsultation for small medical practices.

The package itself loads nothing: the relay worker (``python -m webapp.relay``) lives
in it and must not pull in Flask, peewee or the models. The web app is built by
``webapp.app.create_app`` (``wsgi.py``).
"""
__version__ = "0.1.0"
