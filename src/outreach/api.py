"""Every domain's router, in one place."""

from fastapi import APIRouter

from outreach.account.endpoints import router as account_router
from outreach.admin.endpoints import router as admin_router
from outreach.auth.endpoints import dev_router as auth_dev_router
from outreach.auth.endpoints import router as auth_router
from outreach.campaign.endpoints import router as campaign_router
from outreach.campaign.unsubscribe import router as unsubscribe_router
from outreach.config import Settings
from outreach.credits.endpoints import router as credits_router
from outreach.kit.idempotency import IdempotentRoute
from outreach.mailbox.endpoints import gmail_router as mailbox_gmail_router
from outreach.mailbox.endpoints import router as mailbox_router
from outreach.payment.endpoints import router as payment_router
from outreach.recipient.endpoints import routers as recipient_routers
from outreach.referral.endpoints import router as referral_router
from outreach.resume.endpoints import router as resume_router
from outreach.template.endpoints import router as template_router
from outreach.workflow.endpoints import onboarding_router, plan_router


def api_router(settings: Settings) -> APIRouter:
    router = APIRouter(route_class=IdempotentRoute)
    router.include_router(auth_router)
    if settings.dev_login_enabled:
        # Absent, not forbidden, outside development: production answers 404.
        router.include_router(auth_dev_router)
    router.include_router(account_router)
    router.include_router(credits_router)
    router.include_router(referral_router)
    router.include_router(admin_router)
    router.include_router(mailbox_router)
    router.include_router(mailbox_gmail_router)
    router.include_router(payment_router)
    router.include_router(template_router)
    router.include_router(campaign_router)
    router.include_router(plan_router)
    router.include_router(onboarding_router)
    router.include_router(unsubscribe_router)
    router.include_router(resume_router)
    for recipient_router in recipient_routers:
        router.include_router(recipient_router)
    return router
