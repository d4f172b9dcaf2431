"""The money pages: a rater's earnings and payouts, a client's billing, and the staff payouts console.

Every figure comes from `payments.selectors` (the ledger and the rows that explain it). Raters see
only their own money and never other raters; clients see their organization's, with raters by
pseudonym only; staff see everything. Actions are POSTs that redirect with a message; a Stripe
failure is a message too, never a 500.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.forms import Form
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from crowdplatform.accounts.access import (
    CLIENT_AREA,
    RATER_AREA,
    STAFF_AREA,
    area_required,
    can_manage_organization,
    organization_for,
)
from crowdplatform.accounts.models import AccountType, Organization, User
from crowdplatform.core.errors import ApplicationError
from evaluations.models import Study, StudyStatus
from payments import selectors, stripe_api
from payments.connect import account_status_refresh, onboarding_link_create
from payments.earnings import (
    appeal_decide,
    bonus_grant,
    earning_appeal,
    earning_reject,
    earnings_hold,
    earnings_hold_release,
)
from payments.forms import (
    AppealDecisionForm,
    AppealForm,
    BonusForm,
    FundingForm,
    NoteForm,
    PayoutHoldForm,
    ReasonForm,
    StaffBonusForm,
)
from payments.funding import funding_checkout_create
from payments.funds import FUNDS_PAUSE_REASON
from payments.models import (
    ConnectedAccount,
    Earning,
    EarningAppeal,
    EarningKind,
    EarningStatus,
    Funding,
    FundingStatus,
    LedgerTransaction,
    Payout,
    PayoutBatch,
    PayoutBatchTrigger,
    PayoutHold,
    PayoutStatus,
    ReconciliationRun,
    ReconciliationStatus,
)
from payments.payouts import payout_batch_create, payout_batch_preview, payout_hold, payout_hold_release, payout_retry
from payments.reconciliation import reconcile
from payments.templatetags.payments_money import money, requirement_words, words

EARNINGS_PER_PAGE = 25
LIST_LIMIT = 100  # rows of a console list shown at once (the rest are counted)
STRIPE_UNREACHABLE = "Stripe could not be reached just now and nothing was changed. Please try again in a minute."
# A Checkout Session expires after 24 hours; an unpaid top-up younger than this can still be paid.
CHECKOUT_USABLE_FOR = timedelta(hours=23)


def _form_problems(form: Form) -> str:
    return " ".join(str(error) for errors in form.errors.values() for error in errors)


def _add_application_error(form: Form, error: ApplicationError, *, renames: dict[str, str] | None = None) -> None:
    """A domain error on the form: on the field it names (`amount_cents` is the form's `amount`), else above it."""
    renames = {"amount_cents": "amount", **(renames or {})}
    if not error.fields:
        form.add_error(None, error.message)
        return
    for name, problems in error.fields.items():
        field = renames.get(name, name)
        target = field if field in form.fields else None
        for problem in problems:
            form.add_error(target, error.message if target is None else f"{error.message} ({problem})")


# --- Rater: earnings, appeals, Stripe onboarding --------------------------------------------------


def _connect_state(account: ConnectedAccount | None) -> str:
    if account is None:
        return "none"
    if account.can_receive_transfers:
        return "active"
    return "verifying" if account.details_submitted else "incomplete"


def _requirements(account: ConnectedAccount | None) -> list[str]:
    if account is None:
        return []
    return list(dict.fromkeys(requirement_words(name) for name in account.requirements_due))


def _payout_words(payout: Payout) -> str:
    """What happened to a payout, in words for the rater (never Stripe's error codes)."""
    if payout.status == PayoutStatus.PENDING:
        if payout.last_error:
            return "Stripe did not confirm it yet; we keep trying automatically."
        return "Being sent to your Stripe account."
    if payout.status == PayoutStatus.SENT:
        return "Sent to your Stripe account; Stripe pays it out to your bank."
    if payout.status == PayoutStatus.PAID:
        return "Paid out to your bank by Stripe."
    if payout.status == PayoutStatus.REVERSED:
        return "Taken back from your Stripe account: the money is in your available balance again."
    error = payout.last_error or ""
    if "held by staff" in error:
        return "Cancelled before sending while staff review your payouts; the money is in your available balance."
    if error.startswith("Stripe refused"):
        return (
            "Stripe could not send it to your account; the money is back in your available balance and goes out "
            "with a later payout. Check your Stripe account details."
        )
    if "Gave up" in error:
        return "Stripe could not be reached for a long time; our staff are on it and the money stays set aside for you."
    return "Not sent; the money is back in your available balance or set aside for you while staff look into it."


@area_required(RATER_AREA)
def earnings(request: HttpRequest) -> HttpResponse:
    rater: User = request.user  # type: ignore[assignment]
    page = Paginator(selectors.rater_earnings(rater=rater), EARNINGS_PER_PAGE).get_page(request.GET.get("page"))
    account = ConnectedAccount.objects.filter(rater=rater).first()
    context = {
        "money": selectors.rater_money(rater=rater),
        "hold_reasons": list(
            Earning.objects.filter(rater=rater, status=EarningStatus.HELD)
            .order_by("hold_reason")
            .values_list("hold_reason", flat=True)
            .distinct()
        ),
        "studies": selectors.rater_earnings_by_study(rater=rater),
        "page_obj": page,
        "rows": [(earning, _latest_appeal(earning)) for earning in page],
        "payouts": [(payout, _payout_words(payout)) for payout in selectors.rater_payouts(rater=rater)[:LIST_LIMIT]],
        "account": account,
        "connect_state": _connect_state(account),
        "requirements": _requirements(account),
        "payouts_held": PayoutHold.objects.filter(rater=rater, released_at__isnull=True).exists(),
        "minimum_cents": settings.PAYOUT_MINIMUM_CENTS,
        "appeal_form": AppealForm(),
    }
    return render(request, "payments/earnings.html", context)


def _latest_appeal(earning: Earning) -> EarningAppeal | None:
    appeals = list(earning.appeals.all())  # prefetched, newest first
    return appeals[0] if appeals else None


@require_POST
@area_required(RATER_AREA)
def earning_appeal_create(request: HttpRequest, earning_id: int) -> HttpResponse:
    earning = get_object_or_404(Earning, pk=earning_id, rater=request.user)
    form = AppealForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Say why the rejection is wrong. " + _form_problems(form))
    else:
        try:
            earning_appeal(earning=earning, rater=request.user, message=form.cleaned_data["message"])  # type: ignore[arg-type]
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, "Appeal sent. Staff will answer it here, on this page.")
    return redirect(reverse("payments:earnings") + f"#earning-{earning.pk}")


