"""The client's billing page: funds and spend from the ledger, adding funds through the sandbox
checkout and its webhook, bonuses by pseudonym, fair-pay top-ups, and who may see and do what."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from evaluations.assignment import task_next
from evaluations.models import StudyStatus
from payments import ledger
from payments.earnings import bonus_grant, earnings_release_due, floor_topups_run
from payments.models import Earning, EarningKind, Funding, FundingStatus
from payments.selectors import rater_pseudonym
from tests.money import fund
from tests.payments import sandbox_fixtures
from tests.payments.conftest import money_state
from tests.payments.webhook_delivery import deliver_all

stripe_sandbox = sandbox_fixtures.stripe_sandbox

pytestmark = pytest.mark.django_db

PAY, FEE = 25, 5
COST = PAY + FEE


def billing_url(organization) -> str:
    return reverse("payments:billing", args=[organization.slug])


def fund_url(organization) -> str:
    return reverse("payments:billing_fund", args=[organization.slug])


def bonus_url(organization) -> str:
    return reverse("payments:billing_bonus", args=[organization.slug])


def figure(html: str, stat_id: str) -> str:
    match = re.search(rf'id="{stat_id}"><span class="stat-value">([^<]*)', html)
    assert match, f"no figure {stat_id}"
    return match.group(1).strip()


def facts(html: str) -> dict[str, str]:
    """The totals under the big figures: funded, refunded, disputed, spent."""
    return dict(re.findall(r"<li>([^<]+?) <strong>([^<]+)</strong></li>", html))


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def funds(organization) -> int:
    return ledger.balance(ledger.org_funds(organization.pk, "usd"))


# --- The page -------------------------------------------------------------------------------------


def test_a_new_organization_sees_zero_funds_and_empty_states(client, organization, owner):
    client.force_login(owner)

    page = client.get(billing_url(organization))

    assert page.status_code == 200
    assert [figure(page.text, name) for name in ("funds-balance", "funds-committed", "funds-spendable")] == [
        "0.00",
        "0.00",
        "0.00",
    ]
    assert facts(page.text) == {
        "Funded in total": "0.00 USD",
        "refunded": "0.00 USD",
        "disputed": "0.00 USD",
        "spent on studies": "0.00 USD",
    }
    for text in ("No funding yet", "No studies yet", "No raters yet", "No bonuses yet", "Continue to payment"):
        assert text in page.text


def test_the_page_shows_exact_funds_and_spend_that_agree_with_the_ledger(
    client, organization, owner, make_live_study, vote_as, make_rater
):
    study = make_live_study(items=3, funds_cents=100_000, budget_cents=10_000)
    slow, quick, holding = make_rater(), make_rater(), make_rater()
    vote_as(study, slow, duration_s=300)  # 5 min at 15.00/h: 1.25 required, 0.25 paid: top-up 1.00
    vote_as(study, quick, duration_s=30)
    vote_as(study, quick, duration_s=30)
    assert floor_topups_run() == 1
    bonus_grant(
        actor=owner,
        rater=quick.user,
        amount_cents=150,
        reason="Fast and careful work",
        idempotency_key="k1",
        study=study,
        organization=organization,
    )
    task_next(rater=holding, study=study)  # an open lease: committed, not yet spent
    client.force_login(owner)

    page = client.get(billing_url(organization))

    spent = 3 * COST + 100 + 150
    assert funds(organization) == 100_000 - spent
    assert figure(page.text, "funds-balance") == f"{(100_000 - spent) / 100:,.2f}"
    assert figure(page.text, "funds-committed") == "0.30"
    assert figure(page.text, "funds-spendable") == f"{(100_000 - spent - COST) / 100:,.2f}"
    row = re.search(rf'<tr id="spend-{study.pk}">(.*?)</tr>', page.text, re.S).group(1)
    cells = re.findall(r'<td class="num">(.*?)</td>', row, re.S)
    assert [re.sub(r"<[^>]+>", " ", cell).split() for cell in cells] == [
        ["3"],
        ["0.75", "USD"],  # rater pay
        ["0.15", "USD"],  # platform fee
        ["1.00", "USD", "1", "rater"],  # top-ups, to how many raters
        ["1.50", "USD"],  # bonuses
        ["3.40", "USD"],  # total
        ["99.25", "USD"],  # budget left: 100.00 - 0.75
    ]
    assert '<td class="num">3.40 USD</td>' in page.text  # the footer total
    # The top-up and the bonus, by pseudonym.
    slow_name = rater_pseudonym(study_id=study.pk, rater_user_id=slow.user_id)
    quick_name = rater_pseudonym(study_id=study.pk, rater_user_id=quick.user_id)
    topups = page.text[page.text.index('id="topups"') : page.text.index('id="bonuses"')]
    assert f'<code class="pseudonym">{slow_name}</code>' in topups
    assert "1.00 USD" in topups
    bonuses = page.text[page.text.index('id="bonuses"') : page.text.index('id="fundings"')]
    assert f'<code class="pseudonym">{quick_name}</code>' in bonuses
    assert "Fast and careful work" in bonuses


def test_clients_see_raters_by_pseudonym_never_by_email(
    client, organization, owner, make_live_study, vote_as, make_rater
):
    study = make_live_study(items=3)
    raters = [make_rater(), make_rater()]
    for rater in raters:
        vote_as(study, rater, duration_s=400)
    floor_topups_run()
    client.force_login(owner)

    page = client.get(billing_url(organization))

    for rater in raters:
        assert rater.user.email not in page.text
        assert f"user_id={rater.user_id}" not in page.text
        assert rater_pseudonym(study_id=study.pk, rater_user_id=rater.user_id) in page.text
    options = re.findall(r'<option value="([^"]*)"', page.text[page.text.index('name="rater"') :])
    assert sorted(option for option in options if option) == sorted(
        rater_pseudonym(study_id=study.pk, rater_user_id=rater.user_id) for rater in raters
    )


def test_a_notice_names_the_studies_paused_for_lack_of_funds(
    client, settings, organization, owner, make_live_study, vote_as, django_capture_on_commit_callbacks
):
    settings.LAUNCH_FUNDED_TASKS_MIN = 1
    study = make_live_study(items=3, funds_cents=COST)
    with django_capture_on_commit_callbacks(execute=True):
        vote_as(study)
    study.refresh_from_db()
    assert (study.status, study.paused_reason) == (StudyStatus.PAUSED, "funds")
    client.force_login(owner)

    page = client.get(billing_url(organization))

    notice = re.search(
        r'<div class="alert alert-warning" role="alert" id="paused-for-funds">(.*?)</div>', page.text, re.S
    )
    assert notice
    assert "Coding help" in notice.group(1)
    assert "it resumes by itself" in notice.group(1)


# --- Access ---------------------------------------------------------------------------------------


def test_members_see_billing_but_only_owners_fund_and_grant(client, organization, member):
    client.force_login(member)

    page = client.get(billing_url(organization))

    assert page.status_code == 200
    assert "Only an owner of Alpha Lab adds funds and grants bonuses." in page.text
    assert "Continue to payment" not in page.text
    assert client.post(fund_url(organization), {"amount": "100"}).status_code == 403
    assert client.post(bonus_url(organization), {"amount": "1"}).status_code == 403
    assert not Funding.objects.exists()


def test_another_organizations_billing_is_404(client, organization, owner, other_owner):
    fund(organization.pk, 5000)
    funding = Funding.objects.create(organization=organization, amount_cents=1000)
    client.force_login(other_owner)

    assert client.get(billing_url(organization)).status_code == 404
    assert client.post(fund_url(organization), {"amount": "100"}).status_code == 404
    assert client.post(bonus_url(organization), {}).status_code == 404
    status = reverse("payments:funding_status", args=[organization.slug, funding.pk])
    assert client.get(status).status_code == 404
    # Their own billing page does not open another organization's top-up either.
    other_slug = other_owner.memberships.get().organization.slug
    assert client.get(reverse("payments:funding_status", args=[other_slug, funding.pk])).status_code == 404
    assert (
        f'data-funding="{funding.pk}"'
        not in client.get(reverse("payments:billing", args=[other_slug]) + f"?funding={funding.pk}&result=success").text
    )


def test_raters_and_visitors_cannot_open_billing(client, organization, rater):
    assert client.get(billing_url(organization))["Location"].startswith(reverse("account_login"))
    client.force_login(rater)
    assert client.get(billing_url(organization)).status_code == 403


def test_the_organization_page_links_to_billing(client, organization, owner):
    client.force_login(owner)
    page = client.get(reverse("client:organization", args=[organization.slug]))
    assert f'href="{billing_url(organization)}"' in page.text


# --- Adding funds ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "problem"),
    [
        ("", "This field is required."),
        ("abc", "Enter an amount in dollars, like 250 or 250.00."),
        ("12,50", "Enter an amount in dollars, like 250 or 250.00."),
        ("1e3", "Enter an amount in dollars, like 250 or 250.00."),
        ("NaN", "Enter an amount in dollars, like 250 or 250.00."),
        ("10.001", "Use at most two decimals: amounts are in whole cents."),
        ("0", "Enter an amount above zero."),
        ("0.00", "Enter an amount above zero."),
        ("-5", "Enter an amount above zero."),
        ("4.99", "The smallest amount is 5.00 USD."),
        ("100000.01", "The largest amount is 100,000.00 USD."),
        ("99999999999999999999", "The largest amount is 100,000.00 USD."),
    ],
)
def test_invalid_amounts_are_refused_with_the_reason_and_nothing_changes(client, organization, owner, amount, problem):
    client.force_login(owner)
    before = money_state()

    response = client.post(fund_url(organization), {"amount": amount})

    assert response.status_code == 400
    assert response.context["funding_form"].errors == {"amount": [problem]}
    assert problem.replace("'", "&#x27;") in response.text
    assert not Funding.objects.exists()
    assert money_state() == before


def test_add_funds_goes_to_the_sandbox_checkout_and_the_webhook_credits_the_funds(
    client, stripe_sandbox, organization, owner, django_capture_on_commit_callbacks
):
    client.force_login(owner)

    response = client.post(fund_url(organization), {"amount": "250.50"})

    funding = Funding.objects.get()
    assert (funding.amount_cents, funding.status, funding.created_by) == (25_050, FundingStatus.OPEN, owner)
    assert response.status_code == 302
    assert response["Location"] == funding.checkout_url
    assert funding.checkout_url.startswith(stripe_sandbox.base_url)
    assert funds(organization) == 0

    # Back from Stripe before the webhook: nothing credited, the status polls itself.
    back = client.get(billing_url(organization) + f"?funding={funding.pk}&result=success")
    assert "Payment received by Stripe; your funds appear as soon as Stripe confirms it" in back.text
    status_url = reverse("payments:funding_status", args=[organization.slug, funding.pk])
    assert f'hx-get="{status_url}" hx-trigger="every 3s"' in back.text
    assert figure(back.text, "funds-balance") == "0.00"
    polled = client.get(status_url, headers={"HX-Request": "true"})
    assert 'data-status="open"' in polled.text
    assert "HX-Refresh" not in polled

    stripe_sandbox.checkout_pay(session_id=funding.checkout_session_id, outcome="paid")
    with django_capture_on_commit_callbacks(execute=True):
        deliver_all(client, stripe_sandbox)

    polled = client.get(status_url, headers={"HX-Request": "true"})
    assert 'data-status="paid"' in polled.text
    assert "hx-trigger" not in polled.text
    assert polled["HX-Refresh"] == "true"
    assert "Stripe confirmed your payment:</strong> 250.50 USD was added to your prepaid funds." in polled.text
    page = client.get(billing_url(organization) + f"?funding={funding.pk}&result=success")
    assert funds(organization) == 25_050
    assert figure(page.text, "funds-balance") == "250.50"
    assert figure(page.text, "funds-spendable") == "250.50"
    assert facts(page.text)["Funded in total"] == "250.50 USD"
    assert "hx-trigger" not in page.text  # paid: nothing polls any more
    row = re.search(rf'<tr id="funding-{funding.pk}">(.*?)</tr>', page.text, re.S).group(1)
    assert "250.50 USD" in row
    assert ">Paid</span>" in row
    funding.refresh_from_db()
    assert funding.fee_cents > 0
    assert f"{funding.fee_cents / 100:.2f}" not in row  # Stripe's fee is the platform's business


def test_coming_back_from_a_cancelled_checkout_says_nothing_was_charged(client, stripe_sandbox, organization, owner):
    client.force_login(owner)
    client.post(fund_url(organization), {"amount": "40"})
    funding = Funding.objects.get()

    page = client.get(billing_url(organization) + f"?funding={funding.pk}&result=cancel")

    assert "nothing was charged for the top-up of 40.00 USD" in page.text
    assert "hx-get" not in page.text
    assert 'href="' + funding.checkout_url + '"' in page.text  # it can still be paid


def test_a_stripe_failure_is_a_form_error_never_a_500(client, stripe_sandbox, organization, owner):
    client.force_login(owner)
    stripe_sandbox.fault(method="POST", path_prefix="/v1/checkout/sessions", kind="500")

    response = client.post(fund_url(organization), {"amount": "100"})

    assert response.status_code == 400
    assert response.context["funding_form"].non_field_errors() == [
        "Stripe could not open a payment page right now, and nothing was charged. Please try again in a moment."
    ]
    assert funds(organization) == 0


def test_a_paused_study_resumes_after_funding_through_the_billing_page(
    client, settings, stripe_sandbox, organization, owner, make_live_study, vote_as, django_capture_on_commit_callbacks
):
    settings.LAUNCH_FUNDED_TASKS_MIN = 1
    study = make_live_study(items=3, funds_cents=COST)
    with django_capture_on_commit_callbacks(execute=True):
        vote_as(study)
    client.force_login(owner)
    assert 'id="paused-for-funds"' in client.get(billing_url(organization)).text

    client.post(fund_url(organization), {"amount": "50"})
    funding = Funding.objects.get()
    stripe_sandbox.checkout_pay(session_id=funding.checkout_session_id, outcome="paid")
    with django_capture_on_commit_callbacks(execute=True):
        deliver_all(client, stripe_sandbox)

    study.refresh_from_db()
    assert study.status == StudyStatus.LIVE
    page = client.get(billing_url(organization))
    assert 'id="paused-for-funds"' not in page.text
    assert figure(page.text, "funds-balance") == "50.00"


# --- Bonuses --------------------------------------------------------------------------------------


@pytest.fixture
def worked(make_live_study, vote_as, make_rater):
    """A live study with one rater who voted once: (study, rater profile)."""
    study = make_live_study(items=3, funds_cents=10_000)
    rater = make_rater()
    vote_as(study, rater)
    return study, rater


def _bonus_form_data(client, organization, study, rater, /, **change) -> dict:
    page = client.get(billing_url(organization))
    key = page.context["bonus_form"].initial["idempotency_key"]
    assert f'name="idempotency_key" value="{key}"' in page.text
    return {
        "study": study.pk,
        "rater": rater_pseudonym(study_id=study.pk, rater_user_id=rater.user_id),
        "amount": "2.50",
        "reason": "Outstanding rationales",
        "idempotency_key": key,
        **change,
    }


def test_a_bonus_submitted_twice_is_granted_once(client, organization, owner, worked):
    study, rater = worked
    client.force_login(owner)
    data = _bonus_form_data(client, organization, study, rater)
    before = funds(organization)
    pseudonym = data["rater"]

    first = client.post(bonus_url(organization), data, follow=True)
    second = client.post(bonus_url(organization), data, follow=True)

    assert messages_of(first) == [f"Bonus of 2.50 USD granted to rater {pseudonym} on “Coding help”."]
    assert messages_of(second) == [f"This bonus (2.50 USD to rater {pseudonym}) was already granted; it is paid once."]
    bonus = Earning.objects.get(kind=EarningKind.BONUS)
    assert (bonus.rater_id, bonus.amount_cents, bonus.study_id, bonus.organization_id, bonus.granted_by) == (
        rater.user_id,
        250,
        study.pk,
        organization.pk,
        owner,
    )
    assert funds(organization) == before - 250
    assert ledger.balance(ledger.rater_available(rater.user_id, "usd")) == 250
    # A fresh form has a fresh key: a second, deliberate bonus is granted.
    data = _bonus_form_data(client, organization, study, rater)
    client.post(bonus_url(organization), data)
    assert Earning.objects.filter(kind=EarningKind.BONUS).count() == 2
    # The rater sees it with its reason.
    client.force_login(rater.user)
    assert "Outstanding rationales" in client.get(reverse("payments:earnings")).text


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        ({"amount": "0"}, "amount", "Enter an amount above zero."),
        ({"amount": "2.505"}, "amount", "Use at most two decimals: amounts are in whole cents."),
        ({"amount": "1000.01"}, "amount", "The largest amount is 1,000.00 USD."),
        ({"amount": "ten"}, "amount", "Enter an amount in dollars, like 250 or 250.00."),
        ({"reason": "thanks"}, "reason", "Give a reason of at least 10 characters."),
        (
            {"rater": "0000deadbeef"},
            "rater",
            "Select a valid choice. 0000deadbeef is not one of the available choices.",
        ),
        ({"study": "999999"}, "study", "Select a valid choice. 999999 is not one of the available choices."),
    ],
)
def test_invalid_bonuses_are_refused_with_the_reason_and_nothing_changes(
    client, organization, owner, worked, change, field, problem
):
    study, rater = worked
    client.force_login(owner)
    data = _bonus_form_data(client, organization, study, rater, **change)
    before = money_state()

    response = client.post(bonus_url(organization), data)

    assert response.status_code == 400
    assert response.context["bonus_form"].errors == {field: [problem]}
    assert money_state() == before


def test_a_bonus_to_a_rater_of_another_study_is_refused(client, organization, owner, worked, make_live_study):
    _study, rater = worked
    other_study = make_live_study(items=3, funds_cents=0)
    client.force_login(owner)
    data = _bonus_form_data(client, organization, other_study, rater)
    data["study"] = other_study.pk
    before = money_state()

    response = client.post(bonus_url(organization), data)

    assert response.status_code == 400
    assert response.context["bonus_form"].errors["study"]  # no rater worked on it: not a choice
    assert money_state() == before


def test_a_bonus_the_funds_do_not_cover_is_refused(client, organization, owner, make_live_study, vote_as, make_rater):
    study = make_live_study(items=3, funds_cents=1000)
    rater = make_rater()
    vote_as(study, rater)
    client.force_login(owner)
    data = _bonus_form_data(client, organization, study, rater, amount="20.00")
    before = money_state()

    response = client.post(bonus_url(organization), data)

    assert response.status_code == 400
    assert response.context["bonus_form"].non_field_errors() == [
        "The organization's prepaid funds do not cover this bonus."
    ]
    assert money_state() == before


def test_released_pay_leaves_the_clients_figures_unchanged(client, organization, owner, worked):
    client.force_login(owner)
    before = client.get(billing_url(organization))
    earnings_release_due(now=timezone.now() + timedelta(hours=73))
    after = client.get(billing_url(organization))
    assert figure(before.text, "funds-balance") == figure(after.text, "funds-balance") == "99.70"
