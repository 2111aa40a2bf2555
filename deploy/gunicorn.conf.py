"""gunicorn settings for a web machine (``gunicorn -c deploy/gunicorn.conf.py coaching.wsgi``).

Every figure can be changed through the environment; docs/deploy.md says what each one scales.
Each thread holds at most one PostgreSQL connection (DB_CONN_MAX_AGE keeps it between requests), so
one machine opens up to WEB_CONCURRENCY × WEB_THREADS connections.
"""

import multiprocessing
import os

bind = os.getenv("WEB_BIND", "0.0.0.0:8000")
workers = int(os.getenv("WEB_CONCURRENCY", str(min(2 * multiprocessing.cpu_count() + 1, 8))))
# Threads: a request mostly waits on PostgreSQL, and a CSV download streams for a while: threads keep
# the other requests moving meanwhile. (For Server-Sent Events, run the ASGI entry point instead:
# ``-k uvicorn.workers.UvicornWorker coaching.asgi:application``, see docs/deploy.md.)
worker_class = os.getenv("WEB_WORKER_CLASS", "gthread")
threads = int(os.getenv("WEB_THREADS", "4"))
# A request that takes longer than this (not a streamed download: gthread only times out a silent worker)
# gets its worker restarted.
timeout = int(os.getenv("WEB_TIMEOUT", "120"))
graceful_timeout = int(os.getenv("WEB_GRACEFUL_TIMEOUT", "30"))
keepalive = 5
# Recycle workers now and then: a slow leak (a library's, a big PDF's fragments) never grows unbounded.
max_requests = int(os.getenv("WEB_MAX_REQUESTS", "5000"))
max_requests_jitter = max_requests // 10
accesslog = "-"
errorlog = "-"
loglevel = os.getenv("WEB_LOG_LEVEL", "info")
# Behind a proxy or load balancer: trust its X-Forwarded-* headers (set SECURE_PROXY_SSL_HEADER=true as well).
forwarded_allow_ips = os.getenv("FORWARDED_ALLOW_IPS", "127.0.0.1")
worker_tmp_dir = os.getenv("WEB_WORKER_TMP_DIR", "/dev/shm" if os.path.isdir("/dev/shm") else None)