@require_POST
@area_required(RATER_AREA)
def connect_setup(request: HttpRequest) -> HttpResponse:
    """Open (or continue) Stripe's onboarding for the rater's connected account."""
    return _to_onboarding(request)


@require_GET
@area_required(RATER_AREA)
def connect_refresh(request: HttpRequest) -> HttpResponse:
    """Stripe sends the rater here when an onboarding link expired or was used: a new link."""
    return _to_onboarding(request)


def _to_onboarding(request: HttpRequest) -> HttpResponse:
    try:
        url = onboarding_link_create(rater=request.user)  # type: ignore[arg-type]
    except stripe_api.StripeError:
        messages.error(request, STRIPE_UNREACHABLE)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        return redirect(url)
    return redirect("payments:earnings")


@require_GET
@area_required(RATER_AREA)
def connect_return(request: HttpRequest) -> HttpResponse:
    """Back from Stripe's onboarding: ask Stripe for the account's status (never trust the redirect)."""
    try:
        account = account_status_refresh(rater=request.user)  # type: ignore[arg-type]
    except stripe_api.StripeError:
        messages.warning(
            request,
            "We could not check your status with Stripe just now; this page updates as soon as Stripe tells us.",
        )
        return redirect("payments:earnings")
    state = _connect_state(account)
    if state == "active":
        messages.success(request, "Payouts are set up: your available balance goes out with the next payout batch.")
    elif state == "verifying":
        messages.info(request, "Thank you: Stripe is verifying your details. Payouts start once Stripe has finished.")
    elif state == "incomplete":
        messages.warning(request, "Your Stripe setup is not finished yet: continue it with “Continue setup”.")
    else:
        messages.info(request, "You have not set up payouts yet.")
    return redirect("payments:earnings")


# --- Client: billing ------------------------------------------------------------------------------


def _bonus_studies(organization: Organization) -> list[tuple[Study, list[str]]]:
    """The organization's studies that have raters, each with its raters' pseudonyms."""
    studies = organization.studies.filter(votes_count__gt=0).order_by("name", "pk")
    pairs = [(study, [rater.pseudonym for rater in selectors.study_raters(study_id=study.pk)]) for study in studies]
    return [(study, pseudonyms) for study, pseudonyms in pairs if pseudonyms]


