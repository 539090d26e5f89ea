"""Static files as the web server serves them (gunicorn.conf.py collects them at start): hashed names,
a gzip copy of each, cached for a year; and the chart library is the small bundle."""

import re

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from tests.factories import make_user
from tests.overview.story import make_story, record


@pytest.fixture
def collected(tmp_path, settings):
    settings.STATIC_ROOT = tmp_path
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
    settings.WHITENOISE_USE_FINDERS = False
    call_command("collectstatic", interactive=False, verbosity=0)
    return tmp_path


def test_pages_link_hashed_files_served_compressed_and_cached_for_a_year(collected, db):
    client = Client()  # a new handler: its WhiteNoise reads the collected files
    html = client.get("/login/").content.decode()
    stylesheet = re.search(r'href="(/static/css/overview\.[0-9a-f]{12}\.css)"', html).group(1)
    icon = re.search(r'href="(/static/favicon\.[0-9a-f]{12}\.svg)"', html).group(1)
    plain = client.get(stylesheet)
    assert plain.status_code == 200 and "Content-Encoding" not in plain
    answer = client.get(stylesheet, HTTP_ACCEPT_ENCODING="gzip")
    assert answer["Content-Encoding"] == "gzip"
    assert int(answer["Content-Length"]) < int(plain["Content-Length"]) / 3
    assert "max-age=315360000" in answer["Cache-Control"] and "immutable" in answer["Cache-Control"]
    assert client.get(icon).status_code == 200


def test_the_overview_loads_the_basic_plotly_bundle_compressed(collected, db):
    story = make_story(make_user())
    record(story, timezone.now())
    client = Client()
    client.force_login(story.user)
    html = client.get(f"/w/{story.workspace.slug}/destinations/{story.destination.id}/").content.decode()
    bundle = re.search(r'src="(/static/vendor/plotly/plotly-basic\.min\.[0-9a-f]{12}\.js)"', html).group(1)
    answer = client.get(bundle, HTTP_ACCEPT_ENCODING="gzip")
    size = int(answer["Content-Length"])
    print(f"plotly-basic gzip: {size:,} bytes")
    assert answer["Content-Encoding"] == "gzip" and size < 500_000  # the full bundle: 4.8 MB, 1.4 MB gzip
    assert "plotly.min.js" not in html
