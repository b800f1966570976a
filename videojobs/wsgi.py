"""
WSGI config for videojobs project.

It exposes the WSGI callable as a module-level variable named ``application``.

For more information on this file, see
https://docs.djangoproject.com/en/5.2/howto/deployment/wsgi/
"""

import os

from django.core.wsgi import get_wsgi_application

from videojobs.limits import raise_open_files_limit

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "videojobs.settings")
raise_open_files_limit()  # each streaming download holds files open: up to the hard limit, not the soft one

application = get_wsgi_application()