def _billing_context(request: HttpRequest, organization: Organization, **forms: Form) -> dict[str, Any]:
    can_manage = can_manage_organization(request.user, organization)  # type: ignore[arg-type]
    billing = selectors.org_billing(organization=organization)
    now = timezone.now()
    fundings = list(selectors.org_fundings(organization=organization)[:LIST_LIMIT])
    bonuses = (
        Earning.objects.filter(organization=organization, kind=EarningKind.BONUS)
        .select_related("study")
        .order_by("-created_at", "-id")[:LIST_LIMIT]
    )
    studies = [
        (spend, selectors.study_topups(study_id=spend.study_id) if spend.topups_cents else [])
        for spend in billing.studies
    ]
    context: dict[str, Any] = {
        "organization": organization,
        "can_manage": can_manage,
        "billing": billing,
        "studies": studies,
        "has_topups": any(topups for _, topups in studies),
        "paused_for_funds": list(
            organization.studies.filter(status=StudyStatus.PAUSED, paused_reason=FUNDS_PAUSE_REASON).order_by("name")
        ),
        "fundings": [(funding, _funding_payable(funding, now)) for funding in fundings],
        "bonuses": [
            (selectors.rater_pseudonym(study_id=bonus.study_id, rater_user_id=bonus.rater_id), bonus)
            for bonus in bonuses
            if bonus.study_id is not None
        ],
        "returning": _returning_funding(request, organization),
        "result": request.GET.get("result", ""),
    }
    if can_manage:
        context["funding_form"] = forms.get("funding_form") or FundingForm()
        context["bonus_form"] = forms.get("bonus_form") or BonusForm(studies=_bonus_studies(organization))
    return context


def _funding_payable(funding: Funding, now: Any) -> bool:
    """An unpaid top-up whose Stripe payment page still works."""
    return (
        funding.status == FundingStatus.OPEN
        and bool(funding.checkout_url)
        and funding.created_at > now - CHECKOUT_USABLE_FOR
    )


def _returning_funding(request: HttpRequest, organization: Organization) -> Funding | None:
    """The top-up the client just came back from Stripe's checkout for (`?funding=<id>&result=…`)."""
    funding_id = request.GET.get("funding", "")
    if not funding_id.isdigit():
        return None
    return Funding.objects.filter(pk=int(funding_id), organization=organization).first()


@area_required(CLIENT_AREA)
def billing(request: HttpRequest, slug: str) -> HttpResponse:
    organization = organization_for(request.user, slug=slug)  # type: ignore[arg-type]
    return render(request, "payments/billing.html", _billing_context(request, organization))


@require_POST
@area_required(CLIENT_AREA)
def billing_fund(request: HttpRequest, slug: str) -> HttpResponse:
    """Open a Stripe Checkout for a top-up and send the client there. Nothing is credited here:
    the funds arrive from Stripe's webhook."""
    organization = organization_for(request.user, slug=slug, manage=True)  # type: ignore[arg-type]
    form = FundingForm(request.POST)
    if form.is_valid():
        try:
            funding = funding_checkout_create(
                organization=organization, actor=request.user, amount_cents=form.cleaned_data["amount"]
            )  # type: ignore[arg-type]
        except stripe_api.StripeError:
            form.add_error(None, STRIPE_UNREACHABLE)
        except ApplicationError as error:
            _add_application_error(form, error)
        else:
            if funding.checkout_url:
                return redirect(funding.checkout_url)
            form.add_error(None, STRIPE_UNREACHABLE)
    context = _billing_context(request, organization, funding_form=form)
    return render(request, "payments/billing.html", context, status=400)


