"""The console's web application, as served by `agentops_site.server` (uvicorn workers).

Django's ASGI handler behind `admission.Admission`, which reads each body before Django
runs and keeps ingestion from crowding out the pages.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentops_site.settings")
django_application = get_asgi_application()

from agentops_site.admission import Admission  # noqa: E402 - needs settings configured

application = Admission(django_application)
