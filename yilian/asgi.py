from __future__ import annotations

import gc
import importlib
import os
import warnings

from django.conf import settings
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "yilian.settings")
# WhiteNoise hands static files to Django as synchronous iterators, which Django's ASGI
# handler reads in a thread and warns about on every file. That is fine for our small
# vendored assets; a production proxy serves /static/ itself (docs/operations.md).
warnings.filterwarnings("ignore", message="StreamingHttpResponse must consume synchronous iterators")
application = get_asgi_application()

# What start-up builds (settings, apps, models, the URL patterns and the views behind them) lives as
# long as the process. Load the URL patterns now instead of at the first request, then move all of
# it out of the cyclic garbage collector's sight: otherwise every full collection walks those
# ~180,000 objects again, about 0.1 s during which no request moves (docs/benchmarks.md).
importlib.import_module(settings.ROOT_URLCONF)
gc.freeze()
