"""The local web studio behind ``audiostyle serve`` (needs the ``web`` extra).

:func:`audiostyle_cli.web.app.create_app` builds the FastAPI app; :mod:`.guard` decides who may
drive it and bounds each request body; :mod:`.routes` answers the page and the job API, and
hands each request to :mod:`.studio`, which keeps the limits, the presets and the jobs;
:mod:`.uploads` stores and checks uploaded files; :mod:`.jobs` queues and runs the jobs;
:mod:`.workdir` keeps the private folder and sweeps those of killed studios; :mod:`.errors`
shapes every error as JSON; ``static/`` holds the page (plain HTML/CSS/JS, nothing fetched
from elsewhere).
"""
