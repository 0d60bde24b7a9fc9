"""`colornet app`: colourise photos and videos in a web page served on this machine.

  catalog.py  the models the page offers, each loaded once, and the lock under which
              one request at a time runs a network
  jobs.py     background jobs (videos, model downloads): one worker, progress,
              cancelling, each job's files in its own directory
  server.py   the HTTP API and the page (Starlette, served by uvicorn): limits,
              errors as JSON, `create_app` and `serve`
  static/     the page: plain HTML, CSS and JavaScript, no build step, nothing
              fetched from elsewhere

docs/app.md documents the HTTP API. Needs the `app` extra: `pip install 'colornet-keras[app]'`.
"""
