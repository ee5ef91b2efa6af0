"""Payments: credit packs bought through Razorpay (orders, checkout callback, webhooks)."""
