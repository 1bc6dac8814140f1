"""gunicorn settings shared by `manage.py up`, the Docker image and the benchmarks.

    gunicorn -c python:agentops_site.gunicorn_conf agentops_site.asgi:application

Each value comes from the environment (see .env.example); the server itself is
described in `agentops_site/server.py`.
"""

import os

bind = os.environ.get("BIND", "127.0.0.1:8000").split(",")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "agentops_site.server.Worker"
# Idle keep-alive connections are closed after this many seconds.
keepalive = int(os.environ.get("KEEPALIVE_SECONDS", "5"))
# A worker whose event loop stops answering the arbiter for this long is restarted.
timeout = int(os.environ.get("WORKER_TIMEOUT_SECONDS", "60"))
graceful_timeout = 30
# Import Django once in the master: workers share its memory and answer their first
# requests without a cold start.
preload_app = True
control_socket_disable = True
accesslog = os.environ.get("ACCESS_LOG", "-") or None
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
