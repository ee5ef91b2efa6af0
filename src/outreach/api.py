"""Every domain's router, in one place."""

from fastapi import APIRouter

from outreach.kit.idempotency import IdempotentRoute

router = APIRouter(route_class=IdempotentRoute)
