"""LangGraph workflows: onboarding, the outreach plan, and bulk verification and
enrichment as checkpointed graphs."""