@require_POST
@area_required(CLIENT_AREA)
def billing_bonus(request: HttpRequest, slug: str) -> HttpResponse:
    organization = organization_for(request.user, slug=slug, manage=True)  # type: ignore[arg-type]
    studies = _bonus_studies(organization)
    form = BonusForm(request.POST, studies=studies)
    if form.is_valid():
        study = next(study for study, _ in studies if study.pk == form.cleaned_data["study"])
        pseudonym = form.cleaned_data["rater"]
        rater_id = next(
            rater.user_id for rater in selectors.study_raters(study_id=study.pk) if rater.pseudonym == pseudonym
        )
        try:
            _, created = bonus_grant(
                actor=request.user,  # type: ignore[arg-type]
                rater=User.objects.get(pk=rater_id),
                amount_cents=form.cleaned_data["amount"],
                reason=form.cleaned_data["reason"],
                idempotency_key=form.cleaned_data["idempotency_key"],
                study=study,
                organization=organization,
            )
        except ApplicationError as error:
            _add_application_error(form, error)
        else:
            amount = money(form.cleaned_data["amount"], study.currency)
            if created:
                messages.success(request, f"Bonus of {amount} granted to rater {pseudonym} on “{study.name}”.")
            else:
                messages.info(
                    request, f"This bonus ({amount} to rater {pseudonym}) was already granted; it is paid once."
                )
            return redirect(reverse("payments:billing", args=[organization.slug]) + "#bonuses")
    context = _billing_context(request, organization, bonus_form=form)
    return render(request, "payments/billing.html", context, status=400)


@require_GET
@area_required(CLIENT_AREA)
def funding_status(request: HttpRequest, slug: str, funding_id: int) -> HttpResponse:
    """The status of one top-up, alone: the billing page polls it (htmx) until Stripe confirms or fails it."""
    organization = organization_for(request.user, slug=slug)  # type: ignore[arg-type]
    funding = get_object_or_404(Funding, pk=funding_id, organization=organization)
    context = {"organization": organization, "funding": funding, "result": request.GET.get("result", "success")}
    response = render(request, "payments/_funding_status.html", context)
    if funding.status == FundingStatus.PAID and request.headers.get("HX-Request"):
        response["HX-Refresh"] = "true"  # reload the page so every figure includes the new funds
    return response


# --- Staff: the payouts console -------------------------------------------------------------------


def _back(request: HttpRequest, default: str) -> HttpResponse:
    """Back to the console page the form was on (`next`), never anywhere else."""
    target = request.POST.get("next", "")
    safe = url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()})
    if safe and target.startswith(reverse("payments:staff_payouts")):
        return redirect(target)
    return redirect(default)


def _console() -> str:
    return reverse("payments:staff_payouts")


def _rater_page(user_id: int) -> str:
    return reverse("payments:staff_rater_money", args=[user_id])


@area_required(STAFF_AREA)
def staff_payouts(request: HttpRequest) -> HttpResponse:
    preview = payout_batch_preview()
    failed = list(Payout.objects.filter(status=PayoutStatus.FAILED).select_related("rater")[:LIST_LIMIT])
    returned = set(
        LedgerTransaction.objects.filter(reference__in=[f"payout:{p.pk}:return" for p in failed]).values_list(
            "reference", flat=True
        )
    )
    run = ReconciliationRun.objects.first()
    to_pay, skipped = preview.to_pay, preview.skipped
    context = {
        "totals": selectors.platform_totals(),
        "preview": preview,
        "to_pay": to_pay[:LIST_LIMIT],
        "to_pay_more": max(len(to_pay) - LIST_LIMIT, 0),
        "skipped": skipped[:LIST_LIMIT],
        "skipped_more": max(len(skipped) - LIST_LIMIT, 0),
        "failed": [(payout, f"payout:{payout.pk}:return" in returned) for payout in failed],
        "failed_count": Payout.objects.filter(status=PayoutStatus.FAILED).count(),
        "pending": Payout.objects.filter(status=PayoutStatus.PENDING)
        .select_related("rater")
        .order_by("next_attempt_at", "id")[:LIST_LIMIT],
        "pending_count": Payout.objects.filter(status=PayoutStatus.PENDING).count(),
        "holds": PayoutHold.objects.filter(released_at__isnull=True).select_related("rater", "created_by"),
        "hold_form": PayoutHoldForm(),
        "note_form": NoteForm(),
        "run": run,
        "checked": _checked_words(run),
        "mismatches": run.mismatches.all()[:LIST_LIMIT] if run is not None else [],
        "mismatch_count": run.mismatches.count() if run is not None else 0,
        "appeals": selectors.appeals_open(),
        "decision_form": AppealDecisionForm(),
        "batches": PayoutBatch.objects.select_related("created_by")[:10],
        "minimum_cents": settings.PAYOUT_MINIMUM_CENTS,
    }
    return render(request, "payments/staff_payouts.html", context)


