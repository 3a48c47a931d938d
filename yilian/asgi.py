from __future__ import annotations

import os
import warnings

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "yilian.settings")
# WhiteNoise hands static files to Django as synchronous iterators, which Django's ASGI
# handler reads in a thread and warns about on every file. That is fine for our small
# vendored assets; a production proxy serves /static/ itself (docs/operations.md).
warnings.filterwarnings("ignore", message="StreamingHttpResponse must consume synchronous iterators")
application = get_asgi_application()
