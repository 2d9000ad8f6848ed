"""The local web studio behind ``audiostyle serve`` (needs the ``web`` extra).

:func:`audiostyle_cli.web.app.create_app` builds the FastAPI app; :mod:`.jobs` queues and runs
the jobs; ``static/`` holds the page (plain HTML/CSS/JS, nothing fetched from elsewhere).
"""