def _checked_words(run: ReconciliationRun | None) -> str:
    """What a reconciliation compared: "3 transfers, 2 payouts, …"."""
    if run is None:
        return ""
    counts = [(name, count) for name, count in (run.checked or {}).items() if isinstance(count, int)]
    return ", ".join(f"{count} {words(name)}" for name, count in counts)


@require_POST
@area_required(STAFF_AREA)
def staff_payout_run(request: HttpRequest) -> HttpResponse:
    try:
        batch = payout_batch_create(trigger=PayoutBatchTrigger.STAFF, actor=request.user)  # type: ignore[arg-type]
    except stripe_api.StripeError:
        messages.error(request, STRIPE_UNREACHABLE)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        if batch.payouts_count:
            messages.success(
                request,
                f"Payout batch {batch.pk}: {batch.payouts_count} payout{'s' if batch.payouts_count != 1 else ''} "
                f"totalling {money(batch.total_cents, batch.currency)}, being sent now.",
            )
        else:
            messages.info(request, f"Payout batch {batch.pk}: nobody could be paid now (see the preview for why).")
    return redirect(_console())


@require_POST
@area_required(STAFF_AREA)
def staff_payout_retry(request: HttpRequest, payout_id: int) -> HttpResponse:
    payout = get_object_or_404(Payout, pk=payout_id)
    try:
        result = payout_retry(payout=payout, actor=request.user)  # type: ignore[arg-type]
    except stripe_api.StripeError:
        messages.error(request, STRIPE_UNREACHABLE)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        if result.pk == payout.pk:
            messages.success(
                request, f"Payout {payout.pk} had reached Stripe after all: recorded as {result.get_status_display()}."
            )
        else:
            messages.success(
                request,
                f"Payout {payout.pk} retried as payout {result.pk} of {money(result.amount_cents, result.currency)}, "
                "being sent now.",
            )
    return _back(request, _console())


@require_POST
@area_required(STAFF_AREA)
def staff_payout_hold(request: HttpRequest) -> HttpResponse:
    form = PayoutHoldForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Payouts not held: " + _form_problems(form))
        return _back(request, _console())
    rater = form.cleaned_data["email"]
    try:
        payout_hold(rater=rater, reason=form.cleaned_data["reason"], actor=request.user)  # type: ignore[arg-type]
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Payouts to {rater.email} are held until released; their earnings keep accruing.")
    return _back(request, _console())


@require_POST
@area_required(STAFF_AREA)
def staff_payout_hold_release(request: HttpRequest, hold_id: int) -> HttpResponse:
    hold = get_object_or_404(PayoutHold.objects.select_related("rater"), pk=hold_id)
    form = NoteForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Hold not released: say why it is released.")
        return _back(request, _console())
    try:
        payout_hold_release(hold=hold, note=form.cleaned_data["note"], actor=request.user)  # type: ignore[arg-type]
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Released the hold on {hold.rater.email}: they are paid from the next batch.")
    return _back(request, _console())


@require_POST
@area_required(STAFF_AREA)
def staff_reconcile(request: HttpRequest) -> HttpResponse:
    run = reconcile()
    if run.status == ReconciliationStatus.OK:
        messages.success(request, f"Reconciliation {run.pk}: the ledger and Stripe agree.")
    elif run.status == ReconciliationStatus.MISMATCHES:
        count = run.mismatches.count()
        messages.warning(request, f"Reconciliation {run.pk}: {count} mismatch{'es' if count != 1 else ''} found.")
    else:
        messages.error(request, f"Reconciliation {run.pk} could not complete: {run.error}")
    return redirect(_console() + "#reconciliation")


@require_POST
@area_required(STAFF_AREA)
def staff_appeal_decide(request: HttpRequest, appeal_id: int) -> HttpResponse:
    appeal = get_object_or_404(EarningAppeal, pk=appeal_id)
    form = AppealDecisionForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Appeal not decided: " + _form_problems(form))
        return _back(request, _console() + "#appeals")
    uphold = form.cleaned_data["decision"] == "uphold"
    try:
        appeal_decide(appeal=appeal, actor=request.user, uphold=uphold, response=form.cleaned_data["response"])  # type: ignore[arg-type]
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request,
            f"Appeal {appeal.pk} {'upheld: the pay is reinstated' if uphold else 'denied'}; the rater sees why.",
        )
    return _back(request, _console() + "#appeals")


