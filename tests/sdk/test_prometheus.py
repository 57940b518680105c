"""The Prometheus exposition parsed by a real parser (prometheus_client's), after traffic
through the SDK: every family is typed, counters carry the right values, histograms are
cumulative with a +Inf bucket equal to their count."""

import os
import time
import urllib.request

import openai
from prometheus_client.parser import text_string_to_metric_families

BASE_URL = os.environ["GATEWAY_BASE_URL"]
ROOT = BASE_URL.removesuffix("/v1")


def scrape(accept=None):
    request = urllib.request.Request(ROOT + "/metrics/prometheus")
    if accept:
        request = urllib.request.Request(ROOT + "/metrics", headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.headers.get("content-type"), response.read().decode()


def families(text):
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_exposition_parses_and_counts_the_traffic():
    client = openai.OpenAI(base_url=BASE_URL, api_key="sk-fake-prom-test", max_retries=0)
    before = families(scrape()[1])

    def requests_for(fams, model):
        family = fams.get("llmcallgateway_requests")
        return sum(
            s.value
            for s in (family.samples if family else [])
            if s.labels.get("model") == model and s.labels.get("status_class") == "2xx"
        )

    for _ in range(3):
        client.chat.completions.create(
            model="mock/echo", messages=[{"role": "user", "content": "count me in"}]
        )
    # The recorder thread counts each call just after it is answered: poll briefly.
    deadline = time.monotonic() + 5
    while True:
        content_type, text = scrape()
        fams = families(text)
        counted = requests_for(fams, "mock/echo") - requests_for(before, "mock/echo")
        if counted >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert content_type.startswith("text/plain; version=0.0.4")
    assert counted == 3

    # Counters are exposed with _total; the parser strips it from the family name.
    assert fams["llmcallgateway_requests"].type == "counter"
    assert fams["llmcallgateway_completion_tokens"].type == "counter"
    hist = fams["llmcallgateway_request_duration_seconds"]
    assert hist.type == "histogram"
    echo = [s for s in hist.samples if s.labels.get("model") == "mock/echo"]
    buckets = [s for s in echo if s.name.endswith("_bucket")]
    counts = [s.value for s in buckets]
    assert counts == sorted(counts), "buckets are cumulative"
    inf = [s.value for s in buckets if s.labels["le"] == "+Inf"][0]
    count = [s.value for s in echo if s.name.endswith("_count")][0]
    assert inf == count >= 3
    for name, family in fams.items():
        assert name.startswith("llmcallgateway_"), name
        for sample in family.samples:
            assert set(sample.labels) <= {"provider", "model", "status_class", "error_kind", "le"}


def test_metrics_answers_prometheus_text_to_a_scraper():
    content_type, text = scrape(
        accept="application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    )
    assert content_type.startswith("text/plain")
    assert "llmcallgateway_uptime_seconds" in families(text)
