"""Accounts: the platform connections a tenant publishes through."""