# --- Staff: one rater's money ---------------------------------------------------------------------


def _rater(user_id: int) -> User:
    return get_object_or_404(User, pk=user_id, account_type=AccountType.RATER)


@area_required(STAFF_AREA)
def staff_rater_money(request: HttpRequest, user_id: int) -> HttpResponse:
    rater = _rater(user_id)
    page = Paginator(selectors.rater_earnings(rater=rater), EARNINGS_PER_PAGE).get_page(request.GET.get("page"))
    account = ConnectedAccount.objects.filter(rater=rater).first()
    context = {
        "rater": rater,
        "money": selectors.rater_money(rater=rater),
        "studies": selectors.rater_earnings_by_study(rater=rater),
        "page_obj": page,
        "rows": [(earning, _latest_appeal(earning)) for earning in page],
        "holds": PayoutHold.objects.filter(rater=rater).select_related("created_by", "released_by"),
        "payouts": selectors.rater_payouts(rater=rater)[:LIST_LIMIT],
        "account": account,
        "connect_state": _connect_state(account),
        "requirements": _requirements(account),
        "held_count": Earning.objects.filter(rater=rater, status=EarningStatus.HELD).count(),
        "pending_count": Earning.objects.filter(rater=rater, status=EarningStatus.PENDING).count(),
        "active_hold": PayoutHold.objects.filter(rater=rater, released_at__isnull=True).first(),
        "reason_form": ReasonForm(),
        "note_form": NoteForm(),
        "bonus_form": StaffBonusForm(),
        "rejectable": (EarningStatus.PENDING, EarningStatus.HELD),
    }
    return render(request, "payments/staff_rater_money.html", context)


@require_POST
@area_required(STAFF_AREA)
def staff_earning_reject(request: HttpRequest, user_id: int, earning_id: int) -> HttpResponse:
    earning = get_object_or_404(Earning, pk=earning_id, rater_id=user_id)
    form = ReasonForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Pay not rejected: " + _form_problems(form))
    else:
        try:
            earning_reject(earning=earning, reason=form.cleaned_data["reason"], actor=request.user)  # type: ignore[arg-type]
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            messages.success(
                request,
                f"Rejected {money(earning.amount_cents, earning.currency)}: the client's funds get it back and the "
                "rater sees the reason and may appeal.",
            )
    return redirect(_rater_page(user_id) + f"#earning-{earning.pk}")


@require_POST
@area_required(STAFF_AREA)
def staff_earnings_hold(request: HttpRequest, user_id: int) -> HttpResponse:
    rater = _rater(user_id)
    form = ReasonForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Nothing held: " + _form_problems(form))
        return redirect(_rater_page(user_id))
    try:
        held = earnings_hold(rater=rater, reason=form.cleaned_data["reason"], actor=request.user)  # type: ignore[arg-type]
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Held {held} pending earning{'s' if held != 1 else ''} for quality review.")
    return redirect(_rater_page(user_id))


@require_POST
@area_required(STAFF_AREA)
def staff_earnings_release(request: HttpRequest, user_id: int) -> HttpResponse:
    rater = _rater(user_id)
    try:
        released = earnings_hold_release(
            rater=rater,
            actor=request.user,  # type: ignore[arg-type]
            note=request.POST.get("note", "").strip()[:2000],
        )
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request,
            f"Released {released} held earning{'s' if released != 1 else ''}: they become available when their "
            "review window ends.",
        )
    return redirect(_rater_page(user_id))


@require_POST
@area_required(STAFF_AREA)
def staff_bonus(request: HttpRequest, user_id: int) -> HttpResponse:
    """A bonus the platform pays (not a client)."""
    rater = _rater(user_id)
    form = StaffBonusForm(request.POST)
    if not form.is_valid():
        messages.error(request, "No bonus granted: " + _form_problems(form))
        return redirect(_rater_page(user_id))
    try:
        _, created = bonus_grant(
            actor=request.user,  # type: ignore[arg-type]
            rater=rater,
            amount_cents=form.cleaned_data["amount"],
            reason=form.cleaned_data["reason"],
            idempotency_key=form.cleaned_data["idempotency_key"],
        )
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        amount = money(form.cleaned_data["amount"])
        if created:
            messages.success(request, f"Bonus of {amount} granted; it is available at once.")
        else:
            messages.info(request, f"This bonus of {amount} was already granted; it is paid once.")
    return redirect(_rater_page(user_id))
