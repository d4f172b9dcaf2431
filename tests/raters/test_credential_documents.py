"""Credential documents: PDF or image only, size-limited, private, staff-only."""

from __future__ import annotations

import pytest
from django.core.files.storage import storages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from crowdplatform.core.errors import ApplicationError, ConflictError
from crowdplatform.core.models import AuditEvent
from crowdplatform.raters import services
from crowdplatform.raters.models import RaterProfile

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\ntrailer\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def upload(content: bytes, name: str = "diploma.pdf", content_type: str = "application/pdf") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type=content_type)


def test_a_pdf_is_stored_privately_under_a_random_name(rater, django_capture_on_commit_callbacks):
    profile = RaterProfile.objects.get(user=rater)
    profile = services.rater_credential_document_set(profile=profile, upload=upload(PDF), actor=rater)
    name = profile.credential_document.name
    assert name.startswith("credentials/")
    assert name.endswith(".pdf")
    assert "diploma" not in name
    private = storages["private"]
    assert private.open(name).read() == PDF
    assert AuditEvent.objects.get(action="rater_profile.credential_document").data == {"type": "pdf", "bytes": len(PDF)}

    with django_capture_on_commit_callbacks(execute=True):
        profile = services.rater_credential_document_set(
            profile=profile, upload=upload(PNG, "scan.png", "image/png"), actor=rater
        )
    assert profile.credential_document.name.endswith(".png")
    assert not private.exists(name)  # the replaced file is gone


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (b"MZ\x90\x00 not a pdf", "diploma.pdf", "Upload a PDF, PNG or JPEG file."),
        (b"<html><script>alert(1)</script>", "diploma.png", "Upload a PDF, PNG or JPEG file."),
        (b"", "empty.pdf", "Upload a PDF, PNG or JPEG file."),
    ],
)
def test_other_files_are_refused_and_nothing_changes(rater, content, name, message):
    profile = RaterProfile.objects.get(user=rater)
    with pytest.raises(ApplicationError) as error:
        services.rater_credential_document_set(profile=profile, upload=upload(content, name), actor=rater)
    assert error.value.message == message
    profile.refresh_from_db()
    assert not profile.credential_document
    assert not AuditEvent.objects.filter(action="rater_profile.credential_document").exists()


def test_oversized_files_are_refused(rater, settings):
    settings.CREDENTIAL_DOCUMENT_MAX_BYTES = 1024 * 1024
    profile = RaterProfile.objects.get(user=rater)
    big = upload(PDF + b"0" * (1024 * 1024))
    with pytest.raises(ApplicationError, match="too large: the limit is 1 MB"):
        services.rater_credential_document_set(profile=profile, upload=big, actor=rater)
    profile.refresh_from_db()
    assert not profile.credential_document


def test_no_upload_once_the_application_is_submitted(rater):
    profile = RaterProfile.objects.get(user=rater)
    RaterProfile.objects.filter(pk=profile.pk).update(status="applied")
    with pytest.raises(ConflictError):
        services.rater_credential_document_set(profile=profile, upload=upload(PDF), actor=rater)
    profile.refresh_from_db()
    assert not profile.credential_document


def test_upload_through_the_page_and_only_staff_download(client, rater, owner, staff_user):
    client.force_login(rater)
    response = client.post(reverse("rater:credential_document"), {"document": upload(PDF)}, follow=True)
    assert "Document uploaded. Only staff can open it." in response.text
    profile = RaterProfile.objects.get(user=rater)
    url = reverse("staff:rater_credential_document", args=[profile.pk])

    for outsider in (rater, owner):
        client.force_login(outsider)
        assert client.get(url).status_code == 403

    client.force_login(staff_user)
    download = client.get(url)
    assert download.status_code == 200
    assert download["Content-Disposition"].startswith("attachment;")
    assert b"".join(download.streaming_content) == PDF


def test_a_refused_upload_through_the_page_says_why(client, rater):
    client.force_login(rater)
    response = client.post(
        reverse("rater:credential_document"), {"document": upload(b"GIF89a", "x.gif", "image/gif")}, follow=True
    )
    assert "Upload a PDF, PNG or JPEG file." in response.text
