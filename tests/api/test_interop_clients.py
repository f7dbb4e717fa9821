"""Real FHIR clients, unmodified, against the real app served by uvicorn: the SMART Python
client (`fhirclient`) and `fhirpy` create, read, search and page."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fhirclient import client as smart_client
from fhirclient.models.observation import Observation
from fhirclient.models.patient import Patient
from fhirpy import SyncFHIRClient

from api.app import create_app
from api.settings import Settings
from tests.live_server import serve_in_thread

PATIENTS = 7
PAGE = 3  # 7 patients in pages of 3: three pages


@pytest.fixture
def base_url(migrated_url: str) -> Iterator[str]:
    """The app on a free 127.0.0.1 port, served by uvicorn in a background thread."""
    app = create_app(Settings(database_url=migrated_url, log_level="WARNING"))
    with serve_in_thread(app) as server:
        yield f"{server}/fhir"


def test_fhirclient_creates_reads_searches_and_pages(base_url: str) -> None:
    smart = smart_client.FHIRClient(settings={"app_id": "reptrend-interop", "api_base": base_url})
    # Fetches and parses our CapabilityStatement with the client's R4 models.
    smart.prepare()
    server = smart.server
    created = []
    for n in range(PATIENTS):
        body = {"resourceType": "Patient", "name": [{"family": "Smartclient", "given": [f"N{n}"]}]}
        created.append(Patient(body).create(server)["id"])

    read = Patient.read(created[0], server)
    assert (read.id, read.name[0].family) == (created[0], "Smartclient")

    search = Patient.where(struct={"family": "smartcl", "_count": str(PAGE)})
    pages = list(search.perform_iter(server))
    assert len(pages) == 3
    found = [entry.resource.id for page in pages for entry in page.entry]
    assert sorted(found) == sorted(created)

    observation = Observation(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
            "subject": {"reference": f"Patient/{created[0]}"},
            "effectiveDateTime": "2026-03-10T08:00:00Z",
        }
    )
    observation.create(server)
    query = {"subject": f"Patient/{created[0]}", "date": {"$gt": "2026-03-09"}}
    results = list(
        Observation.where(struct=query).include("subject").perform_resources_iter(server)
    )
    assert sorted(r.resource_type for r in results) == ["Observation", "Patient"]


def test_fhirpy_creates_reads_searches_and_pages(base_url: str) -> None:
    client = SyncFHIRClient(base_url)
    created = []
    for n in range(PATIENTS):
        patient = client.resource("Patient", name=[{"family": "Fhirpyperson", "given": [f"N{n}"]}])
        patient.save()
        created.append(patient.id)

    read = client.reference("Patient", created[0]).to_resource()
    assert read["name"][0]["family"] == "Fhirpyperson"

    search = client.resources("Patient").search(family="fhirpy").limit(PAGE)
    first_page = search.fetch()
    assert len(first_page) == PAGE
    # fetch_all follows next links: 7 results at most 3 a page take three pages.
    everything = search.fetch_all()
    assert sorted(p.id for p in everything) == sorted(created)
    assert [p.id for p in first_page] == [p.id for p in everything[:PAGE]]

    assert search.count() == PATIENTS
    newest_first = client.resources("Patient").sort("-_lastUpdated").limit(2).fetch()
    assert newest_first[0].id == created[-1]
    assert client.resources("Patient").search(_id=created[3]).get().id == created[3]
