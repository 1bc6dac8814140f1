"""The console's web application, as served by `agentops_site.server` (uvicorn workers).

Django's WSGI application, run on a pool of threads by a2wsgi, behind
`admission.Admission`, which reads each body before any thread is taken and keeps
ingestion from crowding out the pages. WSGI rather than Django's ASGI handler: the whole
request (middleware and view) runs on one thread, where the ASGI handler hops between the
event loop and threads around every middleware that can run both ways (measured: about
40 µs more server CPU per ingested span), and a fixed pool of threads lets each keep its
database connection between requests (CONN_MAX_AGE) as it would under a WSGI server.
"""

import os

from a2wsgi import WSGIMiddleware
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentops_site.settings")
django_application = get_wsgi_application()

from django.conf import settings  # noqa: E402 - after the settings module is named

from agentops_site.admission import Admission  # noqa: E402

application = Admission(WSGIMiddleware(django_application, workers=settings.WEB_THREADS))
